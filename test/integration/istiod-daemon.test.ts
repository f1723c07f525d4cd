// Whole daemons configured ONLY from the stand-in istiod (test/helpers/fake-istiod.ts): delta ADS
// for workloads, services and policies, the Istio CA for certificates — no local file, no
// FAKE_CA. Two dedicated-mode daemons A (SOCKS5 client side) and B (server side) carry real
// traffic over HBONE with certificates the stand-in's CA issued; a third daemon C with short-lived
// certificates exercises rotation and a CA outage during refresh. Env wiring is the DaemonSet's
// (deploy/kubernetes/): XDS_ADDRESS / CA_ADDRESS, XDS_ROOT_CA / CA_ROOT_CA as a file, AUTH_TOKEN as
// a file, POD_NAME / POD_NAMESPACE / INSTANCE_IP / NODE_NAME / CLUSTER_ID.
// Spec: xds.md §1–§3 and §7, ports-and-modes.md §4, policy.md §7.
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { status as GrpcStatus } from '@grpc/grpc-js';
import t from 'tap';
import { loadX509 } from '../helpers/x509.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL } from '../../src/xds/xds-proto.js';
import { Daemon, MAIN_JS, baseDaemonEnv, randomLoopback, startDaemon, tempDir, writeTemp } from '../helpers/daemon.js';
import { FakeIstiod, type RecordedCaRequest } from '../helpers/fake-istiod.js';
import { roundTrip, socks5Connect, startEchoServer } from '../helpers/servers.js';

const A = randomLoopback();
const B = randomLoopback();
const C = randomLoopback();
const D = randomLoopback();
const VIP = randomLoopback();
const VIP2 = randomLoopback();
const VIP3 = randomLoopback();
const NODE = 'node-1';
const idOf = (sa: string) => `spiffe://cluster.local/ns/shop/sa/${sa}`;

const dir = tempDir('zt-istiod-');
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

// ---- resources as istiod sends them (istio.workload / istio.security protos, snake_case) ---------

const ipBytes = (s: string) => Buffer.from(s.split('.').map(Number));
type PortSpec = { service_port: number; target_port: number };

function workload(name: string, ip: string, services: Record<string, PortSpec[]> = {}, extra: Record<string, unknown> = {}) {
  return {
    uid: `Kubernetes//Pod/shop/${name}`,
    name,
    namespace: 'shop',
    addresses: [ipBytes(ip)],
    tunnel_protocol: 1, // HBONE
    service_account: `sa-${name}`,
    node: NODE,
    workload_name: name,
    canonical_name: name,
    canonical_revision: 'v1',
    cluster_id: 'Kubernetes',
    services: Object.fromEntries(Object.entries(services).map(([k, ports]) => [k, { ports }])),
    ...extra,
  };
}

function service(name: string, vip: string, ports: PortSpec[]) {
  return { name, namespace: 'shop', hostname: `${name}.shop.svc.cluster.local`, addresses: [{ network: '', address: ipBytes(vip) }], ports };
}

// ---- helpers --------------------------------------------------------------------------------------

async function until<T>(fn: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** Env of one daemon, wired as the DaemonSet wires it, pointed at the stand-in. */
function daemonEnv(fake: FakeIstiod, name: string, ip: string, tokenFile: string, extra: Record<string, string> = {}): Record<string, string> {
  const rootFile = writeTemp(dir, 'root-cert.pem', fake.rootPem);
  return {
    XDS_ADDRESS: fake.address,
    CA_ADDRESS: fake.address,
    XDS_ROOT_CA: rootFile,
    CA_ROOT_CA: rootFile,
    AUTH_TOKEN: tokenFile,
    CLUSTER_ID: 'Kubernetes',
    POD_NAME: `ztunnel-${name}`,
    POD_NAMESPACE: 'istio-system',
    INSTANCE_IP: ip,
    NODE_NAME: NODE,
    PROXY_MODE: 'dedicated',
    PROXY_WORKLOAD_INFO: `shop/${name}/sa-${name}`,
    UNSTABLE_ENABLE_SOCKS5: 'true',
    ZTUNNEL_INBOUND_ADDR: `${ip}:15008`,
    ZTUNNEL_INBOUND_PLAINTEXT_ADDR: `${ip}:0`,
    ZTUNNEL_OUTBOUND_ADDR: `${ip}:0`,
    ZTUNNEL_SOCKS5_ADDR: '127.0.0.1:0',
    ZTUNNEL_DNS_ADDR: `${ip}:0`,
    ZTUNNEL_ADMIN_ADDR: '127.0.0.1:0',
    ZTUNNEL_STATS_ADDR: '127.0.0.1:0',
    // A fixed port on the daemon's own loopback address: readiness is polled before the daemon
    // reports its bound addresses (it reports them only once ready).
    ZTUNNEL_READINESS_ADDR: `${ip}:15021`,
    RUST_LOG: 'info',
    ...extra,
  };
}

/** Starts a daemon process without waiting for readiness (same launch as helpers/daemon.ts). */
function spawnDaemon(name: string, env: Record<string, string>): Daemon {
  const child = spawn(process.execPath, [MAIN_JS, 'run'], {
    env: { ...baseDaemonEnv(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Daemon(name, child);
}

async function awaitReady(d: Daemon, timeoutMs = 30_000): Promise<void> {
  const ready = await Promise.race([
    d.waitForLog((l) => l.msg === 'ztunnel-ts ready', timeoutMs),
    d.exited.then((code) => {
      throw new Error(`${d.name} exited with ${code}; stderr: ${d.stderr.join('')}; logs: ${JSON.stringify(d.logs.slice(-5))}`);
    }),
  ]);
  for (const [k, v] of Object.entries(ready)) if (typeof v === 'string' && /:\d+$/.test(v)) d.addresses[k] = v;
}

async function readiness(d: Daemon): Promise<{ status: number; body: string } | undefined> {
  try {
    const r = await d.http('readiness', '/healthz/ready');
    return { status: r.status, body: await r.text() };
  } catch {
    return undefined; // not listening yet
  }
}

function socksOf(d: Daemon): { host: string; port: number } {
  const [host, port] = d.addresses['socks5']!.split(':');
  return { host: host!, port: Number(port) };
}

/** One connection through `d`'s SOCKS5 listener: send, half-close, collect the reply. */
async function tunnel(d: Daemon, host: string, port: number, payload = 'hello'): Promise<{ data: string; error?: Error }> {
  const s = await socks5Connect(socksOf(d), { host, port });
  const r = await roundTrip(s, Buffer.from(payload), 15_000);
  return { data: r.data.toString(), ...(r.error ? { error: r.error } : {}) };
}

interface DumpedCert {
  readonly identity: string;
  readonly state: string;
  readonly leaf?: X509Certificate;
  readonly roots: X509Certificate[];
}

/** The certificate `/config_dump` shows for `identity`, decoded. */
async function dumpedCert(d: Daemon, identity: string): Promise<DumpedCert | undefined> {
  const dump = (await (await d.http('admin', '/config_dump')).json()) as {
    certificates: { identity: string; state: string; certChain: { pem: string }[]; rootCerts: { pem: string }[] }[];
  };
  const c = dump.certificates.find((x) => x.identity === identity);
  if (!c) return undefined;
  const pem = (b64: string) => new X509Certificate(Buffer.from(b64, 'base64').toString('utf8'));
  return {
    identity: c.identity,
    state: c.state,
    ...(c.certChain[0] ? { leaf: pem(c.certChain[0].pem) } : {}),
    roots: c.rootCerts.map((r) => pem(r.pem)),
  };
}

async function configDump(d: Daemon): Promise<{ workloads: { uid: string }[]; services: { hostname: string }[]; policies: { name: string }[] }> {
  return (await (await d.http('admin', '/config_dump')).json()) as never;
}

/** The URI SAN of a recorded CSR. */
async function csrIdentity(r: RecordedCaRequest): Promise<string> {
  const { x509 } = await loadX509();
  const csr = new x509.Pkcs10CertificateRequest(r.csrPem);
  const raw = csr.extensions.find((e) => e.type === '2.5.29.17'); // subjectAltName
  if (!raw) return '';
  return new x509.SubjectAlternativeNameExtension(raw.rawData).names.items.find((n) => n.type === 'url')?.value ?? '';
}

async function csrSpki(r: RecordedCaRequest): Promise<Buffer> {
  const { x509 } = await loadX509();
  return Buffer.from(new x509.Pkcs10CertificateRequest(r.csrPem).publicKey.rawData);
}

/** An open connection through `d` to an echo server; `say` sends and waits for the echo. */
async function liveConnection(d: Daemon, host: string, port: number) {
  const s: Socket = await socks5Connect(socksOf(d), { host, port });
  let got = '';
  let closed = false;
  const closedP = new Promise<void>((resolve) => {
    // A FIN (the peer's EOF, hbone.md §6: a policy close resets the stream with NO_ERROR/CANCEL,
    // which the client side turns into a FIN) or a close.
    const done = () => { closed = true; resolve(); };
    s.on('end', done);
    s.on('close', done);
  });
  s.on('data', (b: Buffer) => (got += b.toString()));
  s.on('error', () => {});
  s.resume();
  return {
    socket: s,
    closed: closedP,
    isClosed: () => closed,
    async say(msg: string): Promise<boolean> {
      const want = got + msg;
      s.write(msg);
      await until(() => got === want || closed || undefined, `echo of ${msg}`, 10_000);
      return got === want;
    },
  };
}

// ---- the cluster ---------------------------------------------------------------------------------

const echo = await startEchoServer(B);
const policyEcho = await startEchoServer(B);
const directEcho = await startEchoServer(D);
t.teardown(async () => Promise.all([echo.close(), policyEcho.close(), directEcho.close()]));

const bServices = (extra: Record<string, PortSpec[]> = {}) => ({
  'shop/b.shop.svc.cluster.local': [{ service_port: 80, target_port: echo.port }],
  ...extra,
});

const fake = await FakeIstiod.start();
t.teardown(() => fake.stop());
fake.setWorkload(workload('a', A));
fake.setWorkload(workload('b', B, bServices()));
fake.setWorkload(workload('c', C));
fake.setService(service('b', VIP, [{ service_port: 80, target_port: echo.port }]));

const tokenA = writeTemp(dir, 'token-a', 'token-a1\n');
const tokenB = writeTemp(dir, 'token-b', 'token-b1\n');
let a: Daemon;
let b: Daemon;
t.teardown(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
});

t.test('readiness stays "not ready … state manager" until istiod answers, then turns ready', async (t) => {
  // istiod is unreachable when the daemons start: stop the stand-in, keep its port.
  await fake.stop();
  fake.caFailure = { code: GrpcStatus.UNAVAILABLE, details: 'CA is down' };
  a = spawnDaemon('A', daemonEnv(fake, 'a', A, tokenA));
  b = spawnDaemon('B', daemonEnv(fake, 'b', B, tokenB));
  a.addresses['readiness'] = `${A}:15021`;
  b.addresses['readiness'] = `${B}:15021`;
  for (const d of [a, b]) {
    const r = await until(() => readiness(d), `${d.name} readiness server`);
    t.equal(r.status, 500, `${d.name} is not ready while istiod is down`);
    t.match(r.body, /^not ready, pending: (.*, )?state manager(, .*)?\n$/, `${d.name} names the state manager as pending`);
    t.match(r.body, /proxy/, `${d.name} has not started its proxy either`);
  }
  await fake.restart();
  await Promise.all([awaitReady(a), awaitReady(b)]);
  for (const d of [a, b]) t.same(await readiness(d), { status: 200, body: 'ready\n' }, `${d.name} is ready after the first ACKs`);
  for (const typeUrl of [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL]) {
    const sent = fake.responses.find((r) => r.typeUrl === typeUrl)!;
    const ack = await fake.waitForRequest((r) => r.typeUrl === typeUrl && r.nonce === sent.nonce);
    t.notOk(ack.errorDetail, `${typeUrl.split('/')[1]} initial response ACKed`);
  }
});

t.test('the daemon identifies itself to istiod as Istio ztunnel does: node id, metadata, token, clusterid', async (t) => {
  const req = await fake.waitForRequest((r) => r.node?.id.includes(`~${A}~`) === true && r.typeUrl === ADDRESS_TYPE_URL);
  t.equal(req.node!.id, `ztunnel~${A}~ztunnel-a.istio-system~istio-system.svc.cluster.local`);
  t.match(req.node!.metadata, { NAME: 'ztunnel-a', NAMESPACE: 'istio-system', INSTANCE_IPS: A, NODE_NAME: NODE });
  t.same(req.subscribe, [], 'wildcard Address subscription');
  t.equal(req.headers['authorization'], 'Bearer token-a1');
  t.equal(req.headers['clusterid'], 'Kubernetes');
});

t.test('with the CA down at start the daemon is ready but a connection fails for want of a certificate; it works once the CA is back', async (t) => {
  // ports-and-modes.md §4: readiness has no certificate task (Rust ztunnel registers none), so
  // the daemons were ready above although every CreateCertificate call failed.
  const ca = await fake.waitForCaRequest((r) => r.headers['authorization'] === 'Bearer token-a1');
  t.notOk(ca.metadata?.['ImpersonatedIdentity'], 'dedicated mode: no impersonation metadata');
  const state = await until(async () => {
    const c = await dumpedCert(a, idOf('sa-a'));
    return c && c.state.startsWith('Unavailable') ? c : undefined;
  }, 'A certificate unavailable');
  t.match(state.state, /CreateCertificate failed/, '/config_dump shows why the certificate is unavailable');

  const failed = await tunnel(a, B, echo.port);
  t.equal(failed.data, '', 'no bytes through without a certificate');
  const line = await a.waitForLog((l) => l['component'] === 'access' && l['direction'] === 'outbound' && /CreateCertificate|certificate/i.test(String(l['error'] ?? '')));
  t.equal(line.level, 'error');
  const metrics = await (await a.http('stats', '/stats/prometheus')).text();
  t.match(metrics, /istio_tcp_connections_closed_total\{[^}]*response_flags="IDENTITY_ERROR"[^}]*\} [1-9]/, 'closed with the IDENTITY_ERROR flag');

  fake.caFailure = undefined;
  const ok = await until(async () => {
    const r = await tunnel(a, B, echo.port, 'after the CA came back');
    return r.data === 'after the CA came back' ? r : undefined;
  }, 'a connection after the CA came back', 30_000);
  t.equal(ok.data, 'after the CA came back');
});

t.test('traffic crosses A→B over HBONE with certificates issued by the stand-in CA', async (t) => {
  const r = await tunnel(a, B, echo.port, 'over hbone');
  t.equal(r.data, 'over hbone');
  const out = await a.waitForLog((l) => l['component'] === 'access' && l['direction'] === 'outbound' && l['bytes_sent'] === 10 && !l['error']);
  t.equal(out['dst.addr'], `${B}:15008`, 'A dialled B\'s HBONE port');
  t.equal(out['dst.identity'], idOf('sa-b'));
  const inb = await b.waitForLog((l) => l['component'] === 'access' && l['direction'] === 'inbound' && l['bytes_recv'] === 10);
  t.equal(inb['src.identity'], idOf('sa-a'), 'B saw A\'s certificate identity');

  const root = new X509Certificate(fake.rootPem);
  for (const [d, sa] of [[a, 'sa-a'], [b, 'sa-b']] as const) {
    const c = (await dumpedCert(d, idOf(sa)))!;
    t.equal(c.state, 'Available', `${sa}: Available`);
    t.equal(c.leaf!.issuer, root.subject, `${sa}: issued by the stand-in's root`);
    t.ok(c.leaf!.verify(root.publicKey), `${sa}: signature verifies with the stand-in's root key`);
    t.equal(c.leaf!.subjectAltName, `URI:${idOf(sa)}`, `${sa}: the URI SAN is the workload identity`);
    t.same(c.roots.map((x) => x.serialNumber), [root.serialNumber], `${sa}: the trusted root is the one the CA returned`);
    // The key in the certificate is the one from a CSR this daemon sent.
    const spki = c.leaf!.publicKey.export({ type: 'spki', format: 'der' });
    let matched = false;
    for (const req of fake.caRequests) if ((await csrSpki(req)).equals(spki)) matched = (await csrIdentity(req)) === idOf(sa);
    t.ok(matched, `${sa}: the certificate carries the key of the daemon's own CSR`);
  }
  const req = fake.caRequests.find((x) => x.headers['authorization'] === 'Bearer token-b1')!;
  t.equal(req.validitySeconds, 86_400, 'SECRET_TTL default: 24 h requested');
  t.equal(req.headers['clusterid'], 'Kubernetes');
});

t.test('incremental pushes: a new Service VIP becomes reachable, a new workload appears, and removals take effect', async (t) => {
  const extra = 'shop/extra.shop.svc.cluster.local';
  fake.batch(() => {
    fake.setService(service('extra', VIP2, [{ service_port: 81, target_port: echo.port }]));
    fake.setWorkload(workload('b', B, bServices({ [extra]: [{ service_port: 81, target_port: echo.port }] })));
    fake.setWorkload(workload('d', D, {}, { tunnel_protocol: 0 }));
  });
  const r = await until(async () => {
    const x = await tunnel(a, VIP2, 81, 'via new vip');
    return x.data === 'via new vip' ? x : undefined;
  }, 'the new VIP to answer');
  t.equal(r.data, 'via new vip');
  const line = await a.waitForLog((l) => l['component'] === 'access' && l['dst.service'] === 'extra.shop.svc.cluster.local');
  t.equal(line['dst.hbone_addr'], `${B}:${echo.port}`, 'the service port was mapped to the endpoint\'s target port');
  const dump = await configDump(a);
  t.ok(dump.workloads.some((w) => w.uid === 'Kubernetes//Pod/shop/d'), 'the added workload is in /config_dump');

  const plain = await tunnel(a, D, directEcho.port, 'plain tcp');
  t.equal(plain.data, 'plain tcp', 'a TCP (non-HBONE) workload is reached directly');

  fake.remove(ADDRESS_TYPE_URL, extra);
  fake.remove(ADDRESS_TYPE_URL, 'Kubernetes//Pod/shop/d');
  await until(async () => {
    const d2 = await configDump(a);
    return !d2.services.some((s) => s.hostname === 'extra.shop.svc.cluster.local') && !d2.workloads.some((w) => w.uid === 'Kubernetes//Pod/shop/d') ? true : undefined;
  }, 'the removals to reach A');
  const gone = await tunnel(a, VIP2, 81, 'anyone?');
  t.equal(gone.data, '', 'the removed VIP no longer leads anywhere');
  const still = await tunnel(a, VIP, 80, 'old vip');
  t.equal(still.data, 'old vip', 'the other Service is untouched');
  t.notOk(fake.requests.some((x) => x.errorDetail), 'every push so far was ACKed');
});

t.test('a bad resource is NACKed by name while the rest of the push applies and the daemon keeps serving', async (t) => {
  const svc3 = 'shop/third.shop.svc.cluster.local';
  const before = fake.requests.length;
  fake.batch(() => {
    fake.setWorkload({ ...workload('legacy', randomLoopback()), tunnel_protocol: 2 }); // LEGACY_ISTIO_MTLS: rejected (xds.md §3)
    fake.setService(service('third', VIP3, [{ service_port: 82, target_port: echo.port }]));
    fake.setWorkload(workload('b', B, bServices({ [svc3]: [{ service_port: 82, target_port: echo.port }] })));
  });
  const nack = await fake.waitForRequest((r) => fake.requests.indexOf(r) >= before && r.node === undefined && !!r.errorDetail && r.headers['authorization'] === 'Bearer token-a1');
  t.match(nack.errorDetail!.message, /^Kubernetes\/\/Pod\/shop\/legacy: .*LEGACY_ISTIO_MTLS/, 'the NACK names the rejected workload');
  t.notMatch(nack.errorDetail!.message, /third|shop\/b/, 'the good resources are not named');
  const r = await until(async () => {
    const x = await tunnel(a, VIP3, 82, 'third');
    return x.data === 'third' ? x : undefined;
  }, 'the good Service of the NACKed push to work');
  t.equal(r.data, 'third');
  const dump = await configDump(a);
  t.notOk(dump.workloads.some((w) => w.uid === 'Kubernetes//Pod/shop/legacy'), 'the rejected workload was not applied');
  t.equal((await tunnel(a, B, echo.port, 'still serving')).data, 'still serving');
  t.same(await readiness(a), { status: 200, body: 'ready\n' }, 'still ready');
  fake.batch(() => {
    fake.remove(ADDRESS_TYPE_URL, 'Kubernetes//Pod/shop/legacy');
    fake.remove(ADDRESS_TYPE_URL, svc3);
  });
});

t.test('a policy push closes a live connection it now denies; removing it lets new connections through', async (t) => {
  const live = await liveConnection(a, B, policyEcho.port);
  t.ok(await live.say('before;'), 'the live connection works');
  const before = fake.requests.length;
  fake.setAuthorization({
    name: 'deny-port', namespace: 'shop', scope: 1 /* NAMESPACE */, action: 1 /* DENY */,
    rules: [{ clauses: [{ matches: [{ destination_ports: [policyEcho.port] }] }] }],
  });
  await until(() => (live.isClosed() ? true : undefined), 'the live connection to close', 10_000);
  t.ok(live.isClosed(), 'the client connection was ended');
  live.socket.destroy();
  const line = await b.waitForLog((l) => l['component'] === 'access' && l['dst.hbone_addr'] === `${B}:${policyEcho.port}` && l['error'] !== undefined);
  t.match(line['error'], /^connection closed due to policy change/, 'B logs `connection closed due to policy change`');
  t.equal(line['bytes_recv'], 7, 'after the bytes it had relayed');
  const ack = await fake.waitForRequest((r) => fake.requests.indexOf(r) >= before && r.typeUrl === AUTHORIZATION_TYPE_URL && r.nonce !== '');
  t.notOk(ack.errorDetail, 'the policy was ACKed');
  t.equal((await tunnel(a, B, policyEcho.port, 'denied?')).data, '', 'a new connection is denied');
  t.equal((await tunnel(a, B, echo.port, 'other port')).data, 'other port', 'other ports are unaffected');

  fake.remove(AUTHORIZATION_TYPE_URL, 'shop/deny-port');
  const back = await until(async () => {
    const x = await tunnel(a, B, policyEcho.port, 'allowed again');
    return x.data === 'allowed again' ? x : undefined;
  }, 'the removed policy to stop denying');
  t.equal(back.data, 'allowed again');
});

t.test('a rotated token file is used when the stream reconnects, which announces what the daemon holds', async (t) => {
  writeFileSync(tokenA, 'token-a2\n');
  const before = fake.requests.length;
  fake.endStreams();
  const req = await fake.waitForRequest((r) => fake.requests.indexOf(r) >= before && r.node?.id.includes(`~${A}~`) === true && r.typeUrl === ADDRESS_TYPE_URL);
  t.equal(req.headers['authorization'], 'Bearer token-a2', 'the new token is sent');
  t.ok(req.initialResourceVersions['Kubernetes//Pod/shop/b'], 'initial_resource_versions names the held workloads');
  t.ok(req.initialResourceVersions['shop/b.shop.svc.cluster.local'], '… and the held services');
  t.notOk(req.initialResourceVersions['Kubernetes//Pod/shop/legacy'], 'not the NACKed one');
  t.equal((await tunnel(a, B, echo.port, 'after reconnect')).data, 'after reconnect');
  const metrics = await (await a.http('stats', '/stats/prometheus')).text();
  t.match(metrics, /istio_xds_connection_terminations_total\{reason="[A-Za-z]+"\} [1-9]/, 'the ended stream is counted');
});

t.test('short-lived certificates rotate under a live connection; a CA outage during refresh keeps the old certificate until it expires', async (t) => {
  // C asks for 8 s certificates (refresh at half-life = 4 s) and opens one HBONE connection per
  // stream, so every new connection performs a fresh TLS handshake with the current certificate.
  const tokenC = writeTemp(dir, 'token-c', 'token-c1\n');
  const c = await startDaemon({
    name: 'C',
    env: daemonEnv(fake, 'c', C, tokenC, { SECRET_TTL: '8s', POOL_MAX_STREAMS_PER_CONNECTION: '1' }),
    readyTimeoutMs: 30_000,
  });
  t.teardown(() => c.stop());
  const id = idOf('sa-c');
  const first = await until(async () => {
    const x = await dumpedCert(c, id);
    return x?.state === 'Available' ? x : undefined;
  }, 'C certificate');
  const req = (await Promise.all(fake.caRequests.map(async (r) => ((await csrIdentity(r)) === id ? r : undefined)))).find((r) => r);
  t.equal(req?.validitySeconds, 8, 'SECRET_TTL=8s is sent as validity_duration');

  // Rotation with a live connection, and a token change picked up by the next CA call.
  const live = await liveConnection(c, B, echo.port);
  t.ok(await live.say('one;'));
  writeFileSync(tokenC, 'token-c2\n');
  const rotated = await until(async () => {
    const x = await dumpedCert(c, id);
    return x?.leaf && x.state === 'Available' && x.leaf.serialNumber !== first.leaf!.serialNumber ? x : undefined;
  }, 'a rotated certificate');
  const withNewToken = await fake.waitForCaRequest((r) => r.headers['authorization'] === 'Bearer token-c2', 15_000);
  t.equal(await csrIdentity(withNewToken), id, 'the CA call after the token change carries the new token');
  t.equal(rotated.leaf!.issuer, new X509Certificate(fake.rootPem).subject);
  await until(() => (Date.now() > new Date(first.leaf!.validTo).getTime() + 500 ? true : undefined), 'the first certificate to expire');
  t.ok(await live.say('two;'), 'the live connection survived rotation and the first certificate\'s expiry');
  t.notOk(live.isClosed());
  t.equal((await tunnel(c, B, echo.port, 'new conn')).data, 'new conn', 'a new connection (new TLS session) works with the new certificate');
  const now = (await dumpedCert(c, id))!;
  t.not(now.leaf!.serialNumber, first.leaf!.serialNumber, '/config_dump shows a new serial');
  live.socket.end();

  // CA outage during refresh: the still-valid certificate keeps serving.
  const current = now.leaf!;
  fake.caFailure = { code: GrpcStatus.UNAVAILABLE, details: 'CA is down' };
  const from = fake.caRequests.length;
  await fake.waitForCaRequest((r) => fake.caRequests.indexOf(r) >= from && r.headers['authorization'] === 'Bearer token-c2', 15_000);
  const kept = await until(async () => {
    const x = await dumpedCert(c, id);
    return x?.leaf && x.leaf.serialNumber !== current.serialNumber ? undefined : x;
  }, 'the kept certificate');
  t.equal(kept.leaf!.serialNumber, current.serialNumber, 'the failed refresh kept the old certificate');
  t.equal(kept.state, 'Available');
  t.equal((await tunnel(c, B, echo.port, 'during outage')).data, 'during outage', 'traffic works on the kept certificate');

  // … until it expires: then new connections fail, and recover once the CA is back.
  await until(() => (Date.now() > new Date(current.validTo).getTime() + 500 ? true : undefined), 'the kept certificate to expire');
  t.equal((await tunnel(c, B, echo.port, 'expired')).data, '', 'no certificate after expiry while the CA is down');
  t.match((await dumpedCert(c, id))!.state, /^Unavailable/, '/config_dump says Unavailable');
  fake.caFailure = undefined;
  const back = await until(async () => {
    const x = await tunnel(c, B, echo.port, 'recovered');
    return x.data === 'recovered' ? x : undefined;
  }, 'recovery after the CA came back', 40_000);
  t.equal(back.data, 'recovered');
});
