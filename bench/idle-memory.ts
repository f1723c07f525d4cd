// Where an idle daemon's memory goes (issue 12 idle RSS; docs/memory.md):
// `node dist/bench/idle-memory.js [--at 3,30] [--probe] [--hold N]`, under `flock /work/locks/bench.lock`.
//
// Starts the scenario-3 pair (client → SOCKS5 of daemon A → HBONE → daemon B → sink server), makes
// the first tunneled connections exactly as bench/vs-istio.ts does before it reads idle RSS
// (connections at concurrency 1 for 2 s), then at each `--at` second after them prints, per
// daemon: VmRSS, anonymous and file-backed resident memory (/proc/<pid>/smaps_rollup), and RSS by
// mapping (the node binary's text and read-only data, [heap], other anonymous, shared libraries).
// With --probe the daemons run with bench/lib/memory-probe.js preloaded and every thread's V8 heap
// (used / committed by space) and loaded-module count is printed too (the probe itself costs a
// little memory, so RSS is read without it). --hold N then measures memory per idle tunneled
// connection as bench --vs-istio does (N connections held). ZTUNNEL_WORKER_THREADS picks the worker count.
import { mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { installExitHandlers } from './lib/children.js';
import { DAEMON_NODE_FLAGS } from './lib/daemon-flags.js';
import { connRateOnce, idleConnections } from './lib/measure.js';
import { PROBE_DIR } from './lib/memory-probe.js';
import { setupZtunnelPair, type BedContext } from './lib/scenarios.js';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const MAIN_JS = path.join(BENCH_DIR, '..', 'src', 'main.js');
const MB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Group {
  rss: number;
  anon: number;
}

/** kB fields of smaps_rollup, in bytes. */
export function smapsRollup(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').matchAll(/^(\w+):\s+(\d+) kB/gm)) out[m[1]!] = Number(m[2]) * 1024;
  return out;
}

/** RSS and anonymous bytes by kind of mapping. */
export function smapsGroups(pid: number, nodeBinary: string): Map<string, Group> {
  const groups = new Map<string, Group>();
  let key = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ (\S{4}) \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      const [, perms, name] = head as unknown as [string, string, string];
      if (name === nodeBinary) key = `node binary ${perms}`;
      else if (name === '') key = 'anonymous';
      else if (name.startsWith('[')) key = name;
      else key = `other files ${perms.includes('x') ? 'text' : 'data'}`;
      if (!groups.has(key)) groups.set(key, { rss: 0, anon: 0 });
      continue;
    }
    const f = /^(Rss|Anonymous):\s+(\d+) kB/.exec(line);
    if (f && key) groups.get(key)![f[1] === 'Rss' ? 'rss' : 'anon'] += Number(f[2]) * 1024;
  }
  return groups;
}

function rssOf(pid: number): number {
  return Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}

const mb = (n: number) => (n / MB).toFixed(1);

function report(name: string, pid: number, nodeBinary: string, probeDir: string | null): string {
  const lines: string[] = [];
  const roll = smapsRollup(pid);
  lines.push(`${name} pid ${pid}: VmRSS ${mb(rssOf(pid))} MB, anonymous ${mb(roll['Anonymous'] ?? 0)} MB, file-backed ${mb((roll['Rss'] ?? 0) - (roll['Anonymous'] ?? 0) - (roll['Shmem'] ?? 0))} MB`);
  const groups = [...smapsGroups(pid, nodeBinary)].sort((a, b) => b[1].rss - a[1].rss);
  for (const [k, g] of groups) if (g.rss >= 0.1 * MB) lines.push(`  ${k.padEnd(24)} rss ${mb(g.rss).padStart(6)} MB  anon ${mb(g.anon).padStart(6)} MB`);
  if (probeDir) {
    const dir = path.join(probeDir, String(pid));
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.json')).sort()) {
      const t = JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as { threadId: number; heap: Record<string, number>; spaces: Record<string, { size: number; used: number; physical: number }>; modules: string[] };
      const sp = Object.entries(t.spaces)
        .filter(([, s]) => s.physical > 0)
        .map(([n, s]) => `${n.replace(/_space$/, '')} ${mb(s.used)}/${mb(s.physical)}`)
        .join(', ');
      const pkgs = new Map<string, number>();
      for (const u of t.modules) {
        const k = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u)?.[1] ?? (u.startsWith('node:') ? 'node:' : /\/dist\/(src\/[^/]+)/.exec(u)?.[1] ?? u);
        pkgs.set(k, (pkgs.get(k) ?? 0) + 1);
      }
      lines.push(
        `  thread ${t.threadId}: heap used ${mb(t.heap['used_heap_size']!)} / committed ${mb(t.heap['total_heap_size']!)} (physical ${mb(t.heap['total_physical_size']!)}) MB, ` +
          `malloced ${mb(t.heap['malloced_memory']!)} MB, external ${mb(t.heap['external_memory'] ?? 0)} MB; ${t.modules.length} modules (${[...pkgs].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ')})`,
      );
      lines.push(`    spaces used/physical MB: ${sp}`);
    }
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  installExitHandlers();
  const args = process.argv.slice(2);
  const at = (args.includes('--at') ? args[args.indexOf('--at') + 1]! : '3,30').split(',').map(Number);
  const probe = args.includes('--probe');
  const hold = args.includes('--hold') ? Number(args[args.indexOf('--hold') + 1]) : 0;
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'ztunnel-idle-memory-'));
  const probeDir = probe ? PROBE_DIR : null;
  const nodeBinary = realpathSync(process.execPath);
  const ctx: BedContext = {
    benchDir: BENCH_DIR,
    mainJs: MAIN_JS,
    workDir,
    logLevel: 'info',
    proxyExecArgv: probe ? ['--import', path.join(BENCH_DIR, 'lib', 'memory-probe.js')] : [],
    daemonNodeFlags: DAEMON_NODE_FLAGS,
  };
  const bed = await setupZtunnelPair(ctx);
  try {
    console.log(`node ${process.version}, workers ${process.env['ZTUNNEL_WORKER_THREADS'] ?? 'default'}, flags "${DAEMON_NODE_FLAGS.join(' ')}"`);
    const first = await connRateOnce(BENCH_DIR, bed, 1, 0, 2000);
    const t0 = Date.now();
    console.log(`first connections: ${first.connections}`);
    for (const s of at) {
      await sleep(Math.max(0, t0 + s * 1000 - Date.now()));
      console.log(`--- ${s} s after the first connections`);
      for (const p of bed.proxies) console.log(report(p.name, p.pid, nodeBinary, probeDir));
    }
    if (hold > 0) {
      // Then as bench --vs-istio measures memory per idle connection (full run: settle 2 s).
      const m = await idleConnections(BENCH_DIR, bed, hold, Math.min(200, Math.ceil(hold / 10)), 2000);
      const kb = (o: Record<string, number>) => Object.entries(o).map(([k, v]) => `${k} ${(v / 1e3).toFixed(1)}`).join(', ');
      console.log(`--- holding ${m.opened} idle tunneled connections: KB per connection ${kb(m.bytesPerConnection)}; RSS before ${kb(m.rssBeforeBytes)} KB, with ${kb(m.rssWithBytes)} KB`);
      for (const p of bed.proxies) console.log(report(p.name, p.pid, nodeBinary, probeDir));
    }
  } finally {
    await bed.close();
    rmSync(workDir, { recursive: true, force: true });
    if (probeDir) for (const p of bed.proxies) rmSync(path.join(probeDir, String(p.pid)), { recursive: true, force: true });
  }
}

await main();
