// The admin (15000) and readiness (15021) servers of real daemon processes (telemetry.md §5,
// ports-and-modes.md §4–§5): /config_dump's shape, /logging at run time, /debug/connections during
// a live transfer, the index and 404s, readiness transitions against a stand-in istiod, and the
// graceful drain behind POST /quitquitquit.
import { X509Certificate, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { LocalCa } from '../../src/identity/local-ca.js';
import { dedicatedEnv, randomLoopback, startDaemon, tempDir, type Daemon, type LogLine } from '../helpers/daemon.js';
import { FakeIstiod } from '../helpers/fake-istiod.js';
import { roundTrip, socks5Connect, startEchoServer } from '../helpers/servers.js';

const A = randomLoopback();
const B = randomLoopback();
const VIP = randomLoopback();
const ELSEWHERE = randomLoopback();
const SA_A = 'spiffe://cluster.local/ns/shop/sa/sa-a';
const SA_B = 'spiffe://cluster.local/ns/shop/sa/sa-b';
const UID_A = 'Kubernetes//Pod/shop/a-pod';
const UID_B = 'Kubernetes//Pod/shop/b-pod';

const dir = tempDir();
/** A token given by value: no admin output may show it. */
const LITERAL_TOKEN = `tok-${randomBytes(12).toString('hex')}`;
const echo = await startEchoServer(B);
const outside = await startEchoServer(ELSEWHERE);
t.teardown(() => Promise.all([echo.close(), outside.close()]));

const configPath = `${dir}/mesh.yaml`;
const configText = `
workloads:
- uid: ${UID_A}
  name: a-pod
  namespace: shop
  serviceAccount: sa-a
  trustDomain: cluster.local
  clusterId: Kubernetes
  workloadIps: ["${A}"]
  protocol: HBONE
  workloadType: deployment
  workloadName: a
  canonicalName: a
  canonicalRevision: v1
  services: {}
- uid: ${UID_B}
  name: b-pod
  namespace: shop
  serviceAccount: sa-b
  trustDomain: cluster.local
  clusterId: Kubernetes
  workloadIps: ["${B}"]
  protocol: HBONE
  workloadType: deployment
  workloadName: b
  canonicalName: b
  canonicalRevision: v1
  authorizationPolicies: ["shop/allow-a"]
  services:
    "shop/b.shop.svc.cluster.local": {80: ${echo.port}}
services:
- name: b
  namespace: shop
  hostname: b.shop.svc.cluster.local
  vips: ["/${VIP}"]
  ports: {80: ${echo.port}}
policies:
- name: allow-a
  namespace: shop
  scope: WorkloadSelector
  action: Allow
  dryRun: false
  rules:
  - - - principals: [{Exact: "cluster.local/ns/shop/sa/sa-a"}]
      - principals: [{Prefix: "cluster.local/ns/other/"}]
    - - destinationPorts: [${echo.port}]
`;

function env(pod: string, serviceAccount: string, ip: string, extra: Record<string, string> = {}): Record<string, string> {
  return dedicatedEnv({ workloadInfo: `shop/${pod}/${serviceAccount}`, ip, config: configPath, stateDir: `${dir}/ca`, extra });
}

let a: Daemon;
let b: Daemon;
let socks: { host: string; port: number };

t.before(async () => {
  await LocalCa.open({ stateDir: `${dir}/ca`, ttlMs: 24 * 3600_000 });
  writeFileSync(configPath, configText);
  [a, b] = await Promise.all([
    // A short drain deadline: the /quitquitquit test force-closes a live connection at it.
    startDaemon({ name: 'A', env: env('a-pod', 'sa-a', A, {
      CONNECTION_TERMINATION_DEADLINE: '1s', AUTH_TOKEN: LITERAL_TOKEN, XDS_HEADER_AUTHORIZATION: `Bearer ${LITERAL_TOKEN}`,
      XDS_HEADER_X_TENANT: 'blue', CA_HEADER_X_API_KEY: LITERAL_TOKEN, ISTIO_META_TEAM: 'payments',
    }) }),
    startDaemon({ name: 'B', env: env('b-pod', 'sa-b', B) }),
  ]);
  const [host, port] = a.addresses['socks5']!.split(':');
  socks = { host: host!, port: Number(port) };
});
t.teardown(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
});

/** A live connection through the tunnel with helpers to move bytes and wait for the echo. */
async function openTunnel(target: { host: string; port: number }) {
  const s = await socks5Connect(socks, target);
  let echoed = 0;
  const waiters: Array<() => void> = [];
  s.on('data', (d: Buffer) => {
    echoed += d.length;
    for (const w of waiters.splice(0)) w();
  });
  s.on('error', () => {});
  s.resume();
  return {
    socket: s as Socket,
    src: `${s.localAddress}:${s.localPort}`,
    async send(n: number): Promise<void> {
      const target = echoed + n;
      s.write(randomBytes(n));
      while (echoed < target) await new Promise<void>((r) => waiters.push(r));
    },
  };
}

function accessRecord(d: Daemon, pred: (l: LogLine) => boolean): Promise<LogLine> {
  return d.waitForLog((l) => l['component'] === 'access' && l.msg === 'connection complete' && pred(l));
}

async function text(res: Response): Promise<[number, string, string | null]> {
  return [res.status, await res.text(), res.headers.get('content-type')];
}

t.test('the admin index lists the endpoints, and unknown paths answer 404 on all three servers', async (t) => {
  const [status, body, type] = await text(await a.http('admin', '/'));
  t.equal(status, 200);
  t.match(type, /^text\/html/);
  for (const p of ['/config_dump', '/logging', '/quitquitquit', '/debug/connections']) t.match(body, p, `index mentions ${p}`);
  for (const p of ['/nope', '/config_dump/x', '/metrics', '/healthz/ready']) t.equal((await a.http('admin', p)).status, 404, `admin ${p} → 404`);
  t.equal((await a.http('readiness', '/ready')).status, 404, 'readiness /ready → 404');
  t.equal((await a.http('readiness', '/')).status, 404, 'readiness / → 404');
  t.equal((await a.http('stats', '/config_dump')).status, 404, 'stats /config_dump → 404');
});

t.test('readiness of a running daemon: GET 200 "ready", other methods 405', async (t) => {
  t.same(await text(await a.http('readiness', '/healthz/ready')), [200, 'ready\n', 'text/plain; charset=utf-8']);
  t.equal((await a.http('readiness', '/healthz/ready', { method: 'POST' })).status, 405);
  t.equal((await a.http('readiness', '/healthz/ready', { method: 'PUT' })).status, 405);
});

t.test('/config_dump: the documented keys, workloads, services with endpoints, policies, certificates', async (t) => {
  // A connection makes sure A holds its certificate (prefetched at start, used by the pool).
  const { data } = await roundTrip(await socks5Connect(socks, { host: VIP, port: 80 }), Buffer.from('warm'));
  t.equal(data.toString(), 'warm');
  const res = await a.http('admin', '/config_dump');
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^application\/json/);
  const raw = await res.text();
  t.match(raw, /^\{\n {2}"workloads"/, 'pretty-printed JSON');
  const dump = JSON.parse(raw) as Record<string, any>;
  for (const k of ['workloads', 'services', 'policies', 'stagedServices', 'staticConfig', 'version', 'config', 'certificates']) t.ok(k in dump, `has ${k}`);
  t.notOk('workloadState' in dump, 'no workloadState outside shared mode');

  const wa = (dump['workloads'] as any[]).find((w) => w.uid === UID_A);
  t.match(wa, {
    uid: UID_A, name: 'a-pod', namespace: 'shop', serviceAccount: 'sa-a', trustDomain: 'cluster.local', clusterId: 'Kubernetes',
    workloadIps: [A], protocol: 'HBONE', workloadName: 'a', workloadType: 'deployment', canonicalName: 'a', canonicalRevision: 'v1',
  }, 'workload a in the internal model (config.md §2.1 keys)');
  for (const k of ['services', 'hostname', 'network', 'nativeTunnel', 'authorizationPolicies']) t.notOk(k in wa, `empty ${k} left out, as Istio's ztunnel does`);
  const wb = (dump['workloads'] as any[]).find((w) => w.uid === UID_B);
  t.same(wb.services, ['shop/b.shop.svc.cluster.local'], 'services: a list of namespace/hostname');
  t.same(wb.authorizationPolicies, ['shop/allow-a']);

  t.equal(dump['services'].length, 1);
  const svc = dump['services'][0];
  t.match(svc, { name: 'b', namespace: 'shop', hostname: 'b.shop.svc.cluster.local', vips: [`/${VIP}`], ports: { 80: echo.port } });
  t.same(svc.endpoints, { [UID_B]: { workloadUid: UID_B, port: { 80: echo.port }, status: 'Healthy' } }, 'endpoints: uid → {workloadUid, port, status}');

  t.same(dump['policies'], [{
    name: 'allow-a', namespace: 'shop', scope: 'WorkloadSelector', action: 'Allow', dryRun: false,
    rules: [[
      [{ principals: [{ Exact: 'cluster.local/ns/shop/sa/sa-a' }] }, { principals: [{ Prefix: 'cluster.local/ns/other/' }] }],
      [{ destinationPorts: [echo.port] }],
    ]],
  }], 'policies in the local-file shape (config.md §2.4)');
  t.same(dump['stagedServices'], {});
  t.same(dump['staticConfig'], parseYaml(readFileSync(configPath, 'utf8')), 'staticConfig: the local file as an object');

  t.same(Object.keys(dump['version']).sort(), ['buildProfile', 'buildStatus', 'cryptoProvider', 'gitRevision', 'istioVersion', 'rustVersion', 'version']);
  const config = dump['config'] as Record<string, unknown>;
  t.equal(config['proxyMode'], 'dedicated');
  t.equal(config['localXdsPath'], configPath);
  t.same(config['proxyWorkloadInfo'], { namespace: 'shop', name: 'a-pod', serviceAccount: 'sa-a' });
  t.equal(config['drainDeadlineMs'], 1000);
  const badKeys: string[] = [];
  const walk = (v: unknown, path: string) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return;
    for (const [k, x] of Object.entries(v)) {
      if (!/^[a-z][A-Za-z0-9]*$/.test(k) && !path.endsWith('Headers') && !path.endsWith('Metadata') && !path.endsWith('metaJson')) badKeys.push(`${path}.${k}`);
      walk(x, `${path}.${k}`);
    }
  };
  walk(config, 'config');
  t.same(badKeys, [], 'config keys are camelCase');
  t.same(config['xdsHeaders'], [['authorization', '<redacted>'], ['x_tenant', 'blue']], 'xDS headers as [name, value] pairs, a credential redacted');
  t.same(config['caHeaders'], [['x_api_key', '<redacted>']], 'CA headers: an API key redacted');
  t.match(config['proxyMetadata'], { TEAM: 'payments' }, 'map-valued settings dumped with their values');
  t.notOk('authToken' in config, 'the token source is left out, as Istio does');
  t.notMatch(raw, LITERAL_TOKEN, 'the token appears nowhere in /config_dump');

  const certs = dump['certificates'] as any[];
  const mine = certs.find((c) => c.identity === SA_A);
  t.ok(mine, 'A holds a certificate for its own identity');
  t.equal(mine.state, 'Available');
  t.equal(mine.certChain.length, 1);
  const leafPem = Buffer.from(mine.certChain[0].pem, 'base64').toString('utf8');
  t.match(leafPem, /^-----BEGIN CERTIFICATE-----/, 'pem is the base64 of a PEM');
  const leaf = new X509Certificate(leafPem);
  t.equal(leaf.subjectAltName, `URI:${SA_A}`);
  t.equal(mine.certChain[0].serialNumber, BigInt(`0x${leaf.serialNumber}`).toString(10), 'serial number in decimal');
  const rfc3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
  t.match(mine.certChain[0].validFrom, rfc3339);
  t.match(mine.certChain[0].expirationTime, rfc3339);
  t.equal(Date.parse(mine.certChain[0].validFrom), Date.parse(leaf.validFrom));
  t.equal(Date.parse(mine.certChain[0].expirationTime), Date.parse(leaf.validTo));
  t.equal(mine.rootCerts.length, 1);
  const rootPem = Buffer.from(mine.rootCerts[0].pem, 'base64').toString('utf8');
  t.equal(new X509Certificate(rootPem).fingerprint256, new X509Certificate(readFileSync(`${dir}/ca/ca-cert.pem`)).fingerprint256, 'root is the local CA');
  t.ok(leaf.verify(new X509Certificate(rootPem).publicKey), 'the leaf is signed by the listed root');
});

t.test('/logging reports and changes levels at run time; a DEBUG "connection opened" line then appears', async (t) => {
  t.same(await text(await a.http('admin', '/logging', { method: 'POST' })), [200, 'current log level is info\n', 'text/plain; charset=utf-8']);
  t.equal((await a.http('admin', '/logging')).status, 405, 'GET → 405');
  const [badStatus, badBody] = await text(await a.http('admin', '/logging?level=loud', { method: 'POST' }));
  t.equal(badStatus, 400);
  t.match(badBody, /levels: error, warn, info, debug, trace, off/, 'help text lists the levels');
  t.equal((await a.http('admin', '/logging?level=access=shout', { method: 'POST' })).status, 400, 'bad per-scope level → 400');
  const [colonStatus, colonBody] = await text(await a.http('admin', '/logging?level=access:debug', { method: 'POST' }));
  t.equal(colonStatus, 400, 'the <scope>:<level> form → 400, as Istio\'s ztunnel answers');
  t.match(colonBody, /^Invalid level provided: access:debug\n/);
  t.equal((await a.http('admin', '/logging?level=nosuchscope=debug', { method: 'POST' })).status, 400, 'an unknown scope → 400 (issue 16 item 7)');
  t.same(await text(await a.http('admin', '/logging', { method: 'POST' })), [200, 'current log level is info\n', 'text/plain; charset=utf-8'], 'a rejected change changed nothing');

  // Before: no DEBUG line for a connection.
  const quiet = await openTunnel({ host: ELSEWHERE, port: outside.port });
  await quiet.send(10);
  await roundTrip(quiet.socket, Buffer.alloc(0));
  await accessRecord(a, (l) => l['src.addr'] === quiet.src);
  t.notOk(a.logs.some((l) => l.msg === 'connection opened' && l['src.addr'] === quiet.src), 'no DEBUG line at info');

  t.same((await text(await a.http('admin', '/logging?level=access=debug', { method: 'POST' })))[1], 'current log level is info,access=debug\n');
  const loud = await openTunnel({ host: B, port: echo.port });
  const opened = await a.waitForLog((l) => l.msg === 'connection opened' && l['src.addr'] === loud.src);
  t.equal(opened.level, 'debug');
  t.equal(opened['component'], 'access');
  const fields = Object.fromEntries(Object.entries(opened).filter(([k]) => !['level', 'time', 'scope', 'message'].includes(k)));
  t.same(fields, {
    'src.addr': loud.src,
    'src.workload': 'a-pod',
    'src.namespace': 'shop',
    'src.identity': SA_A,
    'src.cluster': 'Kubernetes',
    'dst.addr': `${B}:15008`,
    'dst.hbone_addr': `${B}:${echo.port}`,
    'dst.workload': 'b-pod',
    'dst.namespace': 'shop',
    'dst.identity': SA_B,
    'dst.cluster': 'Kubernetes',
    direction: 'outbound',
  }, 'all fields but bytes and duration');
  t.same(Object.keys(fields), ['src.addr', 'src.workload', 'src.namespace', 'src.identity', 'src.cluster', 'dst.addr', 'dst.hbone_addr', 'dst.workload', 'dst.namespace', 'dst.identity', 'dst.cluster', 'direction'], 'in the spec order');
  await loud.send(5);
  await roundTrip(loud.socket, Buffer.alloc(0));
  await accessRecord(a, (l) => l['src.addr'] === loud.src);

  t.same((await text(await a.http('admin', '/logging?level=debug', { method: 'POST' })))[1], 'current log level is debug,access=debug\n', 'global level');
  t.same((await text(await a.http('admin', '/logging?reset', { method: 'POST' })))[1], 'current log level is info\n', '&reset restores the start-up levels');
  const after = await openTunnel({ host: ELSEWHERE, port: outside.port });
  await after.send(3);
  await roundTrip(after.socket, Buffer.alloc(0));
  await accessRecord(a, (l) => l['src.addr'] === after.src);
  t.notOk(a.logs.some((l) => l.msg === 'connection opened' && l['src.addr'] === after.src), 'no DEBUG line after reset');
});

type Row = Record<string, unknown>;

async function connections(d: Daemon, query = '?format=json'): Promise<Row[]> {
  const res = await d.http('admin', `/debug/connections${query}`);
  return (await res.json()) as Row[];
}

t.test('/debug/connections shows a live transfer on both sides with growing bytes and the allowing policy', async (t) => {
  t.same(await connections(a), [], 'nothing open yet');
  const c = await openTunnel({ host: VIP, port: 80 });
  await c.send(10_000);
  const [rowsA, rowsB] = await Promise.all([connections(a), connections(b)]);
  t.equal(rowsA.length, 1);
  t.match(rowsA[0], {
    direction: 'outbound',
    src: c.src,
    dst: `${B}:15008`,
    hbone: `${B}:${echo.port}`,
    srcIdentity: SA_A,
    dstIdentity: SA_B,
    srcWorkload: 'shop/a-pod',
    dstWorkload: 'shop/b-pod',
    bytesSent: 10_000,
    bytesRecv: 10_000,
    pod: UID_A,
  });
  t.type(rowsA[0]!['ageMs'], 'number');
  t.equal(rowsB.length, 1);
  t.match(rowsB[0], {
    direction: 'inbound',
    dst: `${B}:15008`,
    hbone: `${B}:${echo.port}`,
    srcIdentity: SA_A,
    dstIdentity: SA_B,
    bytesSent: 10_000,
    bytesRecv: 10_000,
    pod: UID_B,
    allowedBy: 'shop/allow-a rule[0]',
  });

  await c.send(5_000);
  const [grownA] = await connections(a);
  t.equal(grownA!['bytesSent'], 15_000, 'bytes grow while the connection is open');
  t.equal(grownA!['bytesRecv'], 15_000);
  t.ok((grownA!['ageMs'] as number) >= (rowsA[0]!['ageMs'] as number), 'age does not go backwards');

  t.same(await connections(a, '?format=json&direction=inbound'), [], 'direction filter');
  t.equal((await connections(b, '?format=json&direction=inbound')).length, 1);
  t.equal((await connections(a, `?format=json&workload=${encodeURIComponent(UID_A)}`)).length, 1, 'workload filter: the owning pod');
  t.same(await connections(a, `?format=json&workload=${encodeURIComponent(UID_B)}`), []);

  const [status, table, type] = await text(await a.http('admin', '/debug/connections'));
  t.equal(status, 200);
  t.equal(type, 'text/plain; charset=utf-8');
  const lines = table.trimEnd().split('\n');
  t.equal(lines.length, 2, 'a header and one row');
  t.match(lines[0], /^DIRECTION\s+SRC\s+DST\s+HBONE\s+SRC_IDENTITY\s+DST_IDENTITY\s+BYTES_SENT\s+BYTES_RECV\s+AGE\s+POD\s+ALLOWED_BY\s+WORKER$/);
  t.same(lines[1]!.split(/\s+/).slice(0, 8), ['outbound', c.src, `${B}:15008`, `${B}:${echo.port}`, SA_A, SA_B, '15000', '15000']);
  const bTable = (await text(await b.http('admin', '/debug/connections')))[1];
  t.match(bTable, /shop\/allow-a rule\[0\]/, 'B\'s table names the allowing policy');

  await roundTrip(c.socket, Buffer.alloc(0));
  await Promise.all([accessRecord(a, (l) => l['src.addr'] === c.src), accessRecord(b, (l) => l['bytes_recv'] === 15_000)]);
  t.same(await connections(a), [], 'closed connections leave the table');
  t.same(await connections(b), []);
});

t.test('readiness stays 500 listing what is pending until xDS answers, then turns 200', async (t) => {
  const istiod = await FakeIstiod.start();
  const port = istiod.port;
  await istiod.stop(); // nothing answers yet: the first xDS exchange cannot complete
  t.teardown(() => istiod.stop());
  const ip = randomLoopback();
  const readyAddr = `${ip}:15021`;
  const rEnv = env('r-pod', 'sa-r', ip, {
    XDS_ADDRESS: `https://127.0.0.1:${port}`,
    XDS_ROOT_CA: istiod.rootPem,
    ZTUNNEL_READINESS_ADDR: readyAddr,
  });
  delete rEnv['LOCAL_XDS_PATH']; // xDS is the only config source
  const daemon = startDaemon({ name: 'R', env: rEnv, readyTimeoutMs: 60_000 });
  let started: Daemon | undefined;
  t.teardown(async () => {
    await (started ?? (await daemon.catch(() => undefined)))?.stop();
  });
  const ready = () => fetch(`http://${readyAddr}/healthz/ready`);
  let res: Response | undefined;
  for (let i = 0; i < 100 && !res; i++) {
    res = await ready().catch(() => undefined);
    if (!res) await new Promise((r) => setTimeout(r, 100));
  }
  t.ok(res, 'the readiness server answers while the daemon starts');
  t.same([res!.status, await res!.text()], [500, 'not ready, pending: proxy, state manager\n']);
  t.equal((await fetch(`http://${readyAddr}/healthz/ready`, { method: 'POST' })).status, 405, 'POST → 405 while pending too');
  t.equal((await fetch(`http://${readyAddr}/healthz/other`)).status, 404);

  await istiod.restart(); // same port, same root
  started = await daemon;
  t.same(await text(await fetch(`http://${readyAddr}/healthz/ready`)), [200, 'ready\n', 'text/plain; charset=utf-8']);
});

t.test('POST /quitquitquit drains: a live connection is closed at the deadline and logged once, then the process exits', async (t) => {
  t.equal((await a.http('admin', '/quitquitquit')).status, 405, 'GET → 405');
  t.equal((await a.http('admin', '/quitquitquit', { method: 'PUT' })).status, 405, 'PUT → 405');
  t.equal(a.child.exitCode, null, 'still running');
  const c = await openTunnel({ host: B, port: echo.port });
  await c.send(100);
  // The client sees the tunnel end (FIN, or a reset); its socket is half-open capable.
  const clientClosed = new Promise<void>((r) => {
    c.socket.once('end', () => r());
    c.socket.once('close', () => r());
  });
  const [status, body] = await text(await a.http('admin', '/quitquitquit', { method: 'POST' }));
  t.equal(status, 200);
  t.equal(body, 'shutdown now\n');
  t.equal(await a.exited, 0, 'the process exits with 0');
  await clientClosed;
  const records = a.logs.filter((l) => l['component'] === 'access' && l.msg === 'connection complete' && l['src.addr'] === c.src);
  t.equal(records.length, 1, 'the drained connection is recorded exactly once');
  t.equal(records[0]?.level, 'error');
  t.equal(records[0]?.['error'], 'connection closed at the drain deadline');
  t.equal(records[0]?.['bytes_sent'], 100);
  const order = a.logs.map((l) => l.msg);
  t.ok(order.indexOf('draining') < order.lastIndexOf('connection complete') && order.lastIndexOf('connection complete') < order.indexOf('shutdown complete'), 'drain → record → shutdown complete', { order });
});
