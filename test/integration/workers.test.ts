// Data-plane worker threads (docs/workers.md) seen from outside, on two real daemon processes with
// 2 workers each: connections land on both workers, /metrics sums them exactly, a policy change
// closes denied connections on whichever worker holds them, a failed worker is replaced while the
// other worker's connections keep flowing, and SIGTERM drains every worker.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import t, { type Test } from 'tap';
import { LocalCa } from '../../src/identity/local-ca.js';
import { dedicatedEnv, randomLoopback, startDaemon, tempDir, type Daemon, type LogLine } from '../helpers/daemon.js';
import { scrape, samplesOf, type Scrape } from '../helpers/metrics-scrape.js';
import { socks5Connect, startEchoServer } from '../helpers/servers.js';

const A = randomLoopback();
const B = randomLoopback();
const SA_A = 'cluster.local/ns/shop/sa/sa-a';
/** Connections opened at most while waiting for both workers to hold one. */
const MAX_TRIES = 80;

const dir = tempDir();
const echo = await startEchoServer(B);
t.teardown(() => echo.close());

const configPath = `${dir}/mesh.yaml`;
const config = (allowed: string) => `
workloads:
- uid: Kubernetes//Pod/shop/a-pod
  name: a-pod
  namespace: shop
  serviceAccount: sa-a
  trustDomain: cluster.local
  workloadIps: ["${A}"]
  protocol: HBONE
  services: {}
- uid: Kubernetes//Pod/shop/b-pod
  name: b-pod
  namespace: shop
  serviceAccount: sa-b
  trustDomain: cluster.local
  workloadIps: ["${B}"]
  protocol: HBONE
  authorizationPolicies: ["shop/allow"]
  services: {}
policies:
- name: allow
  namespace: shop
  scope: WorkloadSelector
  action: Allow
  dryRun: false
  rules:
  - - - principals: [{Exact: "${allowed}"}]
`;

let a: Daemon;
let b: Daemon;
let socks: { host: string; port: number };

const env = (pod: string, sa: string, ip: string, extra: Record<string, string>) =>
  dedicatedEnv({ workloadInfo: `shop/${pod}/${sa}`, ip, config: configPath, stateDir: `${dir}/ca`, extra: { ZTUNNEL_WORKER_THREADS: '2', ...extra } });

t.before(async () => {
  await LocalCa.open({ stateDir: `${dir}/ca`, ttlMs: 24 * 3600_000 });
  writeFileSync(configPath, config(SA_A));
  [a, b] = await Promise.all([
    startDaemon({
      name: 'A',
      env: env('a-pod', 'sa-a', A, {
        // One stream per HBONE connection: B then sees one TCP connection per tunnel, so its
        // tunnels spread over B's workers too.
        POOL_MAX_STREAMS_PER_CONNECTION: '1',
        CONNECTION_TERMINATION_DEADLINE: '1s',
        ZTUNNEL_TS_TEST_WORKER_CRASH: '1',
      }),
    }),
    startDaemon({ name: 'B', env: env('b-pod', 'sa-b', B, {}) }),
  ]);
  const [host, port] = a.addresses['socks5']!.split(':');
  socks = { host: host!, port: Number(port) };
});
t.teardown(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
});

interface Tunnel {
  readonly socket: Socket;
  readonly src: string;
  /** Resolves at the tunnel's end: FIN or close. */
  readonly closed: Promise<void>;
  echoed: number;
  send(n: number): Promise<void>;
}

async function openTunnel(): Promise<Tunnel> {
  const s = await socks5Connect(socks, { host: B, port: echo.port });
  const waiters: Array<() => void> = [];
  const tunnel: Tunnel = {
    socket: s,
    src: `${s.localAddress}:${s.localPort}`,
    // The end of the tunnel as the app sees it: a FIN (the peer's stream ended) or a close.
    closed: new Promise<void>((r) => (s.once('end', () => r()), s.once('close', () => r()))),
    echoed: 0,
    async send(n: number) {
      const target = tunnel.echoed + n;
      s.write(randomBytes(n));
      while (tunnel.echoed < target) {
        if (s.destroyed) throw new Error('tunnel closed');
        await new Promise<void>((r) => waiters.push(r));
      }
    },
  };
  s.on('data', (d: Buffer) => {
    tunnel.echoed += d.length;
    for (const w of waiters.splice(0)) w();
  });
  s.on('close', () => {
    for (const w of waiters.splice(0)) w();
  });
  s.on('error', () => {});
  s.resume();
  return tunnel;
}

interface Row {
  id: number;
  src: string;
  dst: string;
  worker?: number;
  direction: string;
}

async function rows(d: Daemon): Promise<Row[]> {
  return (await (await d.http('admin', '/debug/connections?format=json')).json()) as Row[];
}

/** The worker of A holding each tunnel (A's outbound row has the SOCKS5 client as src). */
async function workersOnA(tunnels: Tunnel[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const r of await rows(a)) if (r.worker !== undefined) out.set(r.src, r.worker);
  return new Map(tunnels.filter((x) => out.has(x.src)).map((x) => [x.src, out.get(x.src)!]));
}

/** B's inbound workers in use. */
async function workersOnB(): Promise<Set<number>> {
  return new Set((await rows(b)).filter((r) => r.direction === 'inbound').flatMap((r) => (r.worker !== undefined ? [r.worker] : [])));
}

/** Opens echoing tunnels until both of A's workers (and, if asked, both of B's) hold one. */
async function tunnelsOnBothWorkers(t: Test, alsoB: boolean, bytes = (i: number) => 100 + i): Promise<Tunnel[]> {
  const tunnels: Tunnel[] = [];
  t.teardown(() => tunnels.forEach((x) => x.socket.destroy()));
  for (let i = 0; i < MAX_TRIES; i++) {
    const x = await openTunnel();
    tunnels.push(x);
    await x.send(bytes(i));
    const onA = new Set((await workersOnA(tunnels)).values());
    if (onA.size === 2 && (!alsoB || (await workersOnB()).size === 2)) return tunnels;
  }
  throw new Error(`${MAX_TRIES} connections did not reach both workers`);
}

const traffic = (s: Scrape, name: string, reporter: string) => samplesOf(s, name, { reporter }).reduce((n, x) => n + x.value, 0);
const metrics = (d: Daemon) => scrape(`http://${d.addresses['stats']!.replace('0.0.0.0', '127.0.0.1')}/metrics`);
const accessLines = (d: Daemon, pred: (l: LogLine) => boolean) => d.accessLogs().filter(pred);

async function within<T>(ms: number, p: Promise<T>, why: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(why())), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function until<T>(what: string, f: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('the worker count is logged at start and shown in /config_dump as numWorkerThreads; each worker thread is named', async (t) => {
  const line = await a.waitForLog((l) => l.msg === 'data-plane workers started');
  t.equal(line['workers'], 2);
  const dump = (await (await a.http('admin', '/config_dump')).json()) as { config: { numWorkerThreads: number } };
  t.equal(dump.config.numWorkerThreads, 2);
  t.equal((await b.http('admin', '/debug/crash-worker?worker=0', { method: 'POST' })).status, 404, 'the crash hook does not exist without its test switch');
  // What `top -H -p <pid>` shows (docs/workers.md): each worker's thread by its name.
  const names = readdirSync(`/proc/${b.child.pid}/task`).map((tid) => readFileSync(`/proc/${b.child.pid}/task/${tid}/comm`, 'utf8').trim());
  t.same(names.filter((n) => n.startsWith('ztunnel-dp-')).sort(), ['ztunnel-dp-0', 'ztunnel-dp-1'], 'one OS thread named ztunnel-dp-N per worker');
});

t.test('connections land on both workers and /metrics sums them exactly', async (t) => {
  const [a0, b0] = await Promise.all([metrics(a), metrics(b)]);
  const tunnels = await tunnelsOnBothWorkers(t, true);
  const n = tunnels.length;
  const bytes = tunnels.reduce((s, x) => s + x.echoed, 0);
  const seen = await workersOnA(tunnels);
  t.equal(seen.size, n, 'every tunnel is listed in /debug/connections with its worker');
  t.same(new Set(seen.values()), new Set([0, 1]), 'A: tunnels on worker 0 and worker 1');
  t.same(await workersOnB(), new Set([0, 1]), 'B: tunnels on worker 0 and worker 1');
  const ids = (await rows(a)).map((r) => r.id);
  t.equal(new Set(ids).size, ids.length, 'connection ids are unique across workers');

  for (const x of tunnels) x.socket.end();
  await Promise.all(tunnels.map((x) => x.closed));
  const srcs = new Set(tunnels.map((x) => x.src));
  await until('A access records', () => (accessLines(a, (l) => srcs.has(String(l['src.addr']))).length === n ? true : undefined));
  await until('B access records', () => (accessLines(b, (l) => l['direction'] === 'inbound').length >= n ? true : undefined));
  const [a1, b1] = await Promise.all([metrics(a), metrics(b)]);
  const d = (s0: Scrape, s1: Scrape, name: string, reporter: string) => traffic(s1, name, reporter) - traffic(s0, name, reporter);
  t.equal(d(a0, a1, 'istio_tcp_connections_opened_total', 'source'), n, 'A: opened = tunnels, over both workers');
  t.equal(d(a0, a1, 'istio_tcp_connections_closed_total', 'source'), n, 'A: closed = tunnels');
  t.equal(d(a0, a1, 'istio_tcp_sent_bytes_total', 'source'), bytes, 'A: bytes sent, summed exactly');
  t.equal(d(a0, a1, 'istio_tcp_received_bytes_total', 'source'), bytes, 'A: bytes received, summed exactly');
  t.equal(d(b0, b1, 'istio_tcp_connections_opened_total', 'destination'), n, 'B: opened = tunnels');
  t.equal(d(b0, b1, 'istio_tcp_received_bytes_total', 'destination'), bytes, 'B: bytes received, summed exactly');
  t.equal(samplesOf(a1, 'istio_build').length, 1, 'istio_build once, not once per worker');
  t.equal(samplesOf(a1, 'istio_build')[0]?.value, 1);
});

t.test('a policy change closes the denied connections on whichever worker holds them', async (t) => {
  const tunnels = await tunnelsOnBothWorkers(t, true);
  const fromB = b.logs.length;
  writeFileSync(configPath, config('cluster.local/ns/other/sa/nobody'));
  t.teardown(async () => {
    writeFileSync(configPath, config(SA_A));
    // The allow policy is back once a new tunnel echoes again.
    await until('the allow policy back', async () => {
      const x = await openTunnel().catch(() => undefined);
      if (!x) return undefined;
      const ok = await Promise.race([x.send(1).then(() => true, () => undefined), new Promise<undefined>((r) => setTimeout(() => r(undefined), 1_000))]);
      x.socket.destroy();
      return ok;
    });
  });
  await within(10_000, Promise.all(tunnels.map((x) => x.closed)), () => `tunnels still open; B logs: ${JSON.stringify(b.logs.slice(fromB))}`);
  t.pass('every tunnel was closed');
  const summaries = await until('B summary lines', () => {
    const lines = b.logs.slice(fromB).filter((l) => l.msg === 'connections closed due to policy change');
    const closed = lines.reduce((s, l) => s + Number(l['closed']), 0);
    return closed >= tunnels.length ? lines : undefined;
  });
  t.same(new Set(summaries.map((l) => l['worker'])), new Set([0, 1]), 'both of B\'s workers closed connections');
});

t.test('a failed worker is replaced; its connections are reset and the other worker\'s keep flowing', async (t) => {
  const tunnels = await tunnelsOnBothWorkers(t, false);
  const where = await workersOnA(tunnels);
  const onDead = tunnels.filter((x) => where.get(x.src) === 0);
  const onLive = tunnels.filter((x) => where.get(x.src) === 1);
  const before = await metrics(a);
  const fromA = a.logs.length;
  t.equal((await a.http('admin', '/debug/crash-worker?worker=0', { method: 'POST' })).status, 200);
  await Promise.all(onDead.map((x) => x.closed));
  t.pass(`the ${onDead.length} connection(s) of the failed worker were reset`);
  const exited = await a.waitForLog((l) => l.msg === 'data-plane worker exited; starting a replacement' && a.logs.indexOf(l) >= fromA);
  t.equal(exited['worker'], 0, 'the exit is logged with the worker');
  await a.waitForLog((l) => l.msg === 'data-plane worker replaced' && a.logs.indexOf(l) >= fromA);
  for (const x of onLive) await x.send(10);
  t.ok(onLive.every((x) => !x.socket.destroyed), `the ${onLive.length} connection(s) of the other worker still echo`);
  const srcs = new Set(onDead.map((x) => x.src));
  const records = await until('records of the reset connections', () => {
    const got = accessLines(a, (l) => srcs.has(String(l['src.addr'])));
    return got.length === onDead.length ? got : undefined;
  });
  t.ok(records.every((l) => /data-plane worker 0 failed/.test(String(l['error']))), 'each reset connection has its record, naming the failure');
  const after = await metrics(a);
  t.equal(traffic(after, 'istio_tcp_connections_opened_total', 'source'), traffic(before, 'istio_tcp_connections_opened_total', 'source'), 'the failed worker\'s counts stay in the sums');
  t.equal((await a.http('readiness', '/healthz/ready')).status, 200, 'ready again once replaced');
  const more = await tunnelsOnBothWorkers(t, false);
  t.ok(more.length > 0, 'the replacement worker takes new connections');
});

t.test('SIGTERM drains the connections of every worker, each with its record', async (t) => {
  const tunnels = await tunnelsOnBothWorkers(t, false);
  const srcs = new Set(tunnels.map((x) => x.src));
  const code = await a.stop('SIGTERM');
  t.equal(code, 0, 'A exits 0 after the drain');
  await Promise.all(tunnels.map((x) => x.closed));
  const records = accessLines(a, (l) => srcs.has(String(l['src.addr'])));
  t.equal(records.length, tunnels.length, 'every connection of both workers has its access record');
  t.ok(records.every((l) => /drain deadline/.test(String(l['error']))), 'closed at the drain deadline');
  t.ok(a.logs.some((l) => l.msg === 'shutdown complete'));
});
