import t from 'tap';
import { pickEndpoint, pickWorkloadIp } from './load-balance.js';
import type { LoadBalancer, Service, Workload } from './model.js';
import { State } from './state.js';
import { ports, seededRandom, service, workload } from './test-builders.js';

const KEY = 'default/web.default.svc.cluster.local';

function web(over: Partial<Service> = {}): Service {
  return service({ hostname: 'web.default.svc.cluster.local', vips: [{ network: '', ip: '10.96.0.10' }], ports: ports({ 80: 8080 }), ...over });
}

function ep(name: string, ip: string, over: Partial<Workload> = {}): Workload {
  return workload({ uid: `c1//Pod/default/${name}`, name, workloadIps: [ip], services: new Map([[KEY, ports({})]]), ...over });
}

function stateWith(svc: Service, ...ws: Workload[]): State {
  const s = new State();
  s.apply({ services: { upsert: [svc], remove: [] }, workloads: { upsert: ws, remove: [] } });
  return s;
}

function countPicks(s: State, svc: Service, port: number, source: Workload | undefined, n: number, seed = 7): Map<string, number> {
  const random = seededRandom(seed);
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const p = pickEndpoint(s, svc, port, source, { random });
    const name = p ? p.workload.name : 'none';
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

const lb = (mode: LoadBalancer['mode'], routingPreferences: LoadBalancer['routingPreferences']): LoadBalancer => ({ mode, routingPreferences, healthPolicy: 'OnlyHealthy' });

t.test('picks are weighted by capacity: capacity 3 gets about three times the picks of capacity 1', async (t) => {
  const svc = web();
  const s = stateWith(svc, ep('small', '10.0.0.1', { capacity: 1 }), ep('big', '10.0.0.2', { capacity: 3 }));
  const counts = countPicks(s, svc, 80, undefined, 4000);
  const big = (counts.get('big') ?? 0) / 4000;
  t.ok(big > 0.7 && big < 0.8, `big share ${big} is about 0.75`);
  t.equal((counts.get('small') ?? 0) + (counts.get('big') ?? 0), 4000, 'every pick found an endpoint');
});

t.test('capacity 0 is never picked, and all-zero capacity finds no endpoint', async (t) => {
  const svc = web();
  const s = stateWith(svc, ep('zero', '10.0.0.1', { capacity: 0 }), ep('one', '10.0.0.2', { capacity: 1 }));
  t.same([...countPicks(s, svc, 80, undefined, 1000).keys()], ['one']);
  const s2 = stateWith(svc, ep('zero', '10.0.0.1', { capacity: 0 }));
  t.equal(pickEndpoint(s2, svc, 80, undefined, { random: Math.random }), undefined);
});

t.test('an unhealthy endpoint is skipped unless the health policy is AllowAll', async (t) => {
  const svc = web();
  const sick = ep('sick', '10.0.0.1', { status: 'Unhealthy' });
  t.same([...countPicks(stateWith(svc, sick, ep('ok', '10.0.0.2')), svc, 80, undefined, 1000).keys()], ['ok']);
  t.equal(pickEndpoint(stateWith(svc, sick), svc, 80, undefined, { random: Math.random }), undefined, 'only unhealthy → none');
  const allowAll = web({ loadBalancer: { mode: 'Standard', routingPreferences: [], healthPolicy: 'AllowAll' } });
  t.equal(pickEndpoint(stateWith(allowAll, sick), allowAll, 80, undefined, { random: Math.random })?.workload.name, 'sick');
});

t.test('a service port the Service does not have finds no endpoint (standard resolution)', async (t) => {
  const svc = web();
  const s = stateWith(svc, ep('a', '10.0.0.1'));
  t.equal(pickEndpoint(s, svc, 81, undefined, { random: Math.random }), undefined);
  t.equal(pickEndpoint(s, svc, 80, undefined, { random: Math.random })?.targetPort, 8080);
});

t.test('waypoint resolution accepts a port missing from the Service for an application-tunnel endpoint', async (t) => {
  const wp = service({ hostname: 'waypoint.default.svc.cluster.local', ports: ports({ 15021: 15021 }) });
  const key = 'default/waypoint.default.svc.cluster.local';
  const tunnel = workload({ uid: 'c1//Pod/default/wp', name: 'wp', workloadIps: ['10.0.0.5'], applicationTunnel: { protocol: 'NONE' }, services: new Map([[key, ports({})]]) });
  const plain = workload({ uid: 'c1//Pod/default/wp2', name: 'wp2', workloadIps: ['10.0.0.6'], services: new Map([[key, ports({})]]) });
  const s = stateWith(wp, tunnel, plain);
  t.equal(pickEndpoint(s, wp, 15008, undefined, { random: Math.random }), undefined, 'standard: port not on the Service');
  const counts = new Set<string>();
  const random = seededRandom(3);
  for (let i = 0; i < 200; i++) {
    const p = pickEndpoint(s, wp, 15008, undefined, { random, resolution: 'waypoint' });
    t.equal(p?.targetPort, 15008, 'application tunnel keeps the service port');
    counts.add(p?.workload.name ?? 'none');
  }
  t.same([...counts], ['wp'], 'the endpoint without an application tunnel is filtered out');
});

t.test('named target port (0): only endpoints mapping the service port, each with its own target port', async (t) => {
  const svc = web({ ports: ports({ 80: 0 }) });
  const named = ep('named', '10.0.0.1', { services: new Map([[KEY, ports({ 80: 9090 })]]) });
  const unmapped = ep('unmapped', '10.0.0.2');
  const s = stateWith(svc, named, unmapped);
  const random = seededRandom(11);
  for (let i = 0; i < 200; i++) {
    const p = pickEndpoint(s, svc, 80, undefined, { random });
    t.equal(p?.workload.name, 'named');
    t.equal(p?.targetPort, 9090);
  }
});

t.test('target port: endpoint mapping beats the Service target port', async (t) => {
  const svc = web();
  const s = stateWith(svc, ep('override', '10.0.0.1', { services: new Map([[KEY, ports({ 80: 7070 })]]) }));
  t.equal(pickEndpoint(s, svc, 80, undefined, { random: Math.random })?.targetPort, 7070);
});

const src = workload({ uid: 'c1//Pod/default/client', workloadIps: ['10.0.1.1'], node: 'n1', network: 'net1', locality: { region: 'r1', zone: 'z1', subzone: '' } });

t.test('STRICT keeps only endpoints that match every routing preference', async (t) => {
  const svc = web({ loadBalancer: lb('Strict', ['Region', 'Zone']) });
  const same = ep('same', '10.0.0.1', { network: 'net1', locality: { region: 'r1', zone: 'z1', subzone: '' } });
  const otherZone = ep('otherZone', '10.0.0.2', { network: 'net1', locality: { region: 'r1', zone: 'z2', subzone: '' } });
  const s = stateWith(svc, same, otherZone);
  t.same([...countPicks(s, svc, 80, src, 1000).keys()], ['same']);
  t.equal(pickEndpoint(stateWith(svc, otherZone), svc, 80, src, { random: Math.random }), undefined, 'no full match → none');
});

t.test('FAILOVER prefers the best-ranked endpoints and falls back when none match fully', async (t) => {
  const svc = web({ loadBalancer: lb('Failover', ['Region', 'Zone']) });
  const same = ep('same', '10.0.0.1', { network: 'net1', locality: { region: 'r1', zone: 'z1', subzone: '' } });
  const sameRegion = ep('sameRegion', '10.0.0.2', { network: 'net1', locality: { region: 'r1', zone: 'z2', subzone: '' } });
  const far = ep('far', '10.0.0.3', { network: 'net1', locality: { region: 'r2', zone: 'z1', subzone: '' } });
  t.same([...countPicks(stateWith(svc, same, sameRegion, far), svc, 80, src, 1000).keys()], ['same']);
  t.same([...countPicks(stateWith(svc, sameRegion, far), svc, 80, src, 1000).keys()], ['sameRegion'], 'region match outranks a zone-only match');
  t.same([...countPicks(stateWith(svc, far), svc, 80, src, 1000).keys()], ['far'], 'nothing matches: still served');
});

t.test('a leading NETWORK preference makes same-network endpoints outrank all others', async (t) => {
  const svc = web({ loadBalancer: lb('Failover', ['Network', 'Region', 'Zone']) });
  const sameNetFar = ep('sameNetFar', '10.0.0.1', { network: 'net1', locality: { region: 'r9', zone: 'z9', subzone: '' } });
  const otherNetNear = ep('otherNetNear', '10.0.0.2', { network: 'net2', locality: { region: 'r1', zone: 'z1', subzone: '' } });
  const otherNetFar = ep('otherNetFar', '10.0.0.3', { network: 'net2', locality: { region: 'r9', zone: 'z9', subzone: '' } });
  t.same([...countPicks(stateWith(svc, sameNetFar, otherNetNear), svc, 80, src, 1000).keys()], ['sameNetFar']);
  t.same([...countPicks(stateWith(svc, otherNetNear, otherNetFar), svc, 80, src, 1000).keys()], ['otherNetNear'], 'a network mismatch still ranks the later scopes');
});

t.test('NODE scope uses the source node, or the given node name without a source', async (t) => {
  const svc = web({ loadBalancer: lb('Strict', ['Node']) });
  const s = stateWith(svc, ep('local', '10.0.0.1', { node: 'n1' }), ep('remote', '10.0.0.2', { node: 'n2' }));
  t.same([...countPicks(s, svc, 80, src, 500).keys()], ['local']);
  const random = seededRandom(5);
  for (let i = 0; i < 100; i++) t.equal(pickEndpoint(s, svc, 80, undefined, { random, nodeName: 'n2' })?.workload.name, 'remote');
});

t.test('an endpoint without any address is skipped unless it is reachable through another network gateway', async (t) => {
  const svc = web();
  const gw = { destination: { kind: 'address' as const, address: { network: 'net2', ip: '172.16.0.1' } }, hboneMtlsPort: 15009 };
  const noAddr = ep('noAddr', '10.0.0.1', { workloadIps: [], network: 'net1' });
  const remote = ep('remote', '10.0.0.1', { workloadIps: [], network: 'net2', networkGateway: gw });
  t.equal(pickEndpoint(stateWith(svc, noAddr), svc, 80, src, { random: Math.random }), undefined);
  t.equal(pickEndpoint(stateWith(svc, remote), svc, 80, src, { random: Math.random })?.workload.name, 'remote');
});

t.test('the workload IP: the dialled one if it is the workload\'s, else the original family, within the Service restriction', async (t) => {
  const dual = workload({ uid: 'c1//Pod/default/dual', workloadIps: ['10.0.0.1', 'fd00::1'] });
  t.equal(pickWorkloadIp(dual, 'fd00::1'), 'fd00::1');
  t.equal(pickWorkloadIp(dual, 'fd00:96::10'), 'fd00::1', 'IPv6 VIP → IPv6 pod IP');
  t.equal(pickWorkloadIp(dual, '10.96.0.10'), '10.0.0.1');
  t.equal(pickWorkloadIp(dual, 'fd00:96::10', 'IPv4'), '10.0.0.1', 'restriction beats preference');
  const v4 = workload({ uid: 'c1//Pod/default/v4', workloadIps: ['10.0.0.2'] });
  t.equal(pickWorkloadIp(v4, 'fd00:96::10'), '10.0.0.2', 'other family when it is all there is');
  t.equal(pickWorkloadIp(v4, '10.96.0.10', 'IPv6'), undefined);
});
