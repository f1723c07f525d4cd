// Side by side with Istio's ztunnel (issue #12 §3): `npm run bench -- --vs-istio [--quick]`.
//
// One bed for all: two network namespaces joined by a veth pair, each holding one node's daemon
// (Istio's ztunnel binds fixed wildcard ports, so each daemon needs a namespace of its own):
//
//   load client (ns A) → SOCKS5 of daemon A → HBONE (mTLS 1.3 + HTTP/2 CONNECT, over the veth)
//     → daemon B :15008 (ns B) → sink server on B's address (ns B)
//   direct: load client (ns A) → sink server (ns B), same veth, no proxy
//
// The pairs (Istio's ztunnel, ztunnel-ts) run one after the other, in an order that rotates each
// round, at the same worker count, measured by the same load client (bench/load-client.ts) and
// the same /proc readings as every other scenario. Both load the same local config (two HBONE
// workloads), run in dedicated mode with default logging (one access-log line per connection) and
// a local CA: Istio's FAKE_CA with its built-in test root, ztunnel-ts its local CA.
// Istio's ztunnel runs with ENABLE_ORIG_SRC=false (with the privilege it would spoof the client's
// address, which this bed's routing cannot return).
//
// Istio's ztunnel comes from ISTIO_ZTUNNEL_BIN, else $ISTIO_ZT_DIR/bin/ztunnel (default
// /tmp/istio-ztunnel), else it is built from the source tarball with
// ../shared/tools/istio-peers/build-istio-ztunnel.sh (~20 min once).
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stopChild, track } from './lib/children.js';
import { startDaemonProcess, type DaemonProcess } from './lib/daemon-process.js';
import { DAEMON_NODE_FLAGS } from './lib/daemon-flags.js';
import { bulkOnce, connRateOnce, idleConnections, pingPongOnce, settledRss, type BulkRep, type ConnRateRep, type IdleMeasurement } from './lib/measure.js';
import { cpuSecondsOf, machineFacts } from './lib/proc-stats.js';
import type { Bed, BedContext, ProxyProcess } from './lib/scenarios.js';
import { forkListening, startSinkServer } from './lib/scenarios.js';
import { median, summarizeLatency, type LatencySummary } from './lib/stats.js';
import { issueToFiles, openBenchCa } from './lib/test-ca.js';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url)); // dist/bench
const REPO_ROOT = path.resolve(BENCH_DIR, '..', '..');
const MAIN_JS = path.join(REPO_ROOT, 'dist', 'src', 'main.js');
const NS_A = 'ztvi-a';
const NS_B = 'ztvi-b';
const IP_A = '127.0.10.1';
const IP_B = '127.0.10.2';
const SERVICE_ACCOUNT = { a: 'sa-a', b: 'sa-b' } as const;

export type Impl = 'direct' | 'h2pipe' | 'istio' | 'ts';

export interface VsIstioSettings {
  quick: boolean;
  /** Which implementations to run (default all three). */
  impls: Impl[];
  rounds: number;
  workers: number[];
  durationMs: number;
  warmupMs: number;
  idleConnections: number;
  logLevel: string;
  save: boolean;
  outDir: string;
  failOnError: boolean;
}

interface ImplRound {
  impl: Impl;
  workers: number;
  round: number;
  idleRssBytes?: Record<string, number>;
  idle?: IdleMeasurement;
  bulk?: BulkRep;
  bulkCores?: Record<string, number>;
  latency?: LatencySummary;
  connRate?: ConnRateRep;
  connCores?: Record<string, number>;
  threads?: Record<string, number>;
  errors: string[];
}

const log = (s: string) => process.stderr.write(`[bench vs-istio] ${s}\n`);
const errMsg = (e: unknown) => (e instanceof Error ? e.message : String(e));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sh(cmd: string, ...args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}
function netnsExec(ns: string, ...cmd: string[]): void {
  sh('ip', 'netns', 'exec', ns, ...cmd);
}

function netnsDown(): void {
  for (const ns of [NS_A, NS_B]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
}

/** Two namespaces, a veth pair, one /32 loopback-range address each (route_localnet lets 127.x cross). */
function netnsUp(): void {
  netnsDown();
  for (const ns of [NS_A, NS_B]) sh('ip', 'netns', 'add', ns);
  sh('ip', 'link', 'add', `${NS_A}0`, 'netns', NS_A, 'type', 'veth', 'peer', 'name', `${NS_B}0`, 'netns', NS_B);
  for (const [ns, ip] of [[NS_A, IP_A], [NS_B, IP_B]] as const) {
    netnsExec(ns, 'ip', 'link', 'set', 'lo', 'up');
    netnsExec(ns, 'ip', 'addr', 'del', '127.0.0.1/8', 'dev', 'lo');
    netnsExec(ns, 'ip', 'addr', 'add', '127.0.0.1/32', 'dev', 'lo');
    netnsExec(ns, 'sysctl', '-qw', 'net.ipv4.conf.all.route_localnet=1', `net.ipv4.conf.${ns}0.route_localnet=1`, 'net.ipv4.conf.all.rp_filter=0', `net.ipv4.conf.${ns}0.rp_filter=0`);
    netnsExec(ns, 'ip', 'link', 'set', `${ns}0`, 'up');
    netnsExec(ns, 'ip', 'addr', 'add', `${ip}/32`, 'dev', `${ns}0`);
    netnsExec(ns, 'ip', 'route', 'add', '127.0.10.0/24', 'dev', `${ns}0`, 'src', ip);
  }
}

function meshYaml(): string {
  const w = (side: 'a' | 'b', ip: string) =>
    `- {uid: "Kubernetes//Pod/default/${side}-0", name: ${side}-0, namespace: default, serviceAccount: ${SERVICE_ACCOUNT[side]}, trustDomain: cluster.local,\n   workloadIps: ["${ip}"], protocol: HBONE, node: node-${side}, network: "", services: {}}\n`;
  return `workloads:\n${w('a', IP_A)}${w('b', IP_B)}`;
}

/** Polls an HTTP URL from inside a namespace until it answers 200. */
async function waitReady(ns: string, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const probe = `require('http').get(${JSON.stringify(url)},r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1)).setTimeout(1000,()=>process.exit(1))`;
  while (Date.now() < deadline) {
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '-e', probe], { stdio: 'ignore', timeout: 3000 });
    if (r.status === 0) return;
    await sleep(200);
  }
  throw new Error(`${url} in ${ns} not ready within ${timeoutMs} ms`);
}

function threadsOf(pid: number): number {
  const m = /^Threads:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

export function findIstioZtunnel(): string {
  const explicit = process.env['ISTIO_ZTUNNEL_BIN'];
  if (explicit) {
    if (!existsSync(explicit)) throw new Error(`ISTIO_ZTUNNEL_BIN=${explicit} does not exist`);
    return explicit;
  }
  const dir = process.env['ISTIO_ZT_DIR'] ?? '/tmp/istio-ztunnel';
  const bin = path.join(dir, 'bin', 'ztunnel');
  if (existsSync(bin)) return bin;
  const script = path.resolve(REPO_ROOT, '..', 'shared', 'tools', 'istio-peers', 'build-istio-ztunnel.sh');
  if (!existsSync(script)) throw new Error(`Istio's ztunnel not found at ${bin} and no build script at ${script} (set ISTIO_ZTUNNEL_BIN)`);
  log(`building Istio's ztunnel with ${script} (about 20 minutes the first time)`);
  const out = execFileSync('bash', [script], { env: { ...process.env, ISTIO_ZT_DIR: dir }, stdio: ['ignore', 'pipe', 'inherit'], timeout: 3_600_000 });
  const built = out.toString().trim().split('\n').pop()!;
  if (!existsSync(built)) throw new Error(`build script printed ${built}, which does not exist`);
  return built;
}

interface Pair {
  bed: Bed;
  close(): Promise<void>;
}

async function startIstioPair(bin: string, workDir: string, configPath: string, workers: number, logLevel: string, round: number): Promise<{ proxies: ProxyProcess[]; close(): Promise<void> }> {
  const children: ChildProcess[] = [];
  const start = (side: 'a' | 'b', ns: string) => {
    const logFd = openSync(path.join(workDir, `istio-${side}-${workers}w-${round}.log`), 'w');
    const env = {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      FAKE_CA: 'true',
      XDS_ADDRESS: '',
      CA_ADDRESS: '',
      ENABLE_ORIG_SRC: 'false',
      LOCAL_XDS_PATH: configPath,
      PROXY_MODE: 'dedicated',
      UNSTABLE_ENABLE_SOCKS5: 'true',
      PROXY_WORKLOAD_INFO: `default/${side}-0/${SERVICE_ACCOUNT[side]}`,
      RUST_LOG: logLevel,
      ZTUNNEL_WORKER_THREADS: String(workers),
    };
    // `ip netns exec` execs the binary: the child's pid is the daemon's.
    const child = track(spawn('ip', ['netns', 'exec', ns, bin], { env, stdio: ['ignore', logFd, logFd] }));
    closeSync(logFd);
    children.push(child);
    return child.pid!;
  };
  const stopAll = async () => {
    await Promise.all(children.map((c) => stopChild(c, 10_000)));
  };
  try {
    const a = start('a', NS_A);
    const b = start('b', NS_B);
    await waitReady(NS_A, 'http://127.0.0.1:15021/healthz/ready', 30_000);
    await waitReady(NS_B, 'http://127.0.0.1:15021/healthz/ready', 30_000);
    return { proxies: [{ name: 'A', pid: a }, { name: 'B', pid: b }], close: stopAll };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

async function startTsPair(workDir: string, configPath: string, caDir: string, workers: number, logLevel: string): Promise<{ proxies: ProxyProcess[]; daemons: DaemonProcess[]; close(): Promise<void> }> {
  const daemons: DaemonProcess[] = [];
  const start = async (side: 'a' | 'b', ns: string, ip: string) => {
    const d = await startDaemonProcess({
      name: `ztunnel-ts ${side.toUpperCase()}`,
      mainJs: MAIN_JS,
      wrapper: ['ip', 'netns', 'exec', ns],
      execArgv: DAEMON_NODE_FLAGS,
      env: {
        XDS_ADDRESS: '',
        FAKE_CA: 'true',
        ZTUNNEL_STATE_DIR: caDir,
        // As for Istio's ztunnel: spoofing the client's address cannot be routed back in this bed.
        ENABLE_ORIG_SRC: 'false',
        LOCAL_XDS_PATH: configPath,
        PROXY_MODE: 'dedicated',
        PROXY_WORKLOAD_INFO: `default/${side}-0/${SERVICE_ACCOUNT[side]}`,
        UNSTABLE_ENABLE_SOCKS5: 'true',
        ZTUNNEL_WORKER_THREADS: String(workers),
        ZTUNNEL_INBOUND_ADDR: `${ip}:15008`,
        ZTUNNEL_INBOUND_PLAINTEXT_ADDR: `${ip}:15006`,
        ZTUNNEL_OUTBOUND_ADDR: `${ip}:15001`,
        ZTUNNEL_SOCKS5_ADDR: `${ip}:15080`,
        ZTUNNEL_ADMIN_ADDR: `${ip}:15000`,
        ZTUNNEL_STATS_ADDR: `${ip}:15020`,
        ZTUNNEL_READINESS_ADDR: `${ip}:15021`,
        RUST_LOG: logLevel,
      },
      readyTimeoutMs: 30_000,
    });
    daemons.push(d);
    return d;
  };
  const close = async () => {
    await Promise.all(daemons.map((d) => d.stop()));
  };
  try {
    const a = await start('a', NS_A, IP_A);
    const b = await start('b', NS_B, IP_B);
    await waitReady(NS_A, `http://${IP_A}:15021/healthz/ready`, 30_000);
    await waitReady(NS_B, `http://${IP_B}:15021/healthz/ready`, 30_000);
    return { proxies: [{ name: 'A', pid: a.pid }, { name: 'B', pid: b.pid }], daemons, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * The bare Node HTTP/2 CONNECT pipe (bench/h2-pipe.ts, scenario s2h) in the same bed: A in ns A,
 * B in ns B. No SOCKS5: the client connects to A, which carries it as a CONNECT stream to B. The
 * floor any Node HTTP/2 tunnel has here, so its distance to Istio's ztunnel is Node's, not ours.
 */
async function startH2Pipe(workDir: string, caDir: string, target: string): Promise<{ proxies: ProxyProcess[]; port: number; close(): Promise<void> }> {
  const dir = path.join(workDir, 'h2pipe');
  mkdirSync(dir, { recursive: true });
  const [certA, certB] = [await issueToFiles(caDir, dir, 'h2pipe-a'), await issueToFiles(caDir, dir, 'h2pipe-b')];
  const script = path.join(BENCH_DIR, 'h2-pipe.js');
  const tlsEnv = (own: typeof certA, peerUri: string) => ({ BENCH_TLS_CERT: own.certPath, BENCH_TLS_KEY: own.keyPath, BENCH_TLS_CA: own.caPath, BENCH_TLS_PEER_URI: peerUri });
  const started: ChildProcess[] = [];
  const close = async () => {
    await Promise.all(started.map((c) => stopChild(c)));
  };
  try {
    const b = await forkListening(script, ['b', IP_B, target], tlsEnv(certB, certA.uri), { wrapper: ['ip', 'netns', 'exec', NS_B] });
    started.push(b.child);
    const a = await forkListening(script, ['a', IP_A, `${IP_B}:${b.port}`, target], tlsEnv(certA, certB.uri), { wrapper: ['ip', 'netns', 'exec', NS_A] });
    started.push(a.child);
    return { proxies: [{ name: 'A', pid: a.child.pid! }, { name: 'B', pid: b.child.pid! }], port: a.port, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** CPU cores each proxy used during `fn` (CPU seconds / wall seconds). */
async function coresDuring<T>(proxies: readonly ProxyProcess[], fn: () => Promise<T>): Promise<{ value: T; cores: Record<string, number> }> {
  const before = proxies.map((p) => cpuSecondsOf([p.pid]));
  const t0 = process.hrtime.bigint();
  const value = await fn();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cores: Record<string, number> = {};
  proxies.forEach((p, i) => (cores[p.name] = (cpuSecondsOf([p.pid]) - before[i]!) / wall));
  return { value, cores };
}

async function measureImpl(s: VsIstioSettings, impl: Impl, workers: number, round: number, ctx: { bin: string | null; workDir: string; configPath: string; caDir: string; server: { port: number } }): Promise<ImplRound> {
  const out: ImplRound = { impl, workers, round, errors: [] };
  let pair: { proxies: ProxyProcess[]; close(): Promise<void> } | null = null;
  const target = { host: IP_B, port: ctx.server.port };
  try {
    let h2PipePort = 0;
    if (impl === 'istio') pair = await startIstioPair(ctx.bin!, ctx.workDir, ctx.configPath, workers, s.logLevel, round);
    else if (impl === 'ts') pair = await startTsPair(ctx.workDir, ctx.configPath, ctx.caDir, workers, s.logLevel);
    else if (impl === 'h2pipe') {
      const p = await startH2Pipe(ctx.workDir, ctx.caDir, `${IP_B}:${ctx.server.port}`);
      pair = p;
      h2PipePort = p.port;
    }
    const proxies = pair?.proxies ?? [];
    const route: Bed['route'] =
      impl === 'direct' ? { connect: target }
      : impl === 'h2pipe' ? { connect: { host: IP_A, port: h2PipePort } }
      : { connect: { host: impl === 'istio' ? '127.0.0.1' : IP_A, port: 15080 }, socks5Target: target };
    const bed: Bed = {
      id: 's3',
      route,
      clientWrapper: ['ip', 'netns', 'exec', NS_A],
      proxies,
      close: async () => {},
    };
    const step = async (what: string, fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (e) {
        out.errors.push(`${what}: ${errMsg(e)}`);
        log(`${impl} ${workers}w round ${round} ${what}: FAILED: ${errMsg(e)}`);
      }
    };
    if (proxies.length) {
      // A first tunneled connection (certificates fetched, pools warm), then idle RSS.
      await step('first connection', async () => void (await connRateOnce(BENCH_DIR, bed, 1, 0, 2000)));
      await sleep(s.quick ? 1000 : 3000);
      out.idleRssBytes = {};
      out.threads = {};
      for (const p of proxies) {
        out.idleRssBytes[p.name] = await settledRss(p.pid);
        out.threads[p.name] = threadsOf(p.pid);
      }
      await step('idle', async () => {
        out.idle = await idleConnections(BENCH_DIR, bed, s.idleConnections, Math.min(200, Math.ceil(s.idleConnections / 10)), s.quick ? 1000 : 2000);
      });
    }
    await step('bulk', async () => {
      const r = await coresDuring(proxies, () => bulkOnce(BENCH_DIR, bed, 1, s.warmupMs, s.durationMs));
      out.bulk = r.value;
      out.bulkCores = r.cores;
    });
    await step('ping-pong', async () => {
      const r = await pingPongOnce(BENCH_DIR, bed, { warmupRoundTrips: 1000, roundTrips: 1_000_000, maxDurationMs: s.durationMs });
      out.latency = summarizeLatency(Float64Array.from(r.samplesUs));
    });
    await step('connection rate', async () => {
      const r = await coresDuring(proxies, () => connRateOnce(BENCH_DIR, bed, 32, s.warmupMs, s.durationMs));
      out.connRate = r.value;
      out.connCores = r.cores;
      if (r.value.errors) out.errors.push(`connection rate: ${r.value.errors} failed (first: ${r.value.firstError})`);
    });
  } catch (e) {
    out.errors.push(`setup: ${errMsg(e)}`);
    log(`${impl} ${workers}w round ${round}: setup FAILED: ${errMsg(e)}`);
  } finally {
    await pair?.close();
  }
  return out;
}

// ------------------------------------------------------------------------------------ report

type Row = { name: string; get: (r: ImplRound) => number | undefined; digits: number; direct?: boolean; lowerIsBetter?: boolean };

const sum = (o: Record<string, number> | undefined) => (o ? Object.values(o).reduce((a, b) => a + b, 0) : undefined);
const GB = 1e9;
const ROWS: Row[] = [
  { name: 'bulk 1 connection, Gbit/s', get: (r) => r.bulk?.gbitPerSec, digits: 2, direct: true },
  { name: 'daemon CPU s per GB moved (A+B)', get: (r) => (r.bulk?.bytesPerProxyCpuSecond ? GB / r.bulk.bytesPerProxyCpuSecond : undefined), digits: 2, lowerIsBetter: true },
  { name: 'daemon cores used during bulk, A / B', get: () => undefined, digits: 2 },
  { name: 'ping-pong 100 B p50, µs', get: (r) => r.latency?.p50Us, digits: 0, direct: true, lowerIsBetter: true },
  { name: 'ping-pong 100 B p99, µs', get: (r) => r.latency?.p99Us, digits: 0, direct: true, lowerIsBetter: true },
  { name: 'new tunneled connections/s (32 clients)', get: (r) => r.connRate?.perSec, digits: 0, direct: true },
  { name: 'CPU µs per new connection, A (client side)', get: (r) => r.connRate?.cpuUsPerConnection['A'], digits: 0, lowerIsBetter: true },
  { name: 'CPU µs per new connection, B (server side)', get: (r) => r.connRate?.cpuUsPerConnection['B'], digits: 0, lowerIsBetter: true },
  { name: 'daemon cores used during connection rate, A', get: (r) => r.connCores?.['A'], digits: 2 },
  { name: 'daemon cores used during connection rate, B', get: (r) => r.connCores?.['B'], digits: 2 },
  { name: 'idle RSS, A, MB', get: (r) => (r.idleRssBytes?.['A'] ?? NaN) / 1e6, digits: 1, lowerIsBetter: true },
  { name: 'idle RSS, B, MB', get: (r) => (r.idleRssBytes?.['B'] ?? NaN) / 1e6, digits: 1, lowerIsBetter: true },
  { name: 'KB per idle tunneled connection, A', get: (r) => (r.idle ? r.idle.bytesPerConnection['A']! / 1e3 : undefined), digits: 1, lowerIsBetter: true },
  { name: 'KB per idle tunneled connection, B', get: (r) => (r.idle ? r.idle.bytesPerConnection['B']! / 1e3 : undefined), digits: 1, lowerIsBetter: true },
];

function med(rounds: ImplRound[], get: (r: ImplRound) => number | undefined): { m: number; min: number; max: number } | null {
  const xs = rounds.map(get).filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  if (!xs.length) return null;
  return { m: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
}

function cell(v: ReturnType<typeof med>, d: number): string {
  if (!v) return 'n/a';
  return v.min === v.max ? v.m.toFixed(d) : `${v.m.toFixed(d)} (${v.min.toFixed(d)}–${v.max.toFixed(d)})`;
}

export function formatVsIstio(results: ImplRound[], workers: number[]): string {
  const lines: string[] = [];
  for (const w of workers) {
    const by = (impl: Impl) => results.filter((r) => r.impl === impl && (impl === 'direct' || impl === 'h2pipe' || r.workers === w));
    lines.push(`\n### ${w} worker thread${w === 1 ? '' : 's'} each (medians of the rounds, min–max)\n`);
    lines.push('| measurement | direct | Node HTTP/2 pipe | Istio ztunnel | ztunnel-ts | ts / Istio | pipe / Istio |');
    lines.push('|---|---|---|---|---|---|---|');
    for (const row of ROWS) {
      if (row.name.startsWith('daemon cores used during bulk')) {
        const f = (impl: Impl) => {
          const a = med(by(impl), (r) => r.bulkCores?.['A']);
          const b = med(by(impl), (r) => r.bulkCores?.['B']);
          return a && b ? `${a.m.toFixed(2)} / ${b.m.toFixed(2)}` : 'n/a';
        };
        lines.push(`| ${row.name} | — | ${f('h2pipe')} | ${f('istio')} | ${f('ts')} | | |`);
        continue;
      }
      const d = row.direct ? med(by('direct'), row.get) : null;
      const i = med(by('istio'), row.get);
      const t = med(by('ts'), row.get);
      const h = med(by('h2pipe'), row.get);
      const ratio = (x: typeof t) => (i && x && i.m !== 0 ? (x.m / i.m).toFixed(2) : 'n/a');
      lines.push(`| ${row.name} | ${row.direct ? cell(d, row.digits) : '—'} | ${cell(h, row.digits)} | ${cell(i, row.digits)} | ${cell(t, row.digits)} | ${ratio(t)} | ${ratio(h)} |`);
    }
    const thr = (impl: Impl) => by(impl).map((r) => (r.threads ? `${r.threads['A']}/${r.threads['B']}` : '?')).join(', ');
    lines.push(`\nOS threads per daemon (A/B): Istio ${thr('istio')}; ztunnel-ts ${thr('ts')}`);
  }
  // Scaling model: capacity of one daemon given its measured CPU cost per connection and per byte,
  // with Istio's default worker count on a node of C cores (max(2, ceil(C/4))), each worker at most
  // one core busy, assuming the per-unit costs stay what they are here.
  const wMax = Math.max(...workers);
  const costs = (impl: Impl) => {
    const rs = results.filter((r) => r.impl === impl && r.workers === wMax);
    const perConnUs = med(rs, (r) => (r.connRate ? (r.connRate.cpuUsPerConnection['A']! + r.connRate.cpuUsPerConnection['B']!) / 2 : undefined));
    const sPerGb = med(rs, (r) => (r.bulk?.bytesPerProxyCpuSecond ? (2 * GB) / r.bulk.bytesPerProxyCpuSecond : undefined));
    return { perConnUs: perConnUs?.m, sPerGb: sPerGb?.m };
  };
  const ci = costs('istio');
  const ct = costs('ts');
  lines.push('\n### Model: one daemon on a bigger node (Istio\'s default workers = max(2, ⌈cores/4⌉), each ≤ 1 core)\n');
  lines.push('Per-unit CPU costs measured above (average of the client and server side, per daemon); capacity = workers ÷ cost.\n');
  lines.push('| node cores | workers | Istio: new conns/s | ztunnel-ts: new conns/s | Istio: Gbit/s | ztunnel-ts: Gbit/s |');
  lines.push('|---|---|---|---|---|---|');
  for (const cores of [2, 16, 64]) {
    const w = Math.max(2, Math.ceil(cores / 4));
    const conns = (c: number | undefined) => (c ? Math.round((w * 1e6) / c).toLocaleString('en-US') : 'n/a');
    const gbit = (sPerGb: number | undefined) => (sPerGb ? ((w / sPerGb) * 8).toFixed(1) : 'n/a');
    lines.push(`| ${cores} | ${w} | ${conns(ci.perConnUs)} | ${conns(ct.perConnUs)} | ${gbit(ci.sPerGb)} | ${gbit(ct.sPerGb)} |`);
  }
  return lines.join('\n');
}

export async function runVsIstio(s: VsIstioSettings): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error('--vs-istio needs root (network namespaces)');
  if (!existsSync(MAIN_JS)) throw new Error(`${MAIN_JS} does not exist (npm run build)`);
  const bin = s.impls.includes('istio') ? findIstioZtunnel() : null;
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'ztunnel-vs-istio-'));
  const t0 = Date.now();
  const machine = machineFacts(REPO_ROOT);
  const configPath = path.join(workDir, 'mesh.yaml');
  writeFileSync(configPath, meshYaml());
  const caDir = path.join(workDir, 'ts-ca');
  await openBenchCa(caDir);
  const results: ImplRound[] = [];
  let server: { child: ChildProcess; port: number } | null = null;
  try {
    netnsUp();
    const bctx: BedContext = { benchDir: BENCH_DIR, mainJs: MAIN_JS, workDir, logLevel: s.logLevel, proxyExecArgv: [], daemonNodeFlags: DAEMON_NODE_FLAGS };
    server = await startSinkServer(bctx, IP_B, ['ip', 'netns', 'exec', NS_B]);
    log(`Istio's ztunnel: ${bin ?? 'not run'}; ztunnel-ts: ${MAIN_JS} on node ${process.version}; ${os.cpus().length} cores; load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    let order: Impl[] = [...s.impls];
    for (let round = 1; round <= s.rounds; round++) {
      for (const impl of order) {
        const singleThreaded = impl === 'direct' || impl === 'h2pipe';
        for (const w of singleThreaded ? [0] : s.workers) {
          log(`round ${round}: ${impl}${singleThreaded ? '' : ` with ${w} worker${w === 1 ? '' : 's'}`} (load ${os.loadavg()[0]!.toFixed(1)})`);
          results.push(await measureImpl(s, impl, w, round, { bin, workDir, configPath, caDir, server }));
        }
      }
      order = [...order.slice(1), order[0]!];
    }
  } finally {
    if (server) await stopChild(server.child);
    netnsDown();
  }
  const table = formatVsIstio(results, s.workers);
  const commit = spawnSync('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim();
  const header = `## ztunnel-ts vs Istio's ztunnel — ${new Date().toISOString()}, commit ${machine.gitCommit || commit}, node ${process.version}, ${machine.cores} cores, ${machine.cpuModel}, ${s.rounds} round(s), ${((Date.now() - t0) / 1000).toFixed(0)} s`;
  console.log(`${header}\n${table}`);
  const errors = results.flatMap((r) => r.errors.map((e) => `${r.impl} ${r.workers}w round ${r.round}: ${e}`));
  if (errors.length) console.log(`\nerrors:\n${errors.map((e) => `- ${e}`).join('\n')}`);
  if (s.save) {
    mkdirSync(s.outDir, { recursive: true });
    const file = path.join(s.outDir, `vs-istio-${new Date().toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}.json`);
    writeFileSync(file, JSON.stringify({ settings: s, machine, commit, node: process.version, istioBinary: bin, results }, null, 2) + '\n');
    console.log(`\nresults: ${path.relative(process.cwd(), file)}`);
  }
  rmSync(workDir, { recursive: true, force: true });
  return s.failOnError && errors.length ? 2 : 0;
}
