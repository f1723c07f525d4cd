// Istio's traffic metrics and the access log, end to end (telemetry.md §1–§4): SOCKS5 client →
// ztunnel A → HBONE → ztunnel B → app, two real daemon processes from dist/, scraped over HTTP with
// fetch and parsed with a Prometheus text-format parser. Each test scrapes before and after one
// connection and asserts exactly which samples moved, by how much, with which labels.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http2 from 'node:http2';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { writeFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import { LocalCa } from '../../src/identity/local-ca.js';
import { Daemon, MAIN_JS, baseDaemonEnv, dedicatedEnv, randomLoopback, startDaemon, tempDir, type LogLine } from '../helpers/daemon.js';
import { delta, samplesOf, scrape, type Sample, type Scrape } from '../helpers/metrics-scrape.js';
import { roundTrip, socks5Connect, startEchoServer } from '../helpers/servers.js';

const A = randomLoopback();
const B = randomLoopback();
const VIP = randomLoopback();
const ELSEWHERE = randomLoopback(); // a host the mesh does not know (passthrough)
const ISTIO_VERSION = '1.28.0-zt-test';
const SA_A = 'spiffe://cluster.local/ns/shop/sa/sa-a';
const SA_B = 'spiffe://cluster.local/ns/shop/sa/sa-b';

// telemetry.md §3, written out here so the test does not trust the implementation's constant.
const LABEL_ORDER = [
  'reporter',
  'source_workload', 'source_canonical_service', 'source_canonical_revision', 'source_workload_namespace',
  'source_principal', 'source_app', 'source_version', 'source_cluster',
  'destination_service', 'destination_service_namespace', 'destination_service_name',
  'destination_workload', 'destination_canonical_service', 'destination_canonical_revision',
  'destination_workload_namespace', 'destination_principal', 'destination_app', 'destination_version',
  'destination_cluster', 'request_protocol', 'response_flags', 'connection_security_policy',
  'source_region', 'source_zone', 'destination_region', 'destination_zone',
];

const dir = tempDir();
const echo = await startEchoServer(B);
const denied = await startEchoServer(B); // would echo, but policy must stop every connection first
const outside = await startEchoServer(ELSEWHERE);
t.teardown(() => Promise.all([echo.close(), denied.close(), outside.close()]));

// Workload `a` has workloadName = canonicalName: an inbound source known only from baggage derives
// its app from the workload name (telemetry.md §3), so distinct values would make that label
// depend on the source path. Workload `b` keeps every name distinct so a mix-up shows.
const configText = `
workloads:
- uid: Kubernetes//Pod/shop/a-pod-7d9c
  name: a-pod-7d9c
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
  locality: {region: eu-west1, zone: eu-west1-b, subzone: ""}
  services: {}
- uid: Kubernetes//Pod/shop/b-pod-5f6b
  name: b-pod-5f6b
  namespace: shop
  serviceAccount: sa-b
  trustDomain: cluster.local
  clusterId: Kubernetes
  workloadIps: ["${B}"]
  protocol: HBONE
  workloadType: deployment
  workloadName: b-deploy
  canonicalName: b-app
  canonicalRevision: v2
  locality: {region: us-east1, zone: us-east1-c, subzone: ""}
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
- name: deny-port
  namespace: shop
  scope: Namespace
  action: Deny
  dryRun: false
  rules:
  - - - destinationPorts: [${denied.port}]
`;

function env(pod: string, serviceAccount: string, ip: string, config: string): Record<string, string> {
  return dedicatedEnv({ workloadInfo: `shop/${pod}/${serviceAccount}`, ip, config, stateDir: `${dir}/ca`, extra: { ISTIO_META_ISTIO_VERSION: ISTIO_VERSION } });
}

let a: Daemon;
let b: Daemon;
let socks: { host: string; port: number };
let ca: LocalCa;

t.before(async () => {
  ca = await LocalCa.open({ stateDir: `${dir}/ca`, ttlMs: 24 * 3600_000 }); // one root for both daemons
  writeFileSync(`${dir}/mesh.yaml`, configText);
  [a, b] = await Promise.all([
    startDaemon({ name: 'A', env: env('a-pod-7d9c', 'sa-a', A, `${dir}/mesh.yaml`) }),
    startDaemon({ name: 'B', env: env('b-pod-5f6b', 'sa-b', B, `${dir}/mesh.yaml`) }),
  ]);
  const [host, port] = a.addresses['socks5']!.split(':');
  socks = { host: host!, port: Number(port) };
});
t.teardown(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
});

const metricsUrl = (d: Daemon, path = '/metrics') => `http://${d.addresses['stats']}${path}`;
const metrics = (d: Daemon) => scrape(metricsUrl(d));
// The per-connection counters (istio_tcp_sockets_open is a gauge with only `reporter`).
const TRAFFIC = /^istio_tcp_(?!sockets_open)/;

/** The access record (`connection complete`) of one connection, waited for. */
function accessRecord(d: Daemon, pred: (l: LogLine) => boolean): Promise<LogLine> {
  return d.waitForLog((l) => l['component'] === 'access' && l.msg === 'connection complete' && pred(l));
}

/**
 * The access fields in emitted order, without the four keys every line starts with (Istio's JSON
 * layout: level, time, scope, message — checked here too); duration checked and normalised.
 */
function accessFields(t: Test, line: LogLine): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  t.same(Object.keys(line).slice(0, 4), ['level', 'time', 'scope', 'message'], 'the line starts as Istio\'s JSON lines do');
  t.match(line['time'], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'time in UTC with microseconds');
  t.equal(line['scope'], 'access');
  for (const [k, v] of Object.entries(line).slice(4)) out[k] = v;
  t.match(out['duration'], /^\d+ms$/, 'duration is "<N>ms"');
  out['duration'] = '<N>ms';
  return out;
}

/** Asserts both the values and the emitted order of an access record's fields. */
function sameFields(t: Test, line: LogLine, expected: Record<string, unknown>, what: string): void {
  const got = accessFields(t, line);
  t.same(got, expected, `${what}: field values`);
  t.same(Object.keys(got), Object.keys(expected), `${what}: field order`);
}

type Labels = Record<string, string>;

/** Labels of a connection a → b (reporter source by default); overrides replace single values. */
function labels(overrides: Labels = {}): Labels {
  const base: Labels = {
    reporter: 'source',
    source_workload: 'a',
    source_canonical_service: 'a',
    source_canonical_revision: 'v1',
    source_workload_namespace: 'shop',
    source_principal: SA_A,
    source_app: 'a',
    source_version: 'v1',
    source_cluster: 'Kubernetes',
    destination_service: 'b.shop.svc.cluster.local',
    destination_service_namespace: 'shop',
    destination_service_name: 'b',
    destination_workload: 'b-deploy',
    destination_canonical_service: 'b-app',
    destination_canonical_revision: 'v2',
    destination_workload_namespace: 'shop',
    destination_principal: SA_B,
    destination_app: 'b-app',
    destination_version: 'v2',
    destination_cluster: 'Kubernetes',
    request_protocol: 'tcp',
    response_flags: '-',
    connection_security_policy: 'mutual_tls',
    source_region: 'eu-west1',
    source_zone: 'eu-west1-b',
    destination_region: 'us-east1',
    destination_zone: 'us-east1-c',
  };
  for (const k of Object.keys(overrides)) if (!(k in base)) throw new Error(`unknown label ${k}`);
  return { ...base, ...overrides };
}

const NO_SERVICE: Labels = { destination_service: 'unknown', destination_service_namespace: 'unknown', destination_service_name: 'unknown' };

/** Sorted, comparable view of the samples that moved. */
function moved(samples: Sample[]): { name: string; labels: Labels; value: number }[] {
  return samples
    .map((s) => ({ name: s.name, labels: s.labels, value: s.value }))
    .sort((x, y) => (x.name + JSON.stringify(x.labels)).localeCompare(y.name + JSON.stringify(y.labels)));
}

function expectMoved(t: Test, before: Scrape, after: Scrape, expected: { name: string; labels: Labels; value: number }[], what: string): void {
  const got = moved(delta(before, after, TRAFFIC));
  t.same(got, moved(expected.map((e) => ({ ...e }))), `${what}: exactly these traffic samples moved`);
  for (const s of got) t.same(Object.keys(s.labels), LABEL_ORDER, `${what}: ${s.name} labels in the spec's order`);
}

async function viaTunnel(target: { host: string; port: number }, payload: Buffer) {
  const s = await socks5Connect(socks, target);
  const src = `${s.localAddress}:${s.localPort}`;
  const result = await roundTrip(s, payload);
  return { ...result, src };
}

const refusedPort = async (host: string): Promise<number> => {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, host, r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
};

t.test('the metrics endpoint negotiates its Content-Type and always sends OpenMetrics ending in # EOF', async (t) => {
  const om = await scrape(metricsUrl(a), 'application/openmetrics-text; version=1.0.0');
  t.equal(om.status, 200);
  t.equal(om.contentType, 'application/openmetrics-text;charset=utf-8;version=1.0.0');
  t.ok(om.body.endsWith('# EOF\n'), 'body ends with # EOF');
  const mixed = await scrape(metricsUrl(a), 'text/plain;q=0.5, Application/OpenMetrics-Text;q=1');
  t.equal(mixed.contentType, 'application/openmetrics-text;charset=utf-8;version=1.0.0', 'any Accept entry, case-insensitive');
  const plain = await scrape(metricsUrl(a), 'text/plain');
  t.equal(plain.contentType, 'text/plain; charset=utf-8');
  t.ok(plain.body.endsWith('# EOF\n'), 'the body is OpenMetrics whatever the Content-Type');
  const none = await scrape(metricsUrl(a));
  t.equal(none.contentType, 'text/plain; charset=utf-8', 'no Accept header → text/plain');
  const stats = await scrape(metricsUrl(a, '/stats/prometheus'));
  t.equal(stats.status, 200);
  t.same([...stats.types.keys()].sort(), [...none.types.keys()].sort(), '/stats/prometheus serves the same families');
  for (const path of ['/', '/metric', '/metrics/extra', '/stats']) {
    const res = await fetch(metricsUrl(a, path));
    t.equal(res.status, 404, `${path} → 404`);
  }
});

t.test('build, socket and process metrics are emitted with their types and labels', async (t) => {
  const s = await metrics(a);
  t.equal(s.types.get('istio_build'), 'gauge');
  t.same(samplesOf(s, 'istio_build').map((x) => ({ labels: x.labels, value: x.value })), [
    { labels: { component: 'ztunnel', tag: ISTIO_VERSION }, value: 1 },
  ], 'istio_build{component="ztunnel",tag=<ISTIO_META_ISTIO_VERSION>} 1');
  t.equal(s.types.get('process_open_fds'), 'gauge');
  t.equal(s.types.get('process_max_fds'), 'gauge');
  const open = samplesOf(s, 'process_open_fds')[0]?.value ?? 0;
  const max = samplesOf(s, 'process_max_fds')[0]?.value ?? 0;
  t.ok(open > 0 && max >= open, `open fds (${open}) > 0 and ≤ max fds (${max})`);
  for (const name of ['istio_tcp_connections_opened', 'istio_tcp_connections_closed', 'istio_tcp_received_bytes', 'istio_tcp_sent_bytes', 'istio_tcp_connections_failed']) {
    t.equal(s.types.get(name), 'counter', `${name} is a counter (samples ${name}_total)`);
  }
  t.equal(s.types.get('istio_tcp_sockets_open'), 'gauge');
});

t.test('an allowed HBONE connection via a Service VIP: both reporters count it once with the bytes sent', async (t) => {
  const [beforeA, beforeB] = await Promise.all([metrics(a), metrics(b)]);
  const payload = randomBytes(3000);
  const { data, error, src } = await viaTunnel({ host: VIP, port: 80 }, payload);
  t.error(error);
  t.equal(data.length, payload.length, 'echoed back');
  const hbone = `${B}:${echo.port}`;
  const [lineA, lineB] = await Promise.all([
    accessRecord(a, (l) => l['src.addr'] === src),
    accessRecord(b, (l) => l['dst.hbone_addr'] === hbone && l['bytes_recv'] === 3000),
  ]);
  const [afterA, afterB] = await Promise.all([metrics(a), metrics(b)]);
  const src0 = labels();
  expectMoved(t, beforeA, afterA, [
    { name: 'istio_tcp_connections_opened_total', labels: src0, value: 1 },
    { name: 'istio_tcp_connections_closed_total', labels: src0, value: 1 },
    { name: 'istio_tcp_received_bytes_total', labels: src0, value: 3000 },
    { name: 'istio_tcp_sent_bytes_total', labels: src0, value: 3000 },
  ], 'reporter=source (A)');
  const dst0 = labels({ reporter: 'destination' });
  expectMoved(t, beforeB, afterB, [
    { name: 'istio_tcp_connections_opened_total', labels: dst0, value: 1 },
    { name: 'istio_tcp_connections_closed_total', labels: dst0, value: 1 },
    { name: 'istio_tcp_received_bytes_total', labels: dst0, value: 3000 },
    { name: 'istio_tcp_sent_bytes_total', labels: dst0, value: 3000 },
  ], 'reporter=destination (B)');

  t.equal(lineA.level, 'info');
  sameFields(t, lineA, {
    'src.addr': src,
    'src.workload': 'a-pod-7d9c',
    'src.namespace': 'shop',
    'src.identity': SA_A,
    'src.cluster': 'Kubernetes',
    'dst.addr': `${B}:15008`,
    'dst.hbone_addr': hbone,
    'dst.service': 'b.shop.svc.cluster.local',
    'dst.workload': 'b-pod-5f6b',
    'dst.namespace': 'shop',
    'dst.identity': SA_B,
    'dst.cluster': 'Kubernetes',
    direction: 'outbound',
    bytes_sent: 3000,
    bytes_recv: 3000,
    duration: '<N>ms',
  }, 'A outbound record');
  t.equal(lineB.level, 'info');
  t.match(lineB['src.addr'], /^127\.\d+\.\d+\.\d+:\d+$/, 'B sees the HBONE connection\'s source');
  sameFields(t, lineB, {
    'src.addr': lineB['src.addr'],
    // Source known from baggage only (A dials from 127.0.0.1): no pod name, so the canonical name.
    'src.workload': 'a',
    'src.namespace': 'shop',
    'src.identity': SA_A,
    'src.cluster': 'Kubernetes',
    'dst.addr': `${B}:15008`,
    'dst.hbone_addr': hbone,
    'dst.service': 'b.shop.svc.cluster.local',
    'dst.workload': 'b-pod-5f6b',
    'dst.namespace': 'shop',
    'dst.identity': SA_B,
    'dst.cluster': 'Kubernetes',
    direction: 'inbound',
    policy: 'shop/allow-a rule[0]',
    bytes_sent: 3000,
    bytes_recv: 3000,
    duration: '<N>ms',
  }, 'B inbound record');
});

t.test('a long-running transfer shows its bytes before it closes, and closes exactly once', async (t) => {
  const [beforeA, beforeB] = await Promise.all([metrics(a), metrics(b)]);
  const s = await socks5Connect(socks, { host: B, port: echo.port });
  const src = `${s.localAddress}:${s.localPort}`;
  const chunk = randomBytes(64 * 1024);
  let got = 0;
  const echoed = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => (got >= n ? (s.off('data', onData), resolve()) : undefined);
      const onData = (d: Buffer) => ((got += d.length), check());
      s.on('data', onData);
      check();
    });
  s.resume();
  s.write(chunk);
  await echoed(chunk.length);
  const [midA, midB] = await Promise.all([metrics(a), metrics(b)]);
  const noService = labels(NO_SERVICE);
  t.same(moved(delta(beforeA, midA, TRAFFIC)), moved([
    { name: 'istio_tcp_connections_opened_total', labels: noService, value: 1 },
    { name: 'istio_tcp_received_bytes_total', labels: noService, value: 65536 },
    { name: 'istio_tcp_sent_bytes_total', labels: noService, value: 65536 },
  ]), 'A: opened and bytes so far, not closed');
  // Inbound picks the Service by target port (telemetry.md §3): echo.port is b's target port.
  const dstWithService = labels({ reporter: 'destination' });
  t.same(moved(delta(beforeB, midB, TRAFFIC)), moved([
    { name: 'istio_tcp_connections_opened_total', labels: dstWithService, value: 1 },
    { name: 'istio_tcp_received_bytes_total', labels: dstWithService, value: 65536 },
    { name: 'istio_tcp_sent_bytes_total', labels: dstWithService, value: 65536 },
  ]), 'B: opened and bytes so far, not closed');
  t.same(samplesOf(midA, 'istio_tcp_sockets_open').map((x) => [x.labels, x.value]), [[{ reporter: 'source' }, 1]], 'A: one open socket, reporter source');
  t.same(samplesOf(midB, 'istio_tcp_sockets_open').map((x) => [x.labels, x.value]), [[{ reporter: 'destination' }, 1]], 'B: one open socket, reporter destination');

  s.write(chunk);
  await echoed(2 * chunk.length);
  const midA2 = await metrics(a);
  t.equal(delta(midA, midA2, /^istio_tcp_received_bytes_total$/)[0]?.value, 65536, 'the byte counter keeps growing while open');

  const done = roundTrip(s, Buffer.alloc(0));
  await done;
  await Promise.all([accessRecord(a, (l) => l['src.addr'] === src), accessRecord(b, (l) => l['bytes_recv'] === 131072)]);
  const [afterA, afterB] = await Promise.all([metrics(a), metrics(b)]);
  expectMoved(t, beforeA, afterA, [
    { name: 'istio_tcp_connections_opened_total', labels: noService, value: 1 },
    { name: 'istio_tcp_connections_closed_total', labels: noService, value: 1 },
    { name: 'istio_tcp_received_bytes_total', labels: noService, value: 131072 },
    { name: 'istio_tcp_sent_bytes_total', labels: noService, value: 131072 },
  ], 'A after close');
  expectMoved(t, beforeB, afterB, [
    { name: 'istio_tcp_connections_opened_total', labels: dstWithService, value: 1 },
    { name: 'istio_tcp_connections_closed_total', labels: dstWithService, value: 1 },
    { name: 'istio_tcp_received_bytes_total', labels: dstWithService, value: 131072 },
    { name: 'istio_tcp_sent_bytes_total', labels: dstWithService, value: 131072 },
  ], 'B after close');
  t.same(samplesOf(afterA, 'istio_tcp_sockets_open').map((x) => x.value), [0], 'A: no open sockets left');
  t.same(samplesOf(afterB, 'istio_tcp_sockets_open').map((x) => x.value), [0], 'B: no open sockets left');
});

t.test('a connection denied by policy: DENY on the destination side, CONNECT on the source side, no bytes', async (t) => {
  const [beforeA, beforeB] = await Promise.all([metrics(a), metrics(b)]);
  const { data, src } = await viaTunnel({ host: B, port: denied.port }, Buffer.from('let me in'));
  t.equal(data.length, 0, 'nothing came back');
  const hbone = `${B}:${denied.port}`;
  const [lineA, lineB] = await Promise.all([
    accessRecord(a, (l) => l['src.addr'] === src),
    accessRecord(b, (l) => l['dst.hbone_addr'] === hbone),
  ]);
  t.equal(denied.accepted.length, 0, 'the app never saw a connection');
  const [afterA, afterB] = await Promise.all([metrics(a), metrics(b)]);
  const srcOpen = labels(NO_SERVICE);
  const srcFail = labels({ ...NO_SERVICE, response_flags: 'CONNECT' });
  expectMoved(t, beforeA, afterA, [
    { name: 'istio_tcp_connections_opened_total', labels: srcOpen, value: 1 },
    { name: 'istio_tcp_connections_closed_total', labels: srcFail, value: 1 },
    { name: 'istio_tcp_connections_failed_total', labels: srcFail, value: 1 },
  ], 'A (the peer answered 401)');
  const dstOpen = labels({ ...NO_SERVICE, reporter: 'destination' });
  const dstDeny = labels({ ...NO_SERVICE, reporter: 'destination', response_flags: 'DENY' });
  expectMoved(t, beforeB, afterB, [
    { name: 'istio_tcp_connections_opened_total', labels: dstOpen, value: 1 },
    { name: 'istio_tcp_connections_closed_total', labels: dstDeny, value: 1 },
    { name: 'istio_tcp_connections_failed_total', labels: dstDeny, value: 1 },
  ], 'B (policy rejection)');

  t.equal(lineA.level, 'error');
  t.equal(lineA['error'], 'http status: 401 Unauthorized');
  t.equal(lineB.level, 'error');
  sameFields(t, lineB, {
    'src.addr': lineB['src.addr'],
    'src.workload': 'a',
    'src.namespace': 'shop',
    'src.identity': SA_A,
    'src.cluster': 'Kubernetes',
    'dst.addr': `${B}:15008`,
    'dst.hbone_addr': hbone,
    'dst.workload': 'b-pod-5f6b',
    'dst.namespace': 'shop',
    'dst.identity': SA_B,
    'dst.cluster': 'Kubernetes',
    direction: 'inbound',
    bytes_sent: 0,
    bytes_recv: 0,
    duration: '<N>ms',
    error: 'connection closed due to policy rejection: explicitly denied by: shop/deny-port',
  }, 'B denied record');
});

t.test('a passthrough to a host outside the mesh: unknown destination labels and security policy', async (t) => {
  const before = await metrics(a);
  const { data, error, src } = await viaTunnel({ host: ELSEWHERE, port: outside.port }, Buffer.from('plain tcp'));
  t.error(error);
  t.equal(data.toString(), 'plain tcp');
  const line = await accessRecord(a, (l) => l['src.addr'] === src);
  const after = await metrics(a);
  const l = labels({
    source_principal: 'unknown',
    ...NO_SERVICE,
    destination_workload: 'unknown',
    destination_canonical_service: 'unknown',
    destination_canonical_revision: 'unknown',
    destination_workload_namespace: 'unknown',
    destination_principal: 'unknown',
    destination_app: 'unknown',
    destination_version: 'unknown',
    destination_cluster: 'unknown',
    connection_security_policy: 'unknown',
    destination_region: 'unknown',
    destination_zone: 'unknown',
  });
  expectMoved(t, before, after, [
    { name: 'istio_tcp_connections_opened_total', labels: l, value: 1 },
    { name: 'istio_tcp_connections_closed_total', labels: l, value: 1 },
    { name: 'istio_tcp_received_bytes_total', labels: l, value: 9 },
    { name: 'istio_tcp_sent_bytes_total', labels: l, value: 9 },
  ], 'passthrough (reporter source)');
  sameFields(t, line, {
    'src.addr': src,
    'src.workload': 'a-pod-7d9c',
    'src.namespace': 'shop',
    'src.cluster': 'Kubernetes',
    'dst.addr': `${ELSEWHERE}:${outside.port}`,
    direction: 'outbound',
    bytes_sent: 9,
    bytes_recv: 9,
    duration: '<N>ms',
  }, 'passthrough record (no identities: not mTLS)');
});

t.test('a refused upstream: CONNECT on both sides, counted as failed, logged at ERROR with the error', async (t) => {
  const port = await refusedPort(B);
  const [beforeA, beforeB] = await Promise.all([metrics(a), metrics(b)]);
  const { data, src } = await viaTunnel({ host: B, port }, Buffer.from('anyone?'));
  t.equal(data.length, 0);
  const hbone = `${B}:${port}`;
  const [lineA, lineB] = await Promise.all([accessRecord(a, (l) => l['src.addr'] === src), accessRecord(b, (l) => l['dst.hbone_addr'] === hbone)]);
  const [afterA, afterB] = await Promise.all([metrics(a), metrics(b)]);
  const openA = labels(NO_SERVICE);
  const failA = labels({ ...NO_SERVICE, response_flags: 'CONNECT' });
  expectMoved(t, beforeA, afterA, [
    { name: 'istio_tcp_connections_opened_total', labels: openA, value: 1 },
    { name: 'istio_tcp_connections_closed_total', labels: failA, value: 1 },
    { name: 'istio_tcp_connections_failed_total', labels: failA, value: 1 },
  ], 'A');
  const openB = labels({ ...NO_SERVICE, reporter: 'destination' });
  const failB = labels({ ...NO_SERVICE, reporter: 'destination', response_flags: 'CONNECT' });
  expectMoved(t, beforeB, afterB, [
    { name: 'istio_tcp_connections_opened_total', labels: openB, value: 1 },
    { name: 'istio_tcp_connections_closed_total', labels: failB, value: 1 },
    { name: 'istio_tcp_connections_failed_total', labels: failB, value: 1 },
  ], 'B');
  t.equal(lineA.level, 'error');
  sameFields(t, lineA, {
    'src.addr': src,
    'src.workload': 'a-pod-7d9c',
    'src.namespace': 'shop',
    'src.identity': SA_A,
    'src.cluster': 'Kubernetes',
    'dst.addr': `${B}:15008`,
    'dst.hbone_addr': hbone,
    'dst.workload': 'b-pod-5f6b',
    'dst.namespace': 'shop',
    'dst.identity': SA_B,
    'dst.cluster': 'Kubernetes',
    direction: 'outbound',
    bytes_sent: 0,
    bytes_recv: 0,
    duration: '<N>ms',
    error: 'http status: 503 Service Unavailable',
  }, 'A refused record');
  t.equal(lineB.level, 'error');
  t.equal(lineB['policy'], 'shop/allow-a rule[0]', 'B had allowed it before the dial failed');
  t.equal(lineB['error'], 'connection failed: Connection refused (os error 111)', "Istio's text for a refused app connect");
});

t.test('an HBONE request that fails before its context exists: WARN "connection failed", no metrics', async (t) => {
  const cert = await ca.issue({ trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'sa-a' });
  const before = await metrics(b);
  const session = http2.connect(`https://${B}:15008`, {
    ca: [...cert.rootsPem],
    cert: cert.chainPem.join(''),
    key: cert.keyPem,
    ALPNProtocols: ['h2'],
    checkServerIdentity: () => undefined, // SPIFFE URI SAN only; the identity is not what is tested here
  });
  t.teardown(() => session.destroy());
  session.on('error', () => {});
  const local = await new Promise<string>((resolve, reject) => {
    session.once('connect', () => {
      const sock = session.socket as Socket;
      resolve(`${sock.localAddress}:${sock.localPort}`);
    });
    session.once('error', reject);
  });
  const status = await new Promise<number>((resolve, reject) => {
    const req = session.request({ ':method': 'CONNECT', ':authority': 'no-port-here' });
    req.on('response', (h) => resolve(Number(h[':status'])));
    req.on('error', reject);
    req.end();
  });
  t.equal(status, 400, 'a bad :authority answers 400');
  const warn = await b.waitForLog((l) => l['component'] === 'access' && l.msg === 'connection failed' && l['src.addr'] === local);
  t.equal(warn.level, 'warn');
  const fields = Object.fromEntries(Object.entries(warn).filter(([k]) => !['level', 'time', 'scope', 'message'].includes(k)));
  t.same(fields, { 'src.addr': local, 'dst.addr': `${B}:15008`, direction: 'inbound', error: 'invalid :authority "no-port-here"' });
  t.same(Object.keys(fields), ['src.addr', 'dst.addr', 'direction', 'error'], 'fields in the spec order');
  t.notOk(b.logs.some((l) => l.msg === 'connection complete' && l['src.addr'] === local), 'no completion record');
  const after = await metrics(b);
  t.same(delta(before, after, TRAFFIC), [], 'no traffic metric moved');
});

t.test('label values stay bounded: no IPs or ports in any traffic label', async (t) => {
  const s = await metrics(a);
  const s2 = await metrics(b);
  const traffic = [...s.samples, ...s2.samples].filter((x) => TRAFFIC.test(x.name));
  t.ok(traffic.length >= 10, 'there is traffic to look at');
  for (const x of traffic) {
    const keys = Object.keys(x.labels);
    t.same(keys, LABEL_ORDER.slice(0, keys.length), `${x.name}: the spec's labels in order`);
    const values = Object.values(x.labels).join(' ');
    t.notMatch(values, /\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b|:\d+\b/, `${x.name}: no address in labels`);
  }
});

t.test("LOG_FORMAT=plain writes the same access record as one line in Istio's text layout", async (t) => {
  const ip = randomLoopback();
  const localXds = `
workloads:
- uid: Kubernetes//Pod/shop/c-pod
  name: c-pod
  namespace: shop
  serviceAccount: sa-c
  trustDomain: cluster.local
  clusterId: Kubernetes
  workloadIps: ["${ip}"]
  protocol: HBONE
  workloadName: c
  canonicalName: c
  services: {}
`;
  const e = env('c-pod', 'sa-c', ip, '');
  delete e['LOCAL_XDS_PATH'];
  const child = spawn(process.execPath, [MAIN_JS, 'run'], {
    env: { ...baseDaemonEnv(), ...e, LOCAL_XDS: localXds, LOG_FORMAT: 'plain' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const c = new Daemon('C', child);
  t.teardown(() => c.stop());
  const ready = await c.waitForLog((l) => l.level === 'raw' && /\tinfo\tztunnel\tztunnel-ts ready\t/.test(String(l.msg)), 20_000);
  const socksAddr = /\bsocks5="([\d.]+):(\d+)"/.exec(String(ready.msg));
  t.ok(socksAddr, 'the ready line carries the SOCKS5 address');
  const s = await socks5Connect({ host: socksAddr![1]!, port: Number(socksAddr![2]) }, { host: ELSEWHERE, port: outside.port });
  const src = `${s.localAddress}:${s.localPort}`;
  const { data } = await roundTrip(s, Buffer.from('text'));
  t.equal(data.toString(), 'text');
  const line = await c.waitForLog((l) => l.level === 'raw' && String(l.msg).includes(`src.addr=${src} `));
  const esc = (x: string) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  t.match(
    String(line.msg),
    new RegExp(
      `^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{6}Z\tinfo\taccess\tconnection complete\t` +
        `src\\.addr=${esc(src)} src\\.workload="c-pod" src\\.namespace="shop" src\\.cluster="Kubernetes" ` +
        `dst\\.addr=${esc(`${ELSEWHERE}:${outside.port}`)} direction="outbound" bytes_sent=4 bytes_recv=4 duration="\\d+ms"$`,
    ),
    "Istio's layout: microsecond UTC time, lower-case level, target, message, tab-separated; then the fields in order: addresses bare, strings quoted, numbers bare",
  );
});
