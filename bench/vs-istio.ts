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
import type { WindowCpu } from './lib/measure.js';
import { anonymousBytes, machineFacts } from './lib/proc-stats.js';
import type { Bed, BedContext, ProxyProcess } from './lib/scenarios.js';
import { forkListening, startSinkServer } from './lib/scenarios.js';
import { formatTraceSummary, readThreadEvents, summarizeTrace } from './lib/pingpong-trace.js';
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

/**
 * direct / h2pipe / istio / ts: the symmetric beds (both sides the same). ts-istio: ztunnel-ts on A,
 * Istio's ztunnel on B; istio-ts: the reverse. In a mixed bed one ztunnel-ts daemon carries the
 * load beside a cheap partner, so it can use more of the machine than in the symmetric bed.
 */
export type Impl = 'direct' | 'h2pipe' | 'istio' | 'ts' | 'ts-istio' | 'istio-ts';
export const IMPLS: readonly Impl[] = ['direct', 'h2pipe', 'istio', 'ts', 'ts-istio', 'istio-ts'];

export interface VsIstioSettings {
  quick: boolean;
  /** Which implementations to run (default all three). */
  impls: Impl[];
  rounds: number;
  /** Worker counts of the daemons; in the mixed beds, of the ztunnel-ts side. */
  workers: number[];
  /** Concurrent clients of the connection-rate load. */
  connConcurrency: number;
  /** Worker count of Istio's ztunnel in the mixed beds. */
  partnerWorkers: number;
  durationMs: number;
  warmupMs: number;
  /** Load before the connection-rate window (JIT warm-up of the connection path). */
  connWarmupMs: number;
  idleConnections: number;
  logLevel: string;
  save: boolean;
  outDir: string;
  failOnError: boolean;
  /** Ping-pong warm-up: at least 1,000 round trips and this long. */
  pingWarmupMs: number;
  /** Connections of the parallel bulk step (0: not run). */
  bulkConnections: number;
  /** Window of the parallel bulk step (after warmupMs). */
  bulkParallelMs: number;
  /** --pingpong-trace: keep each ping-pong round trip and the ztunnel-ts threads' GC / memory events here. */
  pingPongTraceDir?: string;
}

interface ImplRound {
  impl: Impl;
  workers: number;
  /** Mixed beds: the Istio side's worker count. */
  partnerWorkers?: number;
  connConcurrency?: number;
  round: number;
  idleRssBytes?: Record<string, number>;
  idleAnonBytes?: Record<string, number>;
  idle?: IdleMeasurement;
  bulk?: BulkRep;
  bulkCores?: Record<string, number>;
  /** Bulk over bulkConnections parallel connections (the last step). */
  bulkN?: BulkRep;
  bulkNConnections?: number;
  latency?: LatencySummary;
  /** CPU over the ping-pong's measured round trips. */
  pingPongWindow?: WindowCpu;
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

/** Which daemon runs on each side of a bed: the symmetric pairs and the two mixed beds. */
const SIDES: Record<'istio' | 'ts' | 'ts-istio' | 'istio-ts', { a: 'istio' | 'ts'; b: 'istio' | 'ts' }> = {
  istio: { a: 'istio', b: 'istio' },
  ts: { a: 'ts', b: 'ts' },
  'ts-istio': { a: 'ts', b: 'istio' },
  'istio-ts': { a: 'istio', b: 'ts' },
};
const isMixed = (impl: Impl) => impl === 'ts-istio' || impl === 'istio-ts';
const isDaemonBed = (impl: Impl): impl is keyof typeof SIDES => impl in SIDES;

interface Side {
  proxy: ProxyProcess;
  close(): Promise<void>;
}

interface RunCtx {
  bin: string | null;
  workDir: string;
  configPath: string;
  caDir: string;
  /** Istio's FAKE_CA root (certificate and key), which ztunnel-ts loads in the mixed beds. */
  istioRoot: { cert: string; key: string } | null;
  server: { port: number; pid: number };
  /** Worker count of the Istio partner in the mixed beds. */
  partnerWorkers: number;
  /** --pingpong-trace DIR */
  traceDir?: string;
}

function startIstioSide(ctx: RunCtx, side: 'a' | 'b', workers: number, logLevel: string, tag: string): Side {
  const ns = side === 'a' ? NS_A : NS_B;
  const logFd = openSync(path.join(ctx.workDir, `istio-${side}-${tag}.log`), 'w');
  const env = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    FAKE_CA: 'true',
    XDS_ADDRESS: '',
    CA_ADDRESS: '',
    ENABLE_ORIG_SRC: 'false',
    LOCAL_XDS_PATH: ctx.configPath,
    PROXY_MODE: 'dedicated',
    UNSTABLE_ENABLE_SOCKS5: 'true',
    PROXY_WORKLOAD_INFO: `default/${side}-0/${SERVICE_ACCOUNT[side]}`,
    RUST_LOG: logLevel,
    ZTUNNEL_WORKER_THREADS: String(workers),
  };
  // `ip netns exec` execs the binary: the child's pid is the daemon's.
  const child = track(spawn('ip', ['netns', 'exec', ns, ctx.bin!], { env, stdio: ['ignore', logFd, logFd] }));
  closeSync(logFd);
  return { proxy: { name: side.toUpperCase(), pid: child.pid! }, close: () => stopChild(child, 10_000) };
}

async function startTsSide(ctx: RunCtx, side: 'a' | 'b', workers: number, logLevel: string, withIstioRoot: boolean, tag: string): Promise<Side> {
  const ns = side === 'a' ? NS_A : NS_B;
  const ip = side === 'a' ? IP_A : IP_B;
  // Facing Istio's ztunnel, both need one root: Istio's FAKE_CA test root, given to ztunnel-ts as
  // its local CA (as shared/tools/istio-peers/interop-istio.sh does). Facing itself, its own root.
  const ca: Record<string, string> = withIstioRoot ? { ZTUNNEL_CA_CERT: ctx.istioRoot!.cert, ZTUNNEL_CA_KEY: ctx.istioRoot!.key } : { ZTUNNEL_STATE_DIR: ctx.caDir };
  const d = await startDaemonProcess({
    name: `ztunnel-ts ${side.toUpperCase()}`,
    mainJs: MAIN_JS,
    wrapper: ['ip', 'netns', 'exec', ns],
    execArgv: ctx.traceDir ? [...DAEMON_NODE_FLAGS, '--import', path.join(BENCH_DIR, 'lib', 'thread-events-preload.js')] : DAEMON_NODE_FLAGS,
    env: {
      ...(ctx.traceDir ? { ZTUNNEL_BENCH_EVENTS_DIR: path.join(ctx.traceDir, `${tag}-${side.toUpperCase()}`) } : {}),
      XDS_ADDRESS: '',
      FAKE_CA: 'true',
      ...ca,
      // As for Istio's ztunnel: spoofing the client's address cannot be routed back in this bed.
      ENABLE_ORIG_SRC: 'false',
      LOCAL_XDS_PATH: ctx.configPath,
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
    // As Istio's ztunnel here: default (plain text) logs to a file, nobody reading a pipe.
    logFile: path.join(ctx.workDir, `ts-${side}-${tag}.log`),
  });
  return { proxy: { name: side.toUpperCase(), pid: d.pid }, close: () => d.stop() };
}

/**
 * A daemon on each side, as `impl` says; ready when both readiness endpoints answer. In a mixed
 * bed the ztunnel-ts side runs `workers` workers and the Istio side ctx.partnerWorkers.
 */
async function startDaemonPair(ctx: RunCtx, impl: keyof typeof SIDES, workers: number, logLevel: string, round: number): Promise<{ proxies: ProxyProcess[]; close(): Promise<void> }> {
  const sides: Side[] = [];
  const close = async () => {
    await Promise.all(sides.map((s) => s.close()));
  };
  try {
    for (const side of ['a', 'b'] as const) {
      const kind = SIDES[impl][side];
      const ns = side === 'a' ? NS_A : NS_B;
      if (kind === 'istio') {
        sides.push(startIstioSide(ctx, side, isMixed(impl) ? ctx.partnerWorkers : workers, logLevel, `${impl}-${workers}w-${round}`));
        await waitReady(ns, 'http://127.0.0.1:15021/healthz/ready', 30_000);
      } else {
        sides.push(await startTsSide(ctx, side, workers, logLevel, isMixed(impl), `${impl}-${workers}w-${round}`));
        await waitReady(ns, `http://${side === 'a' ? IP_A : IP_B}:15021/healthz/ready`, 30_000);
      }
    }
    return { proxies: sides.map((s) => s.proxy), close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** Istio's FAKE_CA test root (src/tls/root-cert.pem + ca-key.pem of its source tree), read at run time. */
export function findIstioRoot(bin: string): { cert: string; key: string } | null {
  const dirs = [process.env['ISTIO_ZT_SRC'], path.join(path.dirname(path.dirname(bin)), 'src'), '/tmp/istio-src'].filter((d): d is string => !!d);
  for (const d of dirs) {
    const cert = path.join(d, 'src', 'tls', 'root-cert.pem');
    const key = path.join(d, 'src', 'tls', 'ca-key.pem');
    if (existsSync(cert) && existsSync(key)) return { cert, key };
  }
  return null;
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

/** Cores each proxy used over a measurement window (CPU seconds / wall seconds). */
function coresOf(w: WindowCpu): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(w.proxies)) out[k] = v / w.seconds;
  return out;
}

async function measureImpl(s: VsIstioSettings, impl: Impl, workers: number, round: number, ctx: RunCtx): Promise<ImplRound> {
  const out: ImplRound = { impl, workers, round, errors: [], connConcurrency: s.connConcurrency, ...(isMixed(impl) ? { partnerWorkers: ctx.partnerWorkers } : {}) };
  let pair: { proxies: ProxyProcess[]; close(): Promise<void> } | null = null;
  const target = { host: IP_B, port: ctx.server.port };
  try {
    let h2PipePort = 0;
    if (isDaemonBed(impl)) pair = await startDaemonPair(ctx, impl, workers, s.logLevel, round);
    else if (impl === 'h2pipe') {
      const p = await startH2Pipe(ctx.workDir, ctx.caDir, `${IP_B}:${ctx.server.port}`);
      pair = p;
      h2PipePort = p.port;
    }
    const proxies = pair?.proxies ?? [];
    // Istio's ztunnel serves SOCKS5 on localhost only; ztunnel-ts here on the node's address.
    const route: Bed['route'] =
      impl === 'direct' ? { connect: target }
      : impl === 'h2pipe' ? { connect: { host: IP_A, port: h2PipePort } }
      : { connect: { host: SIDES[impl].a === 'istio' ? '127.0.0.1' : IP_A, port: 15080 }, socks5Target: target };
    const bed: Bed = {
      id: 's3',
      route,
      clientWrapper: ['ip', 'netns', 'exec', NS_A],
      proxies,
      observed: [{ name: 'server', pid: ctx.server.pid }],
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
      out.idleAnonBytes = {};
      out.threads = {};
      for (const p of proxies) {
        out.idleRssBytes[p.name] = await settledRss(p.pid);
        out.idleAnonBytes[p.name] = anonymousBytes(p.pid);
        out.threads[p.name] = threadsOf(p.pid);
      }
      // The mixed beds measure load (CPU, cores, rates); memory and latency are the symmetric beds'.
      if (!isMixed(impl)) {
        await step('idle', async () => {
          out.idle = await idleConnections(BENCH_DIR, bed, s.idleConnections, Math.min(200, Math.ceil(s.idleConnections / 10)), s.quick ? 1000 : 2000);
        });
      }
    }
    await step('bulk', async () => {
      out.bulk = await bulkOnce(BENCH_DIR, bed, 1, s.warmupMs, s.durationMs);
      out.bulkCores = coresOf(out.bulk.window);
    });
    if (!isMixed(impl)) {
      await step('ping-pong', async () => {
        const r = await pingPongOnce(BENCH_DIR, bed, { warmupRoundTrips: 1000, warmupMs: s.pingWarmupMs, roundTrips: 1_000_000, maxDurationMs: s.pingWarmupMs + s.durationMs, trace: !!ctx.traceDir });
        out.latency = summarizeLatency(Float64Array.from(r.samplesUs));
        out.pingPongWindow = r.window;
        if (ctx.traceDir && r.sentAtMs) {
          const tag = `${impl}-${workers}w-${round}`;
          const events = ['A', 'B'].flatMap((side) => readThreadEvents(path.join(ctx.traceDir!, `${tag}-${side}`), side));
          const summary = summarizeTrace(r.samplesUs, r.sentAtMs, events);
          writeFileSync(path.join(ctx.traceDir, `${tag}-pingpong.json`), JSON.stringify({ summary, samplesUs: r.samplesUs, sentAtMs: r.sentAtMs, monoMinusWallMs: r.monoMinusWallMs, events }) + '\n');
          log(`${tag} ping-pong trace: ${formatTraceSummary(summary)}`);
        }
      });
    }
    await step('connection rate', async () => {
      const r = await connRateOnce(BENCH_DIR, bed, s.connConcurrency, s.connWarmupMs, s.durationMs);
      out.connRate = r;
      out.connCores = coresOf(r.window);
      if (r.errors) out.errors.push(`connection rate: ${r.errors} failed (first: ${r.firstError})`);
    });
    // Last, so its garbage and grown buffers are in no other step: several connections at once,
    // which a daemon with more than one worker can spread over its workers (cores under load).
    if (s.bulkConnections > 0 && isDaemonBed(impl)) {
      await step(`bulk ${s.bulkConnections} connections`, async () => {
        out.bulkN = await bulkOnce(BENCH_DIR, bed, s.bulkConnections, s.warmupMs, s.bulkParallelMs);
        out.bulkNConnections = s.bulkConnections;
      });
    }
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
  { name: 'ping-pong daemon CPU µs per round trip (A+B)', get: (r) => perRoundTrip(r, (w) => sum(w.proxies)), digits: 0, lowerIsBetter: true },
  { name: 'ping-pong: daemon threads waiting for a CPU, µs per round trip (A+B)', get: (r) => perRoundTrip(r, (w) => sum(w.runQueueWait)), digits: 0, lowerIsBetter: true },
  { name: 'new tunneled connections/s', get: (r) => r.connRate?.perSec, digits: 0, direct: true },
  { name: 'CPU µs per new connection, A (client side)', get: (r) => r.connRate?.cpuUsPerConnection['A'], digits: 0, lowerIsBetter: true },
  { name: 'CPU µs per new connection, B (server side)', get: (r) => r.connRate?.cpuUsPerConnection['B'], digits: 0, lowerIsBetter: true },
  { name: 'daemon cores used during connection rate, A', get: (r) => r.connCores?.['A'], digits: 2 },
  { name: 'daemon cores used during connection rate, B', get: (r) => r.connCores?.['B'], digits: 2 },
  { name: 'idle RSS, A, MB', get: (r) => (r.idleRssBytes?.['A'] ?? NaN) / 1e6, digits: 1, lowerIsBetter: true },
  { name: 'idle RSS, B, MB', get: (r) => (r.idleRssBytes?.['B'] ?? NaN) / 1e6, digits: 1, lowerIsBetter: true },
  // RSS less the executable's file pages (docs/memory.md: ztunnel-ts drops the node binary's start-up pages).
  { name: 'idle anonymous memory, A, MB', get: (r) => (r.idleAnonBytes?.['A'] ?? NaN) / 1e6, digits: 1, lowerIsBetter: true },
  { name: 'idle anonymous memory, B, MB', get: (r) => (r.idleAnonBytes?.['B'] ?? NaN) / 1e6, digits: 1, lowerIsBetter: true },
  { name: 'KB per idle tunneled connection, A', get: (r) => (r.idle ? r.idle.bytesPerConnection['A']! / 1e3 : undefined), digits: 1, lowerIsBetter: true },
  { name: 'KB per idle tunneled connection, B', get: (r) => (r.idle ? r.idle.bytesPerConnection['B']! / 1e3 : undefined), digits: 1, lowerIsBetter: true },
];

/** A ping-pong window's `pick` (CPU seconds) in µs per measured round trip. */
function perRoundTrip(r: ImplRound, pick: (w: WindowCpu) => number | undefined): number | undefined {
  const w = r.pingPongWindow;
  const v = w && pick(w);
  return w && v !== undefined && r.latency?.count ? (v * 1e6) / r.latency.count : undefined;
}

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
  lines.push(formatScaling(results, workers));
  lines.push(formatParallelBulk(results, workers));
  lines.push(formatThreadSplit(results, workers));
  lines.push(formatModel(results, workers));
  return lines.join('\n');
}

const BED_NAME: Record<Impl, string> = {
  direct: 'direct',
  h2pipe: 'Node HTTP/2 pipe',
  istio: 'Istio A → Istio B',
  ts: 'ts A → ts B',
  'ts-istio': 'ts A → Istio B',
  'istio-ts': 'Istio A → ts B',
};
const DAEMON_BEDS: Array<keyof typeof SIDES> = ['istio', 'ts', 'ts-istio', 'istio-ts'];
/** Cores used outside the bed above which a row measured a machine busy with other work. */
const OTHER_WORK_CORES = 0.2;
const cores = os.cpus().length;
const f2 = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(2));

/** The bed's worker label: both daemons at w, or in a mixed bed the ztunnel-ts side at w. */
function bedLabel(impl: Impl, w: number, partnerWorkers: number): string {
  if (!isMixed(impl)) return `${BED_NAME[impl]}, ${w}w each`;
  return `${BED_NAME[impl]}, ts ${w}w (Istio ${partnerWorkers}w)`;
}

/**
 * Worker scaling, same run: each bed's connection rate at every worker count, the cores each daemon
 * used, the load client and server beside them, and the whole machine's busy cores (so a rate
 * capped by the machine, not by a daemon, shows as such).
 */
function formatScaling(results: ImplRound[], workers: number[]): string {
  const lines: string[] = [];
  const partner = results.find((r) => isMixed(r.impl))?.partnerWorkers ?? 0;
  lines.push(`\n### Worker scaling: connection rate (${results.find((r) => r.connRate)?.connConcurrency ?? '?'} clients), cores used over the measured window (medians of the rounds)\n`);
  lines.push(`| bed | new conns/s | daemon A cores | daemon B cores | load client cores | server cores | machine busy cores (of ${cores}) | of which other processes | bed CPU µs per connection | ceiling of ${cores} cores, conns/s |`);
  lines.push('|---|---|---|---|---|---|---|---|---|---|');
  const ratios: string[] = [];
  for (const impl of DAEMON_BEDS) {
    const rate: Record<number, number> = {};
    const outside: Record<number, number> = {};
    for (const w of workers) {
      const rs = results.filter((r) => r.impl === impl && r.workers === w && r.connRate);
      if (!rs.length) continue;
      const m = (get: (r: ImplRound) => number | undefined) => med(rs, get)?.m;
      const perSec = m((r) => r.connRate?.perSec);
      if (perSec !== undefined) rate[w] = perSec;
      const win = (r: ImplRound) => r.connRate!.window;
      const other = m((r) => (win(r).machineBusy - sum(win(r).proxies)! - sum(win(r).others)!) / win(r).seconds);
      if (other !== undefined) outside[w] = other;
      lines.push(
        `| ${bedLabel(impl, w, partner)} | ${perSec?.toFixed(0) ?? 'n/a'} | ${f2(m((r) => r.connCores?.['A']))} | ${f2(m((r) => r.connCores?.['B']))} | ` +
          `${f2(m((r) => win(r).others['load client']! / win(r).seconds))} | ${f2(m((r) => win(r).others['server']! / win(r).seconds))} | ${f2(m((r) => win(r).machineBusy / win(r).seconds))} | ` +
          `${f2(other)} | ` +
          `${m((r) => bedCpuUs(r))?.toFixed(0) ?? 'n/a'} | ${m((r) => (cores * 1e6) / bedCpuUs(r))?.toFixed(0) ?? 'n/a'} |`,
      );
    }
    const ws = Object.keys(rate).map(Number).sort((a, b) => a - b);
    if (ws.length >= 2) {
      const lo = ws[0]!;
      const hi = ws[ws.length - 1]!;
      // Other work on a shared machine takes cores from one row and not the other.
      const busy = Math.max(outside[hi] ?? 0, outside[lo] ?? 0);
      const caveat = busy > OTHER_WORK_CORES ? `, not comparable: other processes used ${busy.toFixed(2)} cores in one of them` : '';
      ratios.push(`${BED_NAME[impl]}: ${hi}w ${rate[hi]!.toFixed(0)} vs ${lo}w ${rate[lo]!.toFixed(0)} conns/s (×${(rate[hi]! / rate[lo]!).toFixed(2)}${caveat})`);
    }
  }
  if (ratios.length) lines.push(`\nConnection rate, more workers vs fewer, same run: ${ratios.join('; ')}.`);
  return lines.join('\n');
}

/**
 * Bulk over several connections at once, each bed and worker count: throughput, the cores each
 * daemon used and its busiest thread, the rest of the bed, the whole machine. A daemon beside a
 * cheap partner (the mixed beds) has room to use more than one core; in the symmetric beds two
 * daemons, the load client and the server share the machine.
 */
function formatParallelBulk(results: ImplRound[], workers: number[]): string {
  const n = results.find((r) => r.bulkNConnections)?.bulkNConnections;
  if (!n) return '';
  const lines: string[] = [];
  lines.push(`\n### Bulk over ${n} connections at once: cores per daemon under load (medians of the rounds)\n`);
  lines.push(`| bed | Gbit/s | daemon A cores | daemon B cores | A busiest thread, cores | B busiest thread, cores | load client cores | server cores | machine busy cores (of ${cores}) | daemon CPU s per GB (A+B) |`);
  lines.push('|---|---|---|---|---|---|---|---|---|---|');
  const over: string[] = [];
  for (const impl of DAEMON_BEDS) {
    for (const w of workers) {
      const rs = results.filter((r) => r.impl === impl && r.workers === w && r.bulkN);
      if (!rs.length) continue;
      const m = (get: (r: ImplRound) => number | undefined) => med(rs, get)?.m;
      const win = (r: ImplRound) => r.bulkN!.window;
      const busiest = (side: string) => {
        const t = threadCores(rs, side, (r) => r.bulkN?.window)[0];
        return t ? `${t[0]} ${t[1].toFixed(2)}` : 'n/a';
      };
      const label = bedLabel(impl, w, rs[0]!.partnerWorkers ?? 0);
      lines.push(
        `| ${label} | ${f2(m((r) => r.bulkN!.gbitPerSec))} | ${f2(m((r) => win(r).proxies['A']! / win(r).seconds))} | ${f2(m((r) => win(r).proxies['B']! / win(r).seconds))} | ` +
          `${busiest('A')} | ${busiest('B')} | ${f2(m((r) => win(r).others['load client']! / win(r).seconds))} | ${f2(m((r) => win(r).others['server']! / win(r).seconds))} | ` +
          `${f2(m((r) => win(r).machineBusy / win(r).seconds))} | ${f2(m((r) => (r.bulkN!.bytesPerProxyCpuSecond ? GB / r.bulkN!.bytesPerProxyCpuSecond : undefined)))} |`,
      );
      for (const side of ['A', 'B']) {
        const c = m((r) => win(r).proxies[side]! / win(r).seconds);
        if (c !== undefined) over.push(`${side === 'A' ? 'A' : 'B'} (${daemonOf(impl, side) === 'ts' ? 'ztunnel-ts' : 'Istio'}) of ${label}: ${c.toFixed(2)}`);
      }
    }
  }
  lines.push(`\nCores per daemon under this load: ${over.join('; ')}.`);
  return lines.join('\n');
}

/** CPU µs per connection of every process in the bed (daemons, load client, server) during the connection rate. */
function bedCpuUs(r: ImplRound): number {
  const w = r.connRate!.window;
  return ((sum(w.proxies)! + sum(w.others)!) * 1e6) / r.connRate!.connections;
}

type ThreadRole = 'workers' | 'main' | 'other';
/** ztunnel-ts: workers `ztunnel-dp-N`, main `MainThread`. Istio: Tokio's `ztunnel-N`, main `ztunnel`. */
function roleOf(daemon: 'istio' | 'ts', thread: string): ThreadRole {
  const name = thread.replace(/×\d+$/, '');
  if (daemon === 'ts') return /^ztunnel-dp-\d+$/.test(name) ? 'workers' : name === 'MainThread' ? 'main' : 'other';
  return /^ztunnel-\d+$/.test(name) ? 'workers' : name === 'ztunnel' ? 'main' : 'other';
}
const daemonOf = (impl: Impl, side: string): 'istio' | 'ts' | null => (isDaemonBed(impl) ? SIDES[impl][side === 'A' ? 'a' : 'b'] : null);

/** Median over the rounds of each thread's CPU seconds ÷ window seconds. */
function threadCores(rs: ImplRound[], side: string, pick: (r: ImplRound) => WindowCpu | undefined): Array<[string, number]> {
  const names = new Set<string>();
  for (const r of rs) for (const k of Object.keys(pick(r)?.threads[side] ?? {})) names.add(k);
  const out: Array<[string, number]> = [];
  for (const n of names) {
    const v = med(rs, (r) => {
      const w = pick(r);
      return w ? (w.threads[side]?.[n] ?? 0) / w.seconds : undefined;
    });
    if (v) out.push([n, v.m]);
  }
  return out.sort((a, b) => b[1] - a[1]);
}

/** max ÷ mean of the worker threads' CPU (1.00 = evenly spread; W = all on one worker of W). */
function workerImbalance(w: WindowCpu, side: string, daemon: 'istio' | 'ts'): number | undefined {
  const xs = Object.entries(w.threads[side] ?? {})
    .filter(([n]) => roleOf(daemon, n) === 'workers' && !/×\d+$/.test(n))
    .map(([, v]) => v);
  if (xs.length < 1) return undefined;
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return mean > 0 ? Math.max(...xs) / mean : undefined;
}

/** Where each daemon's CPU went, per thread, during the connection rate and the bulk transfer. */
function formatThreadSplit(results: ImplRound[], workers: number[]): string {
  const lines: string[] = [];
  lines.push('\n### CPU per thread (cores = CPU seconds ÷ window seconds, medians of the rounds; threads under 0.01 cores left out)\n');
  for (const [what, pick] of [
    ['connection rate', (r: ImplRound) => r.connRate?.window],
    ['bulk 1 connection', (r: ImplRound) => r.bulk?.window],
    [`bulk ${results.find((r) => r.bulkNConnections)?.bulkNConnections ?? 'N'} connections`, (r: ImplRound) => r.bulkN?.window],
  ] as const) {
    for (const impl of DAEMON_BEDS) {
      for (const w of workers) {
        const rs = results.filter((r) => r.impl === impl && r.workers === w && pick(r));
        if (!rs.length) continue;
        const sides = ['A', 'B'].map((side) => {
          const daemon = daemonOf(impl, side)!;
          const t = threadCores(rs, side, pick);
          const total = t.reduce((a, [, v]) => a + v, 0);
          const shown = t.filter(([, v]) => v >= 0.01).map(([n, v]) => `${n} ${v.toFixed(2)}`);
          const imb = med(rs, (r) => workerImbalance(pick(r)!, side, daemon));
          const balance = w > 1 && imb ? ` (workers max/mean ${imb.m.toFixed(2)})` : '';
          const waited = med(rs, (r) => {
            const win = pick(r)!;
            return win.runQueueWait?.[side] !== undefined ? win.runQueueWait[side] / win.seconds : undefined;
          });
          const wait = waited ? `; waiting for a CPU ${waited.m.toFixed(2)}` : '';
          return `${side} (${daemon === 'ts' ? 'ts' : 'Istio'}) ${total.toFixed(2)} = ${shown.join(', ') || '—'}${balance}${wait}`;
        });
        lines.push(`- ${what}, ${bedLabel(impl, w, rs[0]!.partnerWorkers ?? 0)}: ${sides.join('; ')}`);
      }
    }
  }
  return lines.join('\n');
}

interface UnitCosts {
  /** CPU µs per new connection by thread role (average of the client and server side). */
  conn: Record<ThreadRole, number>;
  /** CPU s per GB by thread role (average of the two sides). */
  byte: Record<ThreadRole, number>;
  /** Worker-thread max ÷ mean during the connection rate. */
  imbalance: number;
}

/** Per-unit CPU costs of one implementation in its symmetric bed at `w` workers, split by thread role. */
function unitCosts(results: ImplRound[], impl: 'istio' | 'ts', w: number): UnitCosts | null {
  const rs = results.filter((r) => r.impl === impl && r.workers === w);
  const split = (win: WindowCpu, per: number): Record<ThreadRole, number> => {
    const out: Record<ThreadRole, number> = { workers: 0, main: 0, other: 0 };
    for (const side of ['A', 'B']) for (const [n, v] of Object.entries(win.threads[side] ?? {})) out[roleOf(impl, n)] += v / per / 2;
    return out;
  };
  const pick = (get: (r: ImplRound) => Record<ThreadRole, number> | undefined): Record<ThreadRole, number> | null => {
    const out: Record<ThreadRole, number> = { workers: 0, main: 0, other: 0 };
    for (const k of Object.keys(out) as ThreadRole[]) {
      const v = med(rs, (r) => get(r)?.[k]);
      if (!v) return null;
      out[k] = v.m;
    }
    return out;
  };
  const conn = pick((r) => (r.connRate?.connections ? split(r.connRate.window, r.connRate.connections / 1e6) : undefined));
  const byte = pick((r) => (r.bulk?.bytes ? split(r.bulk.window, r.bulk.bytes / GB) : undefined));
  const imb = med(rs, (r) => {
    if (!r.connRate) return undefined;
    const xs = ['A', 'B'].map((side) => workerImbalance(r.connRate!.window, side, impl)).filter((x): x is number => x !== undefined);
    return xs.length ? Math.max(...xs) : undefined;
  });
  if (!conn || !byte) return null;
  return { conn, byte, imbalance: imb?.m ?? 1 };
}

/**
 * Capacity of one daemon on a node of C cores, from the costs measured in this run: Istio's default
 * worker count W = max(2, ⌈C/4⌉) (ztunnel-ts's default too), each worker thread at most one core;
 * the busiest worker carries `imbalance` × its fair share; the main thread is one more serial
 * resource; the other threads (V8's GC/compiler helpers, libuv's pool) run beside them on spare cores.
 * rate = min(W ÷ (worker cost × imbalance), 1 ÷ main cost, C ÷ all costs); cores = rate × all costs.
 */
function formatModel(results: ImplRound[], workers: number[]): string {
  const wMax = Math.max(...workers);
  const lines: string[] = [];
  const costs = { istio: unitCosts(results, 'istio', wMax), ts: unitCosts(results, 'ts', wMax) };
  lines.push(`\n### Model: one daemon on a bigger node (workers = max(2, ⌈cores/4⌉), each ≤ 1 core; costs from the ${wMax}-worker symmetric beds above)\n`);
  for (const [impl, c] of Object.entries(costs)) {
    if (!c) continue;
    const name = impl === 'ts' ? 'ztunnel-ts' : 'Istio';
    lines.push(
      `- ${name} inputs (per daemon, average of A and B): per new connection ${c.conn.workers.toFixed(0)} µs on workers + ${c.conn.main.toFixed(0)} µs main thread + ${c.conn.other.toFixed(0)} µs other threads; ` +
        `per GB ${c.byte.workers.toFixed(2)} + ${c.byte.main.toFixed(2)} + ${c.byte.other.toFixed(2)} CPU s; busiest worker at ${c.imbalance.toFixed(2)}× its fair share`,
    );
  }
  const fit = (split: Record<ThreadRole, number>, w: number, imbalance: number, unit: number, nodeCores: number) => {
    const perUnit = (split.workers + split.main + split.other) / unit;
    const byWorkers = split.workers > 0 ? w / ((split.workers / unit) * imbalance) : Infinity;
    const byMain = split.main > 0 ? 1 / (split.main / unit) : Infinity;
    // No more cores than the node has (on 2 cores the helper threads compete with the workers).
    const byNode = nodeCores / perUnit;
    const rate = Math.min(byWorkers, byMain, byNode);
    const bound = rate === byNode ? ', all node cores' : rate === byMain ? ', main-thread bound' : '';
    return { rate, bound, cores: rate * perUnit };
  };
  lines.push('');
  lines.push('| node cores | workers | Istio: new conns/s (cores) | ztunnel-ts: new conns/s (cores) | ztunnel-ts, workers even: new conns/s (cores) | Istio: Gbit/s (cores) | ztunnel-ts: Gbit/s (cores) | ztunnel-ts, workers even: Gbit/s (cores) |');
  lines.push('|---|---|---|---|---|---|---|---|');
  for (const nodeCores of [2, 16, 64]) {
    const w = Math.max(2, Math.ceil(nodeCores / 4));
    const conns = (c: UnitCosts | null, even = false) => {
      if (!c) return 'n/a';
      const r = fit(c.conn, w, even ? 1 : c.imbalance, 1e6, nodeCores);
      return `${Math.round(r.rate).toLocaleString('en-US')} (${r.cores.toFixed(1)}${r.bound})`;
    };
    const gbit = (c: UnitCosts | null, even = false) => {
      if (!c) return 'n/a';
      const r = fit(c.byte, w, even ? 1 : c.imbalance, 1, nodeCores);
      return `${(r.rate * 8).toFixed(1)} (${r.cores.toFixed(1)}${r.bound})`;
    };
    lines.push(`| ${nodeCores} | ${w} | ${conns(costs.istio)} | ${conns(costs.ts)} | ${conns(costs.ts, true)} | ${gbit(costs.istio)} | ${gbit(costs.ts)} | ${gbit(costs.ts, true)} |`);
  }
  return lines.join('\n');
}

export async function runVsIstio(s: VsIstioSettings): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error('--vs-istio needs root (network namespaces)');
  if (!existsSync(MAIN_JS)) throw new Error(`${MAIN_JS} does not exist (npm run build)`);
  const bin = s.impls.some((i) => isDaemonBed(i) && (SIDES[i].a === 'istio' || SIDES[i].b === 'istio')) ? findIstioZtunnel() : null;
  const istioRoot = s.impls.some(isMixed) ? findIstioRoot(bin!) : null;
  if (s.impls.some(isMixed) && !istioRoot) throw new Error("the mixed beds need Istio's FAKE_CA root (src/tls/root-cert.pem, ca-key.pem of its source; set ISTIO_ZT_SRC)");
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'ztunnel-vs-istio-'));
  if (s.pingPongTraceDir) mkdirSync(s.pingPongTraceDir, { recursive: true });
  const t0 = Date.now();
  const machine = machineFacts(REPO_ROOT);
  // The config has a directory of its own: ztunnel-ts watches the config's directory, and the
  // daemons' log files (written in workDir) would wake its main thread for every log write, which
  // a deployment (logs on stdout) does not have.
  mkdirSync(path.join(workDir, 'config'));
  const configPath = path.join(workDir, 'config', 'mesh.yaml');
  writeFileSync(configPath, meshYaml());
  const caDir = path.join(workDir, 'ts-ca');
  await openBenchCa(caDir);
  const results: ImplRound[] = [];
  let server: { child: ChildProcess; port: number } | null = null;
  const partnerWorkers = s.partnerWorkers;
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
          const ctx: RunCtx = { bin, workDir, configPath, caDir, istioRoot, server: { port: server.port, pid: server.child.pid! }, partnerWorkers, ...(s.pingPongTraceDir ? { traceDir: s.pingPongTraceDir } : {}) };
          results.push(await measureImpl(s, impl, w, round, ctx));
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
