// Every `<name>.md §N` a code comment cites resolves inside the repository (docs/spec/README.md):
// `design.md` is docs/design.md, `perf-notes.md` docs/perf-notes.md, any other name
// docs/spec/<name>.md; §N (and the first number of a range §N-§M) must be a heading of that page,
// and `<name>.md "Beyond"` needs its "Beyond the reference" section.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const REPO_ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
const SCANNED = ['src', 'test', 'bench', 'native', 'scripts'];
const SOURCE = /\.(ts|mjs|js|cc|h|sh|gyp)$/;

function* files(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'build' || name === 'results') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* files(p);
    else if (SOURCE.test(name)) yield p;
  }
}

function pageFor(name: string): string {
  const base = name.replace(/^(docs\/)?(spec\/)?/, '');
  if (base === 'design.md') return 'docs/design.md';
  if (base === 'perf-notes.md') return 'docs/perf-notes.md';
  return `docs/spec/${base}`;
}

const headings = new Map<string, Set<string> | null>();
function sectionsOf(page: string): Set<string> | null {
  if (!headings.has(page)) {
    let text: string;
    try {
      text = readFileSync(join(REPO_ROOT, page), 'utf8');
    } catch {
      headings.set(page, null);
      return null;
    }
    const found = new Set<string>();
    for (const m of text.matchAll(/^#{2,4} (\d+(?:\.\d+)*)\.? /gm)) found.add(m[1]!);
    if (/^## Beyond the reference/m.test(text)) found.add('Beyond');
    headings.set(page, found);
  }
  return headings.get(page)!;
}

// A citation: a spec page name (not a user guide under docs/ other than spec/ and design.md),
// then §N or "Beyond".
const CITATION = /(?<![\w/-])((?:docs\/)?(?:spec\/)?(?:ports-and-modes|hbone|capture|config|xds|policy|telemetry|design)\.md) (?:§(\d+(?:\.\d+)*)|"(Beyond))/g;

t.test('every spec and design citation in the code names an existing page and section', async (t) => {
  let count = 0;
  const broken: string[] = [];
  for (const top of SCANNED) {
    for (const file of files(join(REPO_ROOT, top))) {
      const lines = readFileSync(file, 'utf8').split('\n');
      lines.forEach((line, i) => {
        for (const m of line.matchAll(CITATION)) {
          // docs/config.md, docs/policy.md and docs/telemetry.md are user guides; a citation with
          // a section number always means the spec page (docs/spec/README.md).
          const page = pageFor(m[1]!);
          const section = m[2] ?? m[3]!;
          count++;
          const sections = sectionsOf(page);
          const where = `${relative(REPO_ROOT, file)}:${i + 1}`;
          if (sections === null) broken.push(`${where}: ${m[0]} → ${page} does not exist`);
          else if (!sections.has(section) && !sections.has(section.split('.')[0]!)) broken.push(`${where}: ${m[0]} → ${page} has no section ${section}`);
        }
      });
    }
  }
  t.ok(count > 100, `found the code's citations (${count})`);
  t.same(broken, [], 'no citation points outside the repository or at a missing section');
});
