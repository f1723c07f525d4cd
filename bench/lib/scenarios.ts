// The five test beds. Each starts its own application server (a separate process) and its proxies
// (separate processes), and tells the load client how to reach the server (`route`). Traffic stays
// on 127.0.0.1 / 127.x, except scenario 4, whose addresses live in the netns bed's own namespaces.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { forkScript, stopChild, waitForMessage } from './children.js';
import { startDaemonProcess, type DaemonProcess } from './daemon-process.js';
import type { HostPort, Route } from './protocol.js';
import { issueToFiles, openBenchCa } from './test-ca.js';

export type ScenarioId = 's1' | 's2' | 's2h' | 's3' | 's4';

export const SCENARIO_TITLES: Record<ScenarioId, string> = {
  s1: 'direct TCP',
  s2: 'Node TLS two-hop pipe',
  s2h: 'Node HTTP/2 CONNECT pipe',
  s3: 'ztunnel-ts dedicated (SOCKS5→HBONE)',
  s4: 'ztunnel-ts shared, netns capture',
};

export interface ProxyProcess {
  readonly name: string;
  readonly pid: number;
}

export interface Bed {
  readonly id: ScenarioId;
  readonly route: Route;
  /** Command prefix for the load client (scenario 4 runs it inside the client pod's netns). */
  readonly clientWrapper?: readonly string[];
  /** The proxies whose CPU and memory are measured; empty for direct TCP. */
  readonly proxies: readonly ProxyProcess[];
  /** Other processes whose CPU is read over each measurement window (e.g. the sink server). */
  readonly observed?: readonly ProxyProcess[];
  /** The proxies' last log lines, attached to a failed measurement's error. */
  recentLogs?(): string[];
  close(): Promise<void>;
}

export interface BedContext {
  /** dist/bench (where the compiled scripts are). */
  readonly benchDir: string;
  readonly mainJs: string;
  /** A fresh temporary directory for this run. */
  readonly workDir: string;
  /** RUST_LOG for daemons. */
  readonly logLevel: string;
  /** Node flags for the proxies (e.g. --cpu-prof). */
  readonly proxyExecArgv: readonly string[];
  /** Node flags of the ztunnel-ts daemons (s3, s4), before proxyExecArgv. */
  readonly daemonNodeFlags: readonly string[];
}

interface Listening {
  type: 'listening';
  port: number;
}

/** Forks a script that answers { type: 'listening', port } and waits for it. */
export async function forkListening(script: string, args: string[], env: Record<string, string>, o: { execArgv?: readonly string[]; wrapper?: readonly string[] } = {}): Promise<{ child: ChildProcess; port: number }> {
  const child = forkScript(script, { args, env, ...o });
  try {
    const m = await waitForMessage<Listening>(child, (m) => m.type === 'listening', 15_000, path.basename(script));
    return { child, port: m.port };
  } catch (e) {
    await stopChild(child);
    throw e;
  }
}

export function startSinkServer(ctx: BedContext, host: string, wrapper?: readonly string[]) {
  return forkListening(path.join(ctx.benchDir, 'sink-server.js'), [host], {}, wrapper ? { wrapper } : {});
}

/** A random 127.66.x.0/24 block so two runs (or a run and the tests' 127.100+ addresses) do not collide. */
function loopbackBlock(): string {
  return `127.66.${1 + Math.floor(Math.random() * 250)}`;
}

async function closeAll(children: ChildProcess[], daemons: DaemonProcess[]): Promise<void> {
  await Promise.all([...daemons.map((d) => d.stop()), ...children.map((c) => stopChild(c))]);
}

// ---------------------------------------------------------------------------------------------

/** Scenario 1: the client talks to the server directly. */
export async function setupDirect(ctx: BedContext): Promise<Bed> {
  const server = await startSinkServer(ctx, '127.0.0.1');
  return {
    id: 's1',
    route: { connect: { host: '127.0.0.1', port: server.port } },
    proxies: [],
    close: () => closeAll([server.child], []),
  };
}

/**
 * Scenarios 2 and 2h: client → A → B → server, with A and B forked from `script` as separate,
 * measured processes; mutual TLS with leaves of a throwaway CA made here. `argsA(bPort, target)`
 * gives A's arguments after its role and listen host.
 */
async function setupTwoHopPipe(ctx: BedContext, id: 's2' | 's2h', name: string, argsA: (bPort: number, target: string) => string[]): Promise<Bed> {
  const dir = path.join(ctx.workDir, name);
  mkdirSync(dir, { recursive: true });
  const caDir = path.join(dir, 'ca');
  await openBenchCa(caDir);
  const [certA, certB] = [await issueToFiles(caDir, dir, `${name}-a`), await issueToFiles(caDir, dir, `${name}-b`)];
  const started: ChildProcess[] = [];
  try {
    const server = await startSinkServer(ctx, '127.0.0.1');
    started.push(server.child);
    const target = `127.0.0.1:${server.port}`;
    const script = path.join(ctx.benchDir, `${name}.js`);
    const tlsEnv = (own: typeof certA, peerUri: string) => ({
      BENCH_TLS_CERT: own.certPath,
      BENCH_TLS_KEY: own.keyPath,
      BENCH_TLS_CA: own.caPath,
      BENCH_TLS_PEER_URI: peerUri,
    });
    const b = await forkListening(script, ['b', '127.0.0.1', target], tlsEnv(certB, certA.uri), { execArgv: ctx.proxyExecArgv });
    started.push(b.child);
    const a = await forkListening(script, ['a', '127.0.0.1', ...argsA(b.port, target)], tlsEnv(certA, certB.uri), { execArgv: ctx.proxyExecArgv });
    started.push(a.child);
    return {
      id,
      route: { connect: { host: '127.0.0.1', port: a.port } },
      proxies: [
        { name: 'A', pid: a.child.pid! },
        { name: 'B', pid: b.child.pid! },
      ],
      close: () => closeAll(started, []),
    };
  } catch (e) {
    await closeAll(started, []);
    throw e;
  }
}

/** Scenario 2: client → A (TCP in, TLS out) → B (TLS in, TCP out) → server, one TLS connection per app connection. */
export function setupTlsPipe(ctx: BedContext): Promise<Bed> {
  return setupTwoHopPipe(ctx, 's2', 'tls-pipe', (bPort) => [`127.0.0.1:${bPort}`]);
}

/**
 * Scenario 2h: client → A (TCP in, CONNECT stream out) → B (mTLS + HTTP/2 in, TCP out) → server,
 * one CONNECT stream per app connection on a shared session: Node's own HTTP/2 + TLS cost.
 */
export function setupH2Pipe(ctx: BedContext): Promise<Bed> {
  return setupTwoHopPipe(ctx, 's2h', 'h2-pipe', (bPort, target) => [`127.0.0.1:${bPort}`, target]);
}

/** The local config for scenario 3: two HBONE workloads, no services, no policies (config.md §2). */
export function pairConfigYaml(ipA: string, ipB: string): string {
  const workload = (name: string, ip: string) => `
- uid: Kubernetes//Pod/bench/${name}
  name: ${name}
  namespace: bench
  serviceAccount: sa-${name}
  trustDomain: cluster.local
  clusterId: Kubernetes
  workloadIps: ["${ip}"]
  protocol: HBONE
  workloadName: ${name}
  canonicalName: ${name}
  canonicalRevision: v1
  services: {}`;
  return `workloads:${workload('a', ipA)}${workload('b', ipB)}\n`;
}

/** Environment of one daemon of the pair, as test/integration/foundation.test.ts sets it up. */
function pairDaemonEnv(ctx: BedContext, name: string, ip: string, configPath: string, caDir: string): Record<string, string> {
  return {
    XDS_ADDRESS: '',
    FAKE_CA: 'true',
    ZTUNNEL_STATE_DIR: caDir,
    LOCAL_XDS_PATH: configPath,
    PROXY_MODE: 'dedicated',
    PROXY_WORKLOAD_INFO: `bench/${name}/sa-${name}`,
    UNSTABLE_ENABLE_SOCKS5: 'true',
    ZTUNNEL_INBOUND_ADDR: `${ip}:15008`,
    ZTUNNEL_INBOUND_PLAINTEXT_ADDR: `${ip}:0`,
    ZTUNNEL_OUTBOUND_ADDR: `${ip}:0`,
    ZTUNNEL_SOCKS5_ADDR: '127.0.0.1:0',
    ZTUNNEL_ADMIN_ADDR: '127.0.0.1:0',
    ZTUNNEL_STATS_ADDR: '127.0.0.1:0',
    ZTUNNEL_READINESS_ADDR: '127.0.0.1:0',
    ZTUNNEL_DNS_ADDR: '127.0.0.1:0',
    // Access logs are INFO: at warn they do not dominate the measurement.
    RUST_LOG: ctx.logLevel,
    LOG_FORMAT: 'json',
    // Data-plane workers (docs/workers.md): the bench run's count when given, else the default.
    ...(process.env['ZTUNNEL_WORKER_THREADS'] ? { ZTUNNEL_WORKER_THREADS: process.env['ZTUNNEL_WORKER_THREADS'] } : {}),
  };
}

function parseHostPort(s: string): HostPort {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) };
}

/** Scenario 3: client → SOCKS5 of daemon A → HBONE → daemon B's inbound (:15008) → server on B's IP. */
export async function setupZtunnelPair(ctx: BedContext): Promise<Bed> {
  if (!existsSync(ctx.mainJs)) throw new Error(`${ctx.mainJs} does not exist (run npm run build)`);
  const dir = path.join(ctx.workDir, 'ztunnel-pair');
  mkdirSync(dir, { recursive: true });
  const block = loopbackBlock();
  const ipA = `${block}.11`;
  const ipB = `${block}.12`;
  const caDir = path.join(dir, 'ca');
  await openBenchCa(caDir); // one root for both daemons, created before either starts
  const configPath = path.join(dir, 'config.yaml');
  writeFileSync(configPath, pairConfigYaml(ipA, ipB));
  const children: ChildProcess[] = [];
  const daemons: DaemonProcess[] = [];
  try {
    const server = await startSinkServer(ctx, ipB);
    children.push(server.child);
    const start = (name: string, ip: string) =>
      startDaemonProcess({ name: `ztunnel ${name.toUpperCase()}`, mainJs: ctx.mainJs, env: pairDaemonEnv(ctx, name, ip, configPath, caDir), execArgv: [...ctx.daemonNodeFlags, ...ctx.proxyExecArgv] }).then((d) => {
        daemons.push(d);
        return d;
      });
    const [a, b] = await Promise.all([start('a', ipA), start('b', ipB)]);
    const socks = a.addresses['socks5'];
    if (!socks) throw new Error(`daemon A reported no socks5 address (ready line addresses: ${JSON.stringify(a.addresses)})`);
    return {
      id: 's3',
      route: { connect: parseHostPort(socks), socks5Target: { host: ipB, port: server.port } },
      proxies: [
        { name: 'A', pid: a.pid },
        { name: 'B', pid: b.pid },
      ],
      recentLogs: () => [...a.recentLogs().map((l) => `A: ${l}`), ...b.recentLogs().map((l) => `B: ${l}`)],
      close: () => closeAll(children, daemons),
    };
  } catch (e) {
    await closeAll(children, daemons);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Scenario 4 — the contract expected from bench/netns-bed.ts (written by the in-pod capture work):
//
//   export async function setupNetnsBed(o: NetnsBedOptions): Promise<NetnsBed>
//
// It builds the node/pod namespaces with iptables capture, starts ztunnel in shared mode (the
// daemons are its processes), and returns how to run the app server and the load client inside
// the pods. The client then connects straight to serverHost:port and is captured.

export interface NetnsBedOptions {
  readonly mainJs: string;
  readonly workDir: string;
  readonly logLevel: string;
  readonly execArgv: readonly string[];
}

export interface NetnsBed {
  /** e.g. ['ip', 'netns', 'exec', 'pod-a'] */
  readonly clientWrapper: readonly string[];
  readonly serverWrapper: readonly string[];
  /** The server pod's IP: the sink server listens on it, the client connects to it. */
  readonly serverHost: string;
  readonly proxies: readonly ProxyProcess[];
  close(): Promise<void>;
}

export function netnsAvailability(benchDir: string): { ok: true; module: string } | { ok: false; reason: string } {
  const module = path.join(benchDir, 'netns-bed.js');
  const root = process.getuid?.() === 0;
  if (!root || !existsSync(module)) return { ok: false, reason: 'skipped (needs root and the netns bed)' };
  return { ok: true, module };
}

/** Scenario 4: ztunnel-ts in shared mode with real iptables capture, via bench/netns-bed.ts. */
export async function setupNetns(ctx: BedContext, modulePath: string): Promise<Bed> {
  const mod = (await import(modulePath)) as { setupNetnsBed?: (o: NetnsBedOptions) => Promise<NetnsBed> };
  if (typeof mod.setupNetnsBed !== 'function') throw new Error(`${modulePath} does not export setupNetnsBed()`);
  const bed = await mod.setupNetnsBed({ mainJs: ctx.mainJs, workDir: path.join(ctx.workDir, 'netns'), logLevel: ctx.logLevel, execArgv: [...ctx.daemonNodeFlags, ...ctx.proxyExecArgv] });
  let server: { child: ChildProcess; port: number } | undefined;
  try {
    server = await startSinkServer(ctx, bed.serverHost, bed.serverWrapper);
    const s = server;
    return {
      id: 's4',
      route: { connect: { host: bed.serverHost, port: s.port } },
      clientWrapper: bed.clientWrapper,
      proxies: bed.proxies,
      close: async () => {
        await stopChild(s.child);
        await bed.close();
      },
    };
  } catch (e) {
    if (server) await stopChild(server.child);
    await bed.close();
    throw e;
  }
}
