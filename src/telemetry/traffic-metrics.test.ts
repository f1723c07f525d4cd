// Label values and the locality rule of telemetry.md §3, and when the counters move (§3 "When
// counters move"), on a real prom-client registry.
import t from 'tap';
import { Registry } from 'prom-client';
import { ZtunnelError } from '../core/errors.js';
import { ConnectionRecorder, type ConnectionDescription, type PeerInfo } from './connection-record.js';
import { createLogger } from './logger.js';
import { TRAFFIC_LABELS, createTrafficMetrics, trafficLabels } from './traffic-metrics.js';

const peer = (name: string, extra: Partial<PeerInfo> = {}): PeerInfo => ({
  podName: `${name}-pod`,
  workloadName: `${name}-deploy`,
  namespace: 'shop',
  canonicalName: `${name}-app`,
  canonicalRevision: 'v3',
  clusterId: 'c1',
  region: 'r1',
  zone: 'z1',
  ...extra,
});

const addr = { ip: '10.0.0.1', port: 40000 };
const base: ConnectionDescription = { direction: 'outbound', srcAddr: addr, dstAddr: { ip: '10.0.0.2', port: 15008 }, mtls: true };
const id = (sa: string) => ({ trustDomain: 'td', namespace: 'shop', serviceAccount: sa });

const BASE_ORDER = TRAFFIC_LABELS.slice(0, 23);

t.test('label values come from the source, destination and service; anything missing is "unknown"', async (t) => {
  const l = trafficLabels({
    ...base,
    source: peer('a'),
    srcIdentity: id('a'),
    destination: peer('b', { region: '', zone: 'z9' }),
    dstIdentity: id('b'),
    service: { hostname: 'b.shop.svc', name: 'b', namespace: 'shop' },
  }, '-');
  t.same(l, {
    reporter: 'source',
    source_workload: 'a-deploy', source_canonical_service: 'a-app', source_canonical_revision: 'v3', source_workload_namespace: 'shop',
    source_principal: 'spiffe://td/ns/shop/sa/a', source_app: 'a-app', source_version: 'v3', source_cluster: 'c1',
    destination_service: 'b.shop.svc', destination_service_namespace: 'shop', destination_service_name: 'b',
    destination_workload: 'b-deploy', destination_canonical_service: 'b-app', destination_canonical_revision: 'v3',
    destination_workload_namespace: 'shop', destination_principal: 'spiffe://td/ns/shop/sa/b', destination_app: 'b-app', destination_version: 'v3',
    destination_cluster: 'c1', request_protocol: 'tcp', response_flags: '-', connection_security_policy: 'mutual_tls',
    source_region: 'r1', source_zone: 'z1', destination_region: 'unknown', destination_zone: 'z9',
  });
  t.same(Object.keys(l), [...TRAFFIC_LABELS], 'the spec order');
});

t.test('a peer derived from baggage reports its workload name as app', async (t) => {
  const l = trafficLabels({ ...base, direction: 'inbound', source: peer('a', { podName: '', app: 'a-deploy' }) }, '-');
  t.equal(l.source_app, 'a-deploy');
  t.equal(l.source_canonical_service, 'a-app');
});

t.test('locality labels appear only once a source or destination workload is known', async (t) => {
  const none = trafficLabels({ ...base, direction: 'inbound', mtls: false }, 'CONNECT');
  t.same(Object.keys(none), BASE_ORDER, 'no workload: no locality labels');
  t.equal(none.reporter, 'destination');
  t.equal(none.connection_security_policy, 'unknown');
  t.equal(none.response_flags, 'CONNECT');
  t.ok(Object.entries(none).every(([k, v]) => ['reporter', 'request_protocol', 'response_flags', 'connection_security_policy'].includes(k) || v === 'unknown'), 'everything else unknown');
  const dstOnly = trafficLabels({ ...base, destination: peer('b') }, '-');
  t.same(Object.keys(dstOnly), [...TRAFFIC_LABELS]);
  t.same([dstOnly.source_region, dstOnly.source_zone, dstOnly.destination_region], ['unknown', 'unknown', 'r1']);
});

t.test('source_principal is only ever a real mTLS identity', async (t) => {
  t.equal(trafficLabels({ ...base, source: peer('a', { identity: id('a') }), mtls: false }, '-').source_principal, 'unknown', 'the workload\'s identity alone is not a principal');
});

async function values(registry: Registry, name: string): Promise<{ labels: Record<string, string | number>; value: number }[]> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  return (m?.values ?? []).map((v) => ({ labels: v.labels as Record<string, string | number>, value: v.value }));
}

function setup() {
  const registry = new Registry();
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'info', destination: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) } });
  const recorder = new ConnectionRecorder(logger, createTrafficMetrics(registry, { istioVersion: '1.2.3', processMetrics: false }));
  return { registry, lines, recorder };
}

t.test('opened at start, bytes as copied, closed exactly once; failed only when a flag is set', async (t) => {
  const { registry, lines, recorder } = setup();
  const r = recorder.start({ ...base, source: peer('a') });
  t.equal((await values(registry, 'istio_tcp_connections_opened'))[0]?.value, 1);
  t.same(await values(registry, 'istio_tcp_connections_closed'), []);
  t.same((await values(registry, 'istio_tcp_sockets_open')).map((v) => [v.labels, v.value]), [[{ reporter: 'source' }, 1]]);
  r.addClientToServer(100);
  r.addServerToClient(7);
  r.addClientToServer(1);
  t.equal((await values(registry, 'istio_tcp_received_bytes'))[0]?.value, 101, 'client → server bytes before close');
  t.equal((await values(registry, 'istio_tcp_sent_bytes'))[0]?.value, 7);
  r.finish();
  r.finish(new Error('late'));
  const closed = await values(registry, 'istio_tcp_connections_closed');
  t.same(closed.map((v) => [v.labels['response_flags'], v.value]), [['-', 1]], 'closed once, with the first outcome');
  t.same(await values(registry, 'istio_tcp_connections_failed'), [], 'no failure');
  t.same((await values(registry, 'istio_tcp_sockets_open')).map((v) => v.value), [0]);
  t.equal(lines.filter((l) => l['msg'] === 'connection complete').length, 1, 'one access record');
  t.same(await values(registry, 'istio_build'), [{ labels: { component: 'ztunnel', tag: '1.2.3' }, value: 1 }]);
});

t.test('a failure closes with its response flag and counts as failed; an unknown error is CONNECT', async (t) => {
  const { registry, lines, recorder } = setup();
  recorder.start({ ...base, direction: 'inbound', destination: peer('b') }).finish(new ZtunnelError('POLICY_DENIED', 'no'));
  recorder.start({ ...base, direction: 'inbound', destination: peer('b') }).finish(new Error('boom'));
  const failed = await values(registry, 'istio_tcp_connections_failed');
  t.same(failed.map((v) => [v.labels['reporter'], v.labels['response_flags'], v.value]).sort(), [['destination', 'CONNECT', 1], ['destination', 'DENY', 1]]);
  const errors = lines.filter((l) => l['level'] === 'error' && l['msg'] === 'connection complete');
  t.same(errors.map((l) => l['error']), ['no', 'boom'], 'ERROR records carry the error text');
});

t.test('settled() waits for unfinished records, bounded by its timeout', async (t) => {
  const { recorder } = setup();
  await recorder.settled(10_000); // nothing open: immediate
  const r = recorder.start(base);
  t.equal(recorder.openCount, 1);
  let done = false;
  const p = recorder.settled(10_000).then(() => (done = true));
  await new Promise((res) => setImmediate(res));
  t.notOk(done, 'still waiting while a record is open');
  r.finish();
  await p;
  t.equal(recorder.openCount, 0);
  recorder.start(base);
  await recorder.settled(1); // never finished: the timeout ends the wait
  t.equal(recorder.openCount, 1);
});
