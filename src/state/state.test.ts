import t from 'tap';
import { State, type StateChange } from './state.js';
import { policy, ports, service, workload } from './test-builders.js';

const podA = workload({ uid: 'c1//Pod/default/a', workloadIps: ['10.0.0.1'], services: new Map([['default/svc.default.svc.cluster.local', ports({ 80: 8080 })]]) });
const svc = service({ hostname: 'svc.default.svc.cluster.local', vips: [{ network: '', ip: '10.96.0.1' }], ports: ports({ 80: 8080 }) });

t.test('a workload is found by uid and by network/IP, but not on another network', async (t) => {
  const s = new State();
  s.apply({ workloads: { upsert: [podA], remove: [] } });
  t.equal(s.findWorkloadByUid(podA.uid), podA);
  t.equal(s.findWorkloadByAddr('', '10.0.0.1'), podA);
  t.equal(s.findWorkloadByAddr('other', '10.0.0.1'), undefined);
  t.equal(s.findWorkloadByAddr('', '10.0.0.2'), undefined);
});

t.test('a HostNetwork workload is never found by IP, only by uid', async (t) => {
  const s = new State();
  const host = workload({ uid: 'c1//Pod/kube-system/h', workloadIps: ['192.168.1.5'], networkMode: 'HostNetwork' });
  s.apply({ workloads: { upsert: [host], remove: [] } });
  t.equal(s.findWorkloadByAddr('', '192.168.1.5'), undefined);
  t.equal(s.findWorkloadByUid(host.uid), host);
  s.apply({ workloads: { upsert: [], remove: [host.uid] } });
  t.equal(s.size().workloads, 0);
});

t.test('several workloads on one IP: a //Pod/ uid wins, then HBONE', async (t) => {
  const s = new State();
  const entryTcp = workload({ uid: 'c1/networking.istio.io/WorkloadEntry/default/e1', workloadIps: ['10.0.0.9'], protocol: 'TCP' });
  const entryHbone = workload({ uid: 'c1/networking.istio.io/WorkloadEntry/default/e2', workloadIps: ['10.0.0.9'] });
  s.apply({ workloads: { upsert: [entryTcp, entryHbone], remove: [] } });
  t.equal(s.findWorkloadByAddr('', '10.0.0.9')?.uid, entryHbone.uid, 'HBONE preferred over TCP');
  const pod = workload({ uid: 'c1//Pod/default/p', workloadIps: ['10.0.0.9'], protocol: 'TCP' });
  s.apply({ workloads: { upsert: [pod], remove: [] } });
  t.equal(s.findWorkloadByAddr('', '10.0.0.9')?.uid, pod.uid, 'pod preferred over HBONE entry');
});

t.test('workloads sharing an IP and a name are found in the order stored, and each removal leaves the rest', async (t) => {
  const s = new State();
  const shared = { workloadIps: ['10.0.0.5'], protocol: 'TCP' as const, namespace: 'shop', name: 'dup' };
  const e1 = workload({ uid: 'c1/networking.istio.io/WorkloadEntry/shop/e1', node: 'n1', ...shared });
  const e2 = workload({ uid: 'c1/networking.istio.io/WorkloadEntry/shop/e2', node: 'n2', ...shared });
  const e3 = workload({ uid: 'c1/networking.istio.io/WorkloadEntry/shop/e3', node: 'n3', ...shared });
  s.apply({ workloads: { upsert: [e1, e2, e3], remove: [] } });
  t.equal(s.findWorkloadByAddr('', '10.0.0.5'), e1, 'equal preference: the first stored');
  t.equal(s.findLocalWorkload('shop', 'dup', 'default', ''), e1);
  t.equal(s.findLocalWorkload('shop', 'dup', 'default', 'n3'), e3);
  s.apply({ workloads: { upsert: [e1], remove: [] } });
  t.equal(s.findWorkloadByAddr('', '10.0.0.5'), e2, 'an upserted workload is stored again, after the others');
  s.apply({ workloads: { upsert: [], remove: [e2.uid, e3.uid] } });
  t.equal(s.findWorkloadByAddr('', '10.0.0.5'), e1);
  t.equal(s.findLocalWorkload('shop', 'dup', 'default', 'n2'), undefined, 'a removed workload is gone');
  s.apply({ workloads: { upsert: [], remove: [e1.uid] } });
  t.equal(s.findWorkloadByAddr('', '10.0.0.5'), undefined);
  t.equal(s.findLocalWorkload('shop', 'dup', 'default', ''), undefined);
  s.apply({ workloads: { upsert: [e3], remove: [] } });
  t.equal(s.findWorkloadByAddr('', '10.0.0.5'), e3, 'found again once it returns');
  t.equal(s.findLocalWorkload('shop', 'dup', 'default', ''), e3);
});

t.test('a workload upsert replaces the old one: its old IP no longer resolves', async (t) => {
  const s = new State();
  s.apply({ workloads: { upsert: [podA], remove: [] } });
  const moved = workload({ ...podA, workloadIps: ['10.0.0.7'] });
  s.apply({ workloads: { upsert: [moved], remove: [] } });
  t.equal(s.findWorkloadByAddr('', '10.0.0.1'), undefined);
  t.equal(s.findWorkloadByAddr('', '10.0.0.7'), moved);
  t.equal(s.size().workloads, 1);
});

t.test('endpoints of a Service that has not arrived are staged, then attached when it arrives', async (t) => {
  const s = new State();
  s.apply({ workloads: { upsert: [podA], remove: [] } });
  t.same(s.endpointsOf('default/svc.default.svc.cluster.local'), [], 'no Service yet, no endpoints');
  t.same([...s.stagedServices().keys()], ['default/svc.default.svc.cluster.local']);
  t.equal(s.size().stagedServices, 1);

  s.apply({ services: { upsert: [svc], remove: [] } });
  const eps = s.endpointsOf('default/svc.default.svc.cluster.local');
  t.equal(eps.length, 1);
  t.equal(eps[0]!.workloadUid, podA.uid);
  t.equal(eps[0]!.ports.get(80), 8080);
  t.equal(s.stagedServices().size, 0);

  s.apply({ services: { upsert: [], remove: ['default/svc.default.svc.cluster.local'] } });
  t.equal(s.findServiceByVip('', '10.96.0.1'), undefined, 'removed Service is gone from the VIP index');
  t.equal(s.stagedServices().size, 1, 'its endpoints are staged again');

  s.apply({ workloads: { upsert: [], remove: [podA.uid] } });
  t.equal(s.stagedServices().size, 0, 'removing the workload removes the endpoint');
});

t.test('a Service upsert keeps its endpoints', async (t) => {
  const s = new State();
  s.apply({ workloads: { upsert: [podA], remove: [] }, services: { upsert: [svc], remove: [] } });
  s.apply({ services: { upsert: [service({ ...svc, subjectAltNames: ['spiffe://cluster.local/ns/default/sa/x'] })], remove: [] } });
  t.equal(s.endpointsOf('default/svc.default.svc.cluster.local').length, 1);
});

t.test('unhealthy workloads are left out of endpoints unless the health policy is AllowAll', async (t) => {
  const s = new State();
  const sick = workload({ uid: 'c1//Pod/default/sick', workloadIps: ['10.0.0.2'], status: 'Unhealthy', services: podA.services });
  s.apply({ workloads: { upsert: [podA, sick], remove: [] }, services: { upsert: [svc], remove: [] } });
  t.same(s.endpointsOf('default/svc.default.svc.cluster.local').map((e) => e.workloadUid), [podA.uid]);
  const allowAll = service({ ...svc, loadBalancer: { routingPreferences: [], mode: 'Standard', healthPolicy: 'AllowAll' } });
  s.apply({ services: { upsert: [allowAll], remove: [] } });
  t.same(s.endpointsOf('default/svc.default.svc.cluster.local').map((e) => e.workloadUid).sort(), [podA.uid, sick.uid].sort());
  s.apply({ workloads: { upsert: [workload({ ...sick, status: 'Healthy' })], remove: [] }, services: { upsert: [svc], remove: [] } });
  t.equal(s.endpointsOf('default/svc.default.svc.cluster.local').length, 2, 'a recovered workload is an endpoint again');
});

t.test('one change event per batch, naming what changed; none for a batch that changes nothing', async (t) => {
  const s = new State();
  const events: StateChange[] = [];
  const off = s.onChange((c) => events.push(c));
  s.apply({
    workloads: { upsert: [podA], remove: [] },
    services: { upsert: [svc], remove: [] },
    policies: { upsert: [policy({ name: 'p1' })], remove: [] },
  });
  t.same(events, [{ workloads: true, services: true, policies: true }]);
  s.apply({ policies: { upsert: [], remove: ['default/p1'] } });
  t.same(events[1], { workloads: false, services: false, policies: true });
  s.apply({ workloads: { upsert: [], remove: ['no-such-uid'] } });
  s.apply({});
  t.equal(events.length, 2, 'removing unknown keys and empty batches emit nothing');
  off();
  s.apply({ workloads: { upsert: [], remove: [podA.uid] } });
  t.equal(events.length, 2, 'an unsubscribed listener hears nothing');
});

t.test('a bad resource is rejected alone; the rest of the batch applies and old state stays', async (t) => {
  const s = new State();
  s.apply({ workloads: { upsert: [podA], remove: [] } });
  const badIp = workload({ uid: 'c1//Pod/default/bad', workloadIps: ['10.0.0.01'] });
  const badUid = workload({ uid: '' });
  const good = workload({ uid: 'c1//Pod/default/good', workloadIps: ['10.0.0.3'] });
  const badSvc = service({ hostname: '' });
  const result = s.apply({ workloads: { upsert: [badIp, good, badUid], remove: [] }, services: { upsert: [badSvc], remove: [] } });
  t.same(result.rejected.map((r) => r.kind), ['workload', 'workload', 'service']);
  t.match(result.rejected[0]!.reason, /canonical/);
  t.same(result.change, { workloads: true, services: false, policies: false });
  t.equal(s.findWorkloadByUid(good.uid), good);
  t.equal(s.findWorkloadByUid(badIp.uid), undefined);
  t.equal(s.findWorkloadByUid(podA.uid), podA);
  const malformed = s.apply({ workloads: { upsert: [{ uid: 'x' } as never], remove: [] } });
  t.equal(malformed.rejected.length, 1, 'a structurally broken value is rejected, not thrown');
});

t.test('a throwing change listener does not stop other listeners or the batch', async (t) => {
  const warnings: string[] = [];
  const s = new State({ warn: (m) => warnings.push(m) });
  let heard = 0;
  s.onChange(() => {
    throw new Error('boom');
  });
  s.onChange(() => heard++);
  s.apply({ workloads: { upsert: [podA], remove: [] } });
  t.equal(heard, 1);
  t.match(warnings[0], /boom/);
  t.equal(s.findWorkloadByUid(podA.uid), podA);
});

t.test('a VIP shared by Services picks the client namespace, else canonical, else the first', async (t) => {
  const vip = [{ network: '', ip: '10.96.0.50' }];
  const first = service({ hostname: 'a.example.com', namespace: 'ns1', vips: vip, canonical: false });
  const canon = service({ hostname: 'a.example.com', namespace: 'ns2', vips: vip, canonical: true });
  const mine = service({ hostname: 'a.example.com', namespace: 'ns3', vips: vip, canonical: false });
  const s = new State();
  s.apply({ services: { upsert: [first, canon, mine], remove: [] } });
  t.equal(s.findServiceByVip('', '10.96.0.50', 'ns3'), mine, 'client namespace first');
  t.equal(s.findServiceByVip('', '10.96.0.50', 'other'), canon, 'then canonical');
  s.apply({ services: { upsert: [], remove: ['ns2/a.example.com'] } });
  t.equal(s.findServiceByVip('', '10.96.0.50', 'other'), first, 'then the first');
  t.equal(s.findServicesByHostname('a.example.com').length, 2);
  t.same(s.findServicesByHostname('nope.example.com'), []);
});

t.test('a Namespace-visibility Service is hidden from other namespaces', async (t) => {
  const hidden = service({ hostname: 'private.team.svc.cluster.local', namespace: 'team', vips: [{ network: '', ip: '10.96.0.60' }], visibility: 'Namespace' });
  const s = new State();
  s.apply({ services: { upsert: [hidden], remove: [] } });
  t.equal(s.findServiceByVip('', '10.96.0.60', 'team'), hidden);
  t.equal(s.findServiceByVip('', '10.96.0.60', 'other'), undefined);
  t.equal(s.findServiceByVip('', '10.96.0.60'), undefined, 'unknown client namespace');
  t.equal(s.findServiceByKey('team/private.team.svc.cluster.local'), hidden, 'still found by key');
});

t.test('a Service whose VIP changes moves in the VIP index', async (t) => {
  const s = new State();
  s.apply({ services: { upsert: [svc], remove: [] } });
  const moved = service({ ...svc, vips: [{ network: '', ip: '10.96.0.2' }] });
  s.apply({ services: { upsert: [moved], remove: [] } });
  t.equal(s.findServiceByVip('', '10.96.0.1'), undefined);
  t.equal(s.findServiceByVip('', '10.96.0.2'), moved);
  t.equal(s.size().services, 1);
});

t.test('policiesFor: namespace, global and selector policies, each with its reason; unknown keys skipped', async (t) => {
  const warnings: string[] = [];
  const s = new State({ warn: (m) => warnings.push(m) });
  const nsPol = policy({ name: 'ns-wide', namespace: 'default', scope: 'Namespace' });
  const otherNs = policy({ name: 'ns-wide', namespace: 'other', scope: 'Namespace' });
  const global = policy({ name: 'mesh', namespace: 'istio-system', scope: 'Global', action: 'Deny' });
  const sel = policy({ name: 'only-a', namespace: 'default', scope: 'WorkloadSelector' });
  const selOther = policy({ name: 'only-b', namespace: 'default', scope: 'WorkloadSelector' });
  s.apply({ policies: { upsert: [nsPol, otherNs, global, sel, selOther], remove: [] } });
  const w = workload({ uid: 'c1//Pod/default/a', authorizationPolicies: ['default/only-a', 'default/missing', 'default/ns-wide'] });
  const got = s.policiesFor(w).map((p) => [p.key, p.reason]);
  t.same(got, [
    ['default/ns-wide', 'namespace'],
    ['istio-system/mesh', 'global'],
    ['default/only-a', 'selector'],
  ]);
  t.same(warnings, ['skipping unknown policy default/missing']);
  t.same(s.resolvePolicies(w).skippedKeys, ['default/missing']);

  // Scope change on upsert moves the policy between indexes.
  s.apply({ policies: { upsert: [policy({ ...global, scope: 'Namespace' })], remove: [] } });
  t.notOk(s.policiesFor(w).some((p) => p.key === 'istio-system/mesh'), 'no longer global');
  s.apply({ policies: { upsert: [], remove: ['default/ns-wide'] } });
  t.same(s.policiesFor(w).map((p) => p.key), ['default/only-a']);
  t.equal(s.size().policies, 4);
});

t.test('findLocalWorkload matches namespace, name and service account; node "" matches any node', async (t) => {
  const s = new State();
  const a = workload({ uid: 'c1//Pod/shop/cart-1', name: 'cart-1', namespace: 'shop', serviceAccount: '', node: 'n1' });
  s.apply({ workloads: { upsert: [a], remove: [] } });
  t.equal(s.findLocalWorkload('shop', 'cart-1', 'default', 'n1'), a, 'empty service account means default');
  t.equal(s.findLocalWorkload('shop', 'cart-1', 'default', ''), a);
  t.equal(s.findLocalWorkload('shop', 'cart-1', 'default', 'n2'), undefined, 'other node');
  t.equal(s.findLocalWorkload('shop', 'cart-1', 'cart', 'n1'), undefined, 'other service account');
  t.equal(s.findLocalWorkload('other', 'cart-1', 'default', ''), undefined, 'other namespace');
});
