// Hostile or broken local config text (issue 16 items 9 and 10): alias bombs, many duplicate keys,
// deep nesting. Each is refused with a clear message in bounded time, never a hang, a thrown
// RangeError or thousands of log lines.
import t from 'tap';
import { MAX_LISTED_PROBLEMS, parseLocalConfig } from './local-file.js';
import { parseLocalConfigOffThread } from './local-parse.js';

const y = (...lines: string[]): string => lines.join('\n') + '\n';
const times = (n: number, line: string): string[] => Array.from({ length: n }, () => line);

t.test('an alias bomb in a policy is refused with a message naming aliases, without expanding it', async (t) => {
  // 20 × 20 × 20 matches, each with four lists of ten string matches: ~680,000 nodes to walk
  // from ~1.5 KB of text.
  const ten = Array.from({ length: 10 }, () => '{Exact: a}').join(', ');
  const text = y(
    'policies:',
    '- name: p',
    '  namespace: ns',
    '  scope: Namespace',
    '  action: Allow',
    '  dryRun: false',
    '  rules:',
    '  - &r2',
    '    - &r1',
    `      - &m {namespaces: &n [${ten}], notNamespaces: *n, principals: *n, notPrincipals: *n}`,
    ...times(19, '      - *m'),
    ...times(19, '    - *r1'),
    ...times(19, '  - *r2'),
  );
  t.ok(text.length < 2000, `a small file (${text.length} bytes)`);
  const r = parseLocalConfig(text, 'bomb.yaml');
  t.equal(r.ok, false, 'refused');
  if (r.ok) return;
  t.match(r.errors, [{ file: 'bomb.yaml', message: /^aliases expand the document to more than \d+ nodes \(an alias bomb\?\); it is refused$/ }]);
});

t.test('a workload list built from aliases within the budget is read normally', async (t) => {
  const text = y(
    'workloads:',
    '- &w {uid: a, namespace: ns, workloadIps: [], services: {}, labels: &l {app: x}}',
    ...Array.from({ length: 200 }, (_, i) => `- {uid: b${i}, namespace: ns, workloadIps: [], services: {}, labels: *l}`),
  );
  const r = parseLocalConfig(text, 'ok.yaml');
  t.ok(r.ok, 'accepted');
  if (r.ok) t.same(r.value.workloads[200]!.labels, new Map([['app', 'x']]));
});

t.test('10,000 duplicate keys: the first problems are listed, the rest counted', async (t) => {
  const labels = Array.from({ length: 10_000 }, (_, i) => `    k: v${i}`);
  const text = y('workloads:', '- uid: a', '  namespace: ns', '  workloadIps: []', '  services: {}', '  labels:', ...labels);
  const r = parseLocalConfig(text, 'dup.yaml');
  t.equal(r.ok, false);
  if (r.ok) return;
  t.equal(r.errors.length, MAX_LISTED_PROBLEMS + 1, 'the listed problems and one count');
  t.match(r.errors[0], { line: 8, path: 'workloads[0].labels["k"]', message: 'duplicate key "k"' });
  t.equal(r.errors[MAX_LISTED_PROBLEMS]!.message, `${9_999 - MAX_LISTED_PROBLEMS} more errors not listed (9999 in all; the first ${MAX_LISTED_PROBLEMS} are listed)`);
});

t.test('10,000 levels of nesting: a clear message, not a stack overflow', async (t) => {
  for (const [name, text] of [
    ['flow', 'workloads: ' + '['.repeat(10_000) + ']'.repeat(10_000) + '\n'],
    ['block', Array.from({ length: 10_000 }, (_, i) => ' '.repeat(i) + 'a:').join('\n') + ' x\n'],
  ] as const) {
    const r = parseLocalConfig(text, 'deep.yaml');
    t.equal(r.ok, false, `${name}: refused`);
    if (r.ok) continue;
    const all = r.errors.map((e) => e.message).join('\n');
    t.notMatch(all, /call stack/i, `${name}: no "Maximum call stack size exceeded"`);
    t.match(all, /nests too deeply/, `${name}: says what is wrong`);
  }
});

t.test('off the event loop: a parse past its deadline or its heap cap is refused, not waited for', async (t) => {
  const text = y('workloads:', ...Array.from({ length: 20_000 }, (_, i) => `- {uid: w${i}, namespace: ns, workloadIps: ["10.0.${i >> 8}.${i & 255}"], services: {}}`));
  const slow = await parseLocalConfigOffThread(text, 'big.yaml', { timeoutMs: 1, maxHeapMb: 1024 });
  t.match(slow, { ok: false, errors: [{ file: 'big.yaml', line: 0, message: 'parsing took longer than 0.001 s; the file is refused' }] });
  const greedy = await parseLocalConfigOffThread(text, 'big.yaml', { timeoutMs: 120_000, maxHeapMb: 16 });
  t.match(greedy, { ok: false, errors: [{ message: 'parsing needed more than 16 MB of memory; the file is refused' }] });
  const fine = await parseLocalConfigOffThread(text, 'big.yaml', { timeoutMs: 120_000, maxHeapMb: 1024 });
  t.ok(fine.ok, 'the same file within bounds is read');
  if (fine.ok) t.equal(fine.value.workloads.length, 20_000);
});

t.test('values and keys quoted in problems are bounded and escaped (they reach log lines and /config_dump)', async (t) => {
  const huge = 'x'.repeat(100_000);
  const text = y(
    'workloads:',
    `- {uid: a, namespace: ns, workloadIps: [], services: {}, protocol: "${huge}"}`,
    `- {uid: b, namespace: ns, workloadIps: [], services: {}, protocol: "TCP\\u001b[31mred\\u0007"}`,
    `- {uid: c, namespace: ns, workloadIps: [], services: {}, "${'k'.repeat(5000)}": 1}`,
  );
  const r = parseLocalConfig(text, 'loud.yaml');
  t.equal(r.ok, false, 'refused');
  if (r.ok) return;
  for (const e of r.errors) {
    t.ok(e.message.length <= 1100 && e.path.length <= 600, `bounded: ${e.path.length} + ${e.message.length} chars`);
    t.notOk(/[\u0000-\u001f\u007f]/.test(e.message + e.path), 'no control characters');
  }
  t.match(r.errors.map((e) => e.message).join('\n'), /…\(100\d\d\d chars\)|chars\)/, 'a cut value says how long it was');
});
