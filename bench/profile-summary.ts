// Reads V8 .cpuprofile files (from `npm run bench -- --profile-dir DIR`, i.e. node --cpu-prof) and
// prints, per file, the functions with the most self time and the most inclusive time, grouped by
// source file, plus a collapsed-stack file (`<profile>.folded`) that flame-graph tools read
// (flamegraph.pl, speedscope, inferno). Usage: node dist/bench/profile-summary.js FILE... [--top N]
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function label(f: CallFrame): string {
  const name = f.functionName || '(anonymous)';
  if (!f.url) return name;
  const file = f.url.replace(/^file:\/\//, '');
  const short = file.includes('/node_modules/') ? file.slice(file.lastIndexOf('/node_modules/') + 14) : file.includes('/dist/') ? file.slice(file.indexOf('/dist/') + 6) : path.basename(file);
  return `${name} ${short}:${f.lineNumber + 1}`;
}

function summarize(file: string, top: number): void {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  p.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  const folded = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    const l = label(n.callFrame);
    self.set(l, (self.get(l) ?? 0) + us);
    const stack: string[] = [];
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const cl = label(byId.get(cur)!.callFrame);
      stack.push(cl);
      if (!seen.has(cl)) {
        seen.add(cl);
        incl.set(cl, (incl.get(cl) ?? 0) + us);
      }
    }
    const key = stack.reverse().map((s) => s.replace(/;/g, ',')).join(';');
    folded.set(key, (folded.get(key) ?? 0) + us);
  }
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
  const idle = self.get('(idle)') ?? 0;
  console.log(`\n== ${path.basename(file)}: ${(total / 1e6).toFixed(2)} s sampled, ${pct(total - idle)} busy`);
  console.log(`-- top ${top} by self time (share of busy time)`);
  const busy = total - idle;
  const rows = (m: Map<string, number>) => [...m].filter(([l]) => !['(idle)', '(root)', '(program)'].includes(l)).sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [l, us] of rows(self)) console.log(`${((100 * us) / busy).toFixed(1).padStart(5)}%  ${l}`);
  console.log(`-- top ${top} by inclusive time`);
  for (const [l, us] of rows(incl)) console.log(`${((100 * us) / busy).toFixed(1).padStart(5)}%  ${l}`);
  const out = `${file}.folded`;
  writeFileSync(out, [...folded].map(([k, us]) => `${k} ${Math.round(us)}`).join('\n') + '\n');
  console.log(`-- collapsed stacks: ${out}`);
}

const args = process.argv.slice(2);
const ti = args.indexOf('--top');
const top = ti >= 0 ? Number(args[ti + 1]) : 25;
const files = args.filter((a, i) => a !== '--top' && i !== ti + 1);
if (!files.length) {
  console.error('usage: node dist/bench/profile-summary.js FILE.cpuprofile... [--top N]');
  process.exit(2);
}
for (const f of files) summarize(f, top);
