// Foundation end to end: SOCKS5 client → ztunnel A → HBONE (mTLS, HTTP/2 CONNECT) → ztunnel B →
// app. Two real daemon processes from dist/, a shared local CA root, real sockets on loopback.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { writeFileSync } from 'node:fs';
import t from 'tap';
import { LocalCa } from '../../src/identity/local-ca.js';
import { dedicatedEnv, randomLoopback, startDaemon, tempDir, type Daemon } from '../helpers/daemon.js';
import { roundTrip, sha256, socks5Connect, startEchoServer } from '../helpers/servers.js';

const A = randomLoopback();
const B = randomLoopback();
const VIP = randomLoopback();

function configYaml(opts: { bServiceAccount?: string; extraPolicy?: string } = {}): string {
  return `
workloads:
- uid: Kubernetes//Pod/shop/a
  name: a
  namespace: shop
  serviceAccount: sa-a
  trustDomain: cluster.local
  clusterId: Kubernetes
  workloadIps: ["${A}"]
  protocol: HBONE
  workloadName: a
  canonicalName: a
  canonicalRevision: v1
  services: {}
- uid: Kubernetes//Pod/shop/b
  name: b
  namespace: shop
  serviceAccount: ${opts.bServiceAccount ?? 'sa-b'}
  trustDomain: cluster.local
  clusterId: Kubernetes
  workloadIps: ["${B}"]
  protocol: HBONE
  workloadName: b
  canonicalName: b
  canonicalRevision: v1
  services:
    "shop/b.shop.svc.cluster.local": {80: ECHO_PORT}
services:
- name: b
  namespace: shop
  hostname: b.shop.svc.cluster.local
  vips: ["/${VIP}"]
  ports: {80: ECHO_PORT}
${opts.extraPolicy ?? ''}`;
}

const dir = tempDir();
let echoPort = 0;
let a: Daemon;
let b: Daemon;
let socks: { host: string; port: number };
const configA = `${dir}/a.yaml`;
const configB = `${dir}/b.yaml`;
const write = (path: string, text: string) => writeFileSync(path, text.replaceAll('ECHO_PORT', String(echoPort)));

function env(workload: string, ip: string, config: string): Record<string, string> {
  return dedicatedEnv({ workloadInfo: `shop/${workload}/sa-${workload}`, ip, config, stateDir: `${dir}/ca` });
}

const echo = await startEchoServer(B);
echoPort = echo.port;
t.teardown(() => echo.close());

t.before(async () => {
  await LocalCa.open({ stateDir: `${dir}/ca`, ttlMs: 24 * 3600_000 }); // one shared root for both daemons
  write(configA, configYaml());
  write(configB, configYaml());
  [a, b] = await Promise.all([startDaemon({ name: 'A', env: env('a', A, configA) }), startDaemon({ name: 'B', env: env('b', B, configB) })]);
  const [host, port] = a.addresses['socks5']!.split(':');
  socks = { host: host!, port: Number(port) };
});
t.teardown(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
});

async function viaTunnel(payload: Buffer, target = { host: B, port: echoPort }) {
  const s = await socks5Connect(socks, target);
  return roundTrip(s, payload);
}

for (const size of [0, 1, 64 * 1024 * 1024]) {
  t.test(`a ${size}-byte payload crosses the HBONE tunnel and echoes back byte for byte`, async (t) => {
    const payload = randomBytes(size);
    const { data, error } = await viaTunnel(payload);
    t.error(error);
    t.equal(data.length, size);
    t.equal(sha256(data), sha256(payload));
  });
}

t.test('the tunnel is HBONE: A logs an outbound mTLS record to B:15008 with the CONNECT authority', async (t) => {
  await viaTunnel(Buffer.from('hello'));
  const line = await a.waitForLog((l) => l['component'] === 'access' && l['direction'] === 'outbound' && l['bytes_sent'] === 5);
  t.equal(line['dst.addr'], `${B}:15008`);
  t.equal(line['dst.hbone_addr'], `${B}:${echoPort}`);
  t.equal(line['src.identity'], 'spiffe://cluster.local/ns/shop/sa/sa-a');
  t.equal(line['dst.identity'], 'spiffe://cluster.local/ns/shop/sa/sa-b');
  const inbound = await b.waitForLog((l) => l['component'] === 'access' && l['direction'] === 'inbound' && l['bytes_recv'] === 5);
  t.equal(inbound['src.identity'], 'spiffe://cluster.local/ns/shop/sa/sa-a');
  t.equal(inbound['bytes_sent'], 5);
});

t.test('a Service VIP is load-balanced to its endpoint with the service port mapped to the target port', async (t) => {
  const { data, error } = await viaTunnel(Buffer.from('via vip'), { host: VIP, port: 80 });
  t.error(error);
  t.equal(data.toString(), 'via vip');
  const line = await a.waitForLog((l) => l['component'] === 'access' && l['dst.service'] === 'b.shop.svc.cluster.local');
  t.equal(line['dst.hbone_addr'], `${B}:${echoPort}`);
});

t.test('half-close client→server: the app replies after it saw the client FIN, and the reply arrives', async (t) => {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    const chunks: Buffer[] = [];
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => s.end(Buffer.concat([Buffer.from('got:'), ...chunks])));
  });
  await new Promise<void>((r) => server.listen(0, B, r));
  t.teardown(() => server.close());
  const { data, error } = await viaTunnel(Buffer.from('question'), { host: B, port: (server.address() as AddressInfo).port });
  t.error(error);
  t.equal(data.toString(), 'got:question');
});

t.test('half-close server→client: after the app ends its side the client can still send and be heard', async (t) => {
  let received = '';
  const done = new Promise<void>((resolve) => {
    const server = createServer({ allowHalfOpen: true }, (s) => {
      s.end('bye-first');
      s.on('data', (d) => (received += d.toString()));
      s.on('end', () => resolve());
    });
    server.listen(0, B, async () => {
      t.teardown(() => server.close());
      const c = await socks5Connect(socks, { host: B, port: (server.address() as AddressInfo).port });
      let got = '';
      c.on('data', (d) => (got += d.toString()));
      c.on('end', () => {
        t.equal(got, 'bye-first', 'client saw the app data and its FIN');
        c.end('late-words'); // written after the server's FIN arrived
      });
      c.resume();
    });
  });
  await done;
  t.equal(received, 'late-words');
});

t.test('a reset by the server app reaches the client as a reset, not a clean close', async (t) => {
  const server = createServer({ allowHalfOpen: true }, (s: Socket) => {
    s.once('data', () => s.resetAndDestroy());
  });
  await new Promise<void>((r) => server.listen(0, B, r));
  t.teardown(() => server.close());
  const c = await socks5Connect(socks, { host: B, port: (server.address() as AddressInfo).port });
  const outcome = await new Promise<string>((resolve) => {
    c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    c.on('end', () => resolve('clean end'));
    c.resume();
    c.write('trigger');
  });
  t.equal(outcome, 'ECONNRESET');
});

t.test('100 concurrent connections share pooled HBONE sessions', async (t) => {
  const count = 100;
  const conns = await Promise.all(Array.from({ length: count }, () => socks5Connect(socks, { host: B, port: echoPort })));
  // Every connection has a live stream: exchange one message on each, keep them open.
  await Promise.all(
    conns.map(
      (c, i) =>
        new Promise<void>((resolve) => {
          c.once('data', () => resolve());
          c.resume();
          c.write(`conn-${i}`);
        }),
    ),
  );
  // Established TCP connections to B:15008 are the HBONE sessions of A's pool (B's own pool has
  // none: nothing is sent from B to A).
  const out = execFileSync('ss', ['-Htn', 'state', 'established', 'dst', `${B}:15008`], { encoding: 'utf8' });
  const sessions = out.split('\n').filter((l) => l.trim()).length;
  t.ok(sessions >= 1 && sessions <= 2, `100 concurrent streams ran over ${sessions} TLS session(s) (limit: 100 streams per session)`);
  const results = await Promise.all(conns.map((c) => roundTrip(c, Buffer.alloc(0))));
  t.equal(results.filter((r) => !r.error).length, count, 'every connection closed cleanly');
});

t.test('a refused upstream answers 503: the client that wrote its request is reset (ECONNRESET, not EOF) and both sides log it', async (t) => {
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, B, r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const { data, error } = await viaTunnel(Buffer.from('anyone?'), { host: B, port });
  t.equal(data.length, 0);
  t.equal((error as NodeJS.ErrnoException | undefined)?.code, 'ECONNRESET', 'the app sees a reset, as with Istio ztunnel');
  const aLine = await a.waitForLog((l) => l['component'] === 'access' && l['dst.hbone_addr'] === `${B}:${port}`);
  t.match(String(aLine['error']), /http status: 503/);
  const bLine = await b.waitForLog((l) => l['component'] === 'access' && l['dst.hbone_addr'] === `${B}:${port}`);
  t.equal(bLine.level, 'error');
});

t.test('a server whose certificate is not the expected identity is refused by the client', async (t) => {
  // A now believes B runs as sa-other: B's real certificate (sa-b) must be refused.
  await rewriteAndWait(a, configA, configYaml({ bServiceAccount: 'sa-other' }));
  const { data, error } = await viaTunnel(Buffer.from('should not arrive'));
  t.equal(data.length, 0, 'no bytes came back');
  t.equal((error as NodeJS.ErrnoException | undefined)?.code, 'ECONNRESET', 'the app sees a reset, not an end-of-file');
  const line = await a.waitForLog((l) => l['component'] === 'access' && /sa-other|identity|SAN|san/i.test(String(l['error'] ?? '')));
  t.match(String(line['error']), /sa-other/);
  await rewriteAndWait(a, configA, configYaml());
});

t.test('the config file changes while a connection is open: the connection survives', async (t) => {
  const c = await socks5Connect(socks, { host: B, port: echoPort });
  let got = '';
  const ended = new Promise<void>((resolve) => c.on('end', () => resolve()));
  c.on('data', (d) => (got += d.toString()));
  c.resume();
  c.write('before;');
  while (got !== 'before;') await new Promise((r) => setTimeout(r, 20));
  // Both daemons applied the touched file (a reload that closed connections would have by now).
  await Promise.all([rewriteAndWait(b, configB, configYaml() + '\n# touched\n'), rewriteAndWait(a, configA, configYaml() + '\n# touched\n')]);
  c.end('after');
  await ended;
  t.equal(got, 'before;after');
});

t.test('a broken config file is rejected with file, line and field, and the old config stays in force', async (t) => {
  writeFileSync(configA, 'workloads:\n- uid: x\n  namespace: shop\n  workloadIps: ["not-an-ip"]\n  services: {}\n');
  const err = await a.waitForLog((l) => l.level === 'error' && /a\.yaml:\d+/.test(JSON.stringify(l)));
  t.match(JSON.stringify(err), /workloadIps/);
  const { data } = await viaTunnel(Buffer.from('still works'));
  t.equal(data.toString(), 'still works');
  write(configA, configYaml());
});

/** Writes a daemon's config file and waits until the daemon logged applying it (a local_config line after the write). */
async function rewriteAndWait(d: Daemon, file: string, text: string): Promise<void> {
  const from = d.logs.length;
  write(file, text);
  await d.waitForLog((l) => l['component'] === 'local_config' && l['file'] !== undefined && l['workloads'] !== undefined && d.logs.indexOf(l) >= from);
}
