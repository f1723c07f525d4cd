import t from 'tap';
import { formatIdentity } from '../core/spiffe.js';
import type { GatewayAddress, Workload } from '../state/model.js';
import { State } from '../state/state.js';
import { ports, seededRandom, service, workload } from '../state/test-builders.js';
import { buildRoute, type Route, type RouteInput, type RouteOptions } from './route.js';

const CART = 'shop/cart.shop.svc.cluster.local';
const svcOf = (key: string, map: Record<number, number> = {}) => new Map([[key, ports(map)]]);

const wpAddr: GatewayAddress = { destination: { kind: 'address', address: { network: '', ip: '10.244.9.9' } }, hboneMtlsPort: 15008 };
const wpHost: GatewayAddress = { destination: { kind: 'hostname', namespace: 'shop', hostname: 'waypoint.shop.svc.cluster.local' }, hboneMtlsPort: 15008 };

const frontend = workload({ uid: 'c1//Pod/shop/frontend', namespace: 'shop', serviceAccount: 'frontend', workloadIps: ['10.244.1.12'] });
const teamClient = workload({ uid: 'c1//Pod/team/client', namespace: 'team', serviceAccount: 'client', workloadIps: ['10.244.1.13'] });
const waypoint = workload({
  uid: 'c1//Pod/shop/waypoint', namespace: 'shop', serviceAccount: 'waypoint', workloadIps: ['10.244.9.9'],
  services: svcOf('shop/waypoint.shop.svc.cluster.local', { 15008: 15008 }),
});

const workloads: Workload[] = [
  frontend, teamClient, waypoint,
  workload({ uid: 'c1//Pod/shop/cart-1', namespace: 'shop', serviceAccount: 'cart', workloadIps: ['10.244.2.45'], services: svcOf(CART) }),
  workload({ uid: 'c1//Pod/shop/cart-sick', namespace: 'shop', serviceAccount: 'cart', workloadIps: ['10.244.2.46'], status: 'Unhealthy', services: svcOf(CART) }),
  workload({ uid: 'c1//Pod/shop/legacy', namespace: 'shop', protocol: 'TCP', workloadIps: ['10.244.3.3'] }),
  workload({ uid: 'c1//Pod/shop/sick-only', namespace: 'shop', workloadIps: ['10.244.3.4'], status: 'Unhealthy', services: svcOf('shop/empty.shop.svc.cluster.local') }),
  workload({ uid: 'c1//Pod/shop/named', namespace: 'shop', serviceAccount: 'named', workloadIps: ['10.244.3.5'], services: svcOf('shop/named.shop.svc.cluster.local', { 80: 9090 }) }),
  workload({ uid: 'c1//Pod/shop/reviews', namespace: 'shop', serviceAccount: 'reviews', workloadIps: ['10.244.4.4'], waypoint: wpHost }),
  workload({ uid: 'c1//Pod/shop/ratings', namespace: 'shop', serviceAccount: 'ratings', workloadIps: ['10.244.4.5'], waypoint: wpAddr }),
  workload({ uid: 'c1//Pod/shop/lost', namespace: 'shop', workloadIps: ['10.244.4.6'], waypoint: { destination: { kind: 'hostname', namespace: 'shop', hostname: 'gone.shop.svc.cluster.local' }, hboneMtlsPort: 15008 } }),
  workload({ uid: 'c1//Pod/shop/v6', namespace: 'shop', serviceAccount: 'v6', workloadIps: ['fd00:10:244::2d'] }),
  workload({ uid: 'c1//Pod/kube-system/hostnet', namespace: 'kube-system', workloadIps: ['192.168.0.5'], networkMode: 'HostNetwork' }),
  workload({ uid: 'c1//Pod/team/private', namespace: 'team', serviceAccount: 'private', workloadIps: ['10.244.5.5'], services: svcOf('team/private.team.svc.cluster.local') }),
  workload({ uid: 'c1//Pod/shop/remote', namespace: 'shop', network: 'west', workloadIps: ['10.250.0.1'], services: svcOf('shop/remote.shop.svc.cluster.local') }),
  workload({ uid: 'c1/networking.istio.io/WorkloadEntry/shop/dns', namespace: 'shop', hostname: 'db.example.com', services: svcOf('shop/dns.shop.svc.cluster.local') }),
  workload({ uid: 'c1//Pod/shop/light', namespace: 'shop', workloadIps: ['10.244.6.1'], capacity: 1, services: svcOf('shop/weighted.shop.svc.cluster.local') }),
  workload({ uid: 'c1//Pod/shop/heavy', namespace: 'shop', workloadIps: ['10.244.6.2'], capacity: 9, services: svcOf('shop/weighted.shop.svc.cluster.local') }),
];

const vip = (ip: string) => [{ network: '', ip }];
const services = [
  service({ hostname: 'cart.shop.svc.cluster.local', namespace: 'shop', vips: vip('10.96.31.7'), ports: ports({ 80: 8080 }), subjectAltNames: ['spiffe://cluster.local/ns/shop/sa/cart-canary', 'not-a-spiffe-id'] }),
  service({ hostname: 'empty.shop.svc.cluster.local', namespace: 'shop', vips: vip('10.96.0.99'), ports: ports({ 80: 8080 }) }),
  service({ hostname: 'pass.shop.svc.cluster.local', namespace: 'shop', vips: vip('10.96.0.77'), ports: ports({ 80: 8080 }), loadBalancer: { mode: 'Passthrough', routingPreferences: [], healthPolicy: 'OnlyHealthy' } }),
  service({ hostname: 'named.shop.svc.cluster.local', namespace: 'shop', vips: vip('10.96.0.88'), ports: ports({ 80: 0 }) }),
  service({ hostname: 'waypoint.shop.svc.cluster.local', namespace: 'shop', vips: vip('10.96.9.9'), ports: ports({ 15008: 15008 }), subjectAltNames: ['spiffe://cluster.local/ns/shop/sa/waypoint-alt'] }),
  service({ hostname: 'mesh.shop.svc.cluster.local', namespace: 'shop', vips: vip('10.96.0.55'), ports: ports({ 80: 8080 }), waypoint: wpAddr }),
  service({ hostname: 'private.team.svc.cluster.local', namespace: 'team', vips: vip('10.96.0.66'), ports: ports({ 80: 8080 }), visibility: 'Namespace' }),
  service({ hostname: 'remote.shop.svc.cluster.local', namespace: 'shop', vips: vip('10.96.0.44'), ports: ports({ 80: 8080 }) }),
  service({ hostname: 'dns.shop.svc.cluster.local', namespace: 'shop', vips: vip('10.96.0.33'), ports: ports({ 5432: 5432 }) }),
  service({ hostname: 'weighted.shop.svc.cluster.local', namespace: 'shop', vips: vip('10.96.0.22'), ports: ports({ 80: 8080 }) }),
];

const state = new State();
const applied = state.apply({ workloads: { upsert: workloads, remove: [] }, services: { upsert: services, remove: [] } });
t.same(applied.rejected, [], 'fixture state is valid');

const baseOpts: RouteOptions = { random: seededRandom(42), transparentNetworkPolicies: false, hbonePort: 15008, illegalPorts: new Set([15001, 15006, 15008]) };

interface Row {
  readonly name: string;
  readonly dst: string;
  readonly port: number;
  readonly source?: Workload | null;
  readonly input?: Partial<RouteInput>;
  readonly opts?: Partial<RouteOptions>;
  readonly want: Record<string, unknown>;
  /** Expected identities as SPIFFE URIs, in order. */
  readonly identities?: string[];
}

const rows: Row[] = [
  { name: 'an IP nobody knows is passed through as plain TCP', dst: '8.8.8.8', port: 443, want: { kind: 'passthrough', target: { ip: '8.8.8.8', port: 443 } } },
  { name: 'a TCP (non-mesh) workload gets plain TCP to its IP and port', dst: '10.244.3.3', port: 5000, want: { kind: 'tcp', target: { ip: '10.244.3.3', port: 5000 }, destination: { uid: 'c1//Pod/shop/legacy' } } },
  {
    name: 'an HBONE workload is dialled on 15008 with authority ip:port', dst: '10.244.2.45', port: 8080,
    want: { kind: 'hbone', nextHop: { ip: '10.244.2.45', port: 15008 }, authority: '10.244.2.45:8080', viaWaypoint: false, service: undefined },
    identities: ['spiffe://cluster.local/ns/shop/sa/cart'],
  },
  {
    name: 'a VIP maps the service port 80 to target port 8080 on the picked endpoint', dst: '10.96.31.7', port: 80,
    want: { kind: 'hbone', nextHop: { ip: '10.244.2.45', port: 15008 }, authority: '10.244.2.45:8080', service: { hostname: 'cart.shop.svc.cluster.local' }, destination: { uid: 'c1//Pod/shop/cart-1' } },
  },
  {
    name: 'expected identities are the workload identity plus the Service SANs (non-SPIFFE SANs ignored)', dst: '10.96.31.7', port: 80,
    want: { kind: 'hbone' },
    identities: ['spiffe://cluster.local/ns/shop/sa/cart', 'spiffe://cluster.local/ns/shop/sa/cart-canary'],
  },
  { name: 'a VIP with no healthy endpoint fails with no healthy upstream', dst: '10.96.0.99', port: 80, want: { kind: 'reject', code: 'NO_HEALTHY_UPSTREAM', message: /no healthy upstream/ } },
  { name: 'a service port the Service does not have fails with no healthy upstream', dst: '10.96.31.7', port: 81, want: { kind: 'reject', code: 'NO_HEALTHY_UPSTREAM' } },
  { name: 'a PASSTHROUGH Service sends plain TCP to the original VIP:port', dst: '10.96.0.77', port: 80, want: { kind: 'passthrough', target: { ip: '10.96.0.77', port: 80 } } },
  { name: 'a named target port takes the endpoint\'s own port', dst: '10.96.0.88', port: 80, want: { kind: 'hbone', authority: '10.244.3.5:9090', nextHop: { ip: '10.244.3.5', port: 15008 } } },
  {
    name: 'a Service with a waypoint goes to the waypoint with the original VIP:port authority', dst: '10.96.0.55', port: 80,
    want: { kind: 'hbone', viaWaypoint: true, nextHop: { ip: '10.244.9.9', port: 15008 }, authority: '10.96.0.55:80', service: { hostname: 'mesh.shop.svc.cluster.local' }, destination: { uid: 'c1//Pod/shop/waypoint' } },
    identities: ['spiffe://cluster.local/ns/shop/sa/waypoint'],
  },
  {
    name: 'a workload with a waypoint (by hostname) goes through it; identities include the waypoint Service SANs', dst: '10.244.4.4', port: 9080,
    want: { kind: 'hbone', viaWaypoint: true, nextHop: { ip: '10.244.9.9', port: 15008 }, authority: '10.244.4.4:9080', service: undefined },
    identities: ['spiffe://cluster.local/ns/shop/sa/waypoint', 'spiffe://cluster.local/ns/shop/sa/waypoint-alt'],
  },
  { name: 'a workload with a waypoint (by address) goes through it', dst: '10.244.4.5', port: 9080, want: { kind: 'hbone', viaWaypoint: true, nextHop: { ip: '10.244.9.9', port: 15008 }, authority: '10.244.4.5:9080' } },
  {
    name: 'traffic from the waypoint itself goes directly to the workload', dst: '10.244.4.4', port: 9080, source: waypoint,
    want: { kind: 'hbone', viaWaypoint: false, nextHop: { ip: '10.244.4.4', port: 15008 }, authority: '10.244.4.4:9080' },
    identities: ['spiffe://cluster.local/ns/shop/sa/reviews'],
  },
  {
    name: 'a source with the waypoint identity but another IP still goes through the waypoint', dst: '10.244.4.4', port: 9080, source: waypoint,
    input: { sourceIp: '10.244.7.7' }, want: { kind: 'hbone', viaWaypoint: true },
  },
  { name: 'a waypoint that is not in the state is an error', dst: '10.244.4.6', port: 80, want: { kind: 'reject', code: 'UNKNOWN_WAYPOINT', message: /gone\.shop/ } },
  { name: 'loopback on an illegal port is refused as a recursive call', dst: '127.0.0.1', port: 15008, want: { kind: 'reject', code: 'RECURSIVE_CALL', message: 'attempted recursive call to ourselves' } },
  { name: 'loopback on the outbound port 15001 is refused too', dst: '127.0.0.6', port: 15001, want: { kind: 'reject', code: 'RECURSIVE_CALL' } },
  { name: 'loopback on an ordinary port is passed through', dst: '127.0.0.1', port: 8080, want: { kind: 'passthrough', target: { ip: '127.0.0.1', port: 8080 } } },
  { name: 'a non-loopback IP on an illegal port is routed normally', dst: '10.244.2.45', port: 15008, want: { kind: 'hbone', authority: '10.244.2.45:15008' } },
  { name: 'an IPv6 workload gets a bracketed authority', dst: 'fd00:10:244::2d', port: 8080, want: { kind: 'hbone', authority: '[fd00:10:244::2d]:8080', nextHop: { ip: 'fd00:10:244::2d', port: 15008 } } },
  {
    name: 'transparent mode dials the direct hop on the target port, authority unchanged', dst: '10.96.31.7', port: 80, opts: { transparentNetworkPolicies: true },
    want: { kind: 'hbone', nextHop: { ip: '10.244.2.45', port: 8080 }, authority: '10.244.2.45:8080' },
  },
  {
    name: 'transparent mode keeps the waypoint hop on 15008', dst: '10.96.0.55', port: 80, opts: { transparentNetworkPolicies: true },
    want: { kind: 'hbone', viaWaypoint: true, nextHop: { ip: '10.244.9.9', port: 15008 } },
  },
  { name: 'a HostNetwork workload is not found by IP: passthrough', dst: '192.168.0.5', port: 10250, want: { kind: 'passthrough', target: { ip: '192.168.0.5', port: 10250 } } },
  { name: 'a Namespace-visibility Service is hidden from other namespaces', dst: '10.96.0.66', port: 80, want: { kind: 'passthrough', target: { ip: '10.96.0.66', port: 80 } } },
  { name: 'a Namespace-visibility Service is used by its own namespace', dst: '10.96.0.66', port: 80, source: teamClient, want: { kind: 'hbone', authority: '10.244.5.5:8080' } },
  { name: "an endpoint on another network without a network gateway: Istio's \"no valid routing destination\"", dst: '10.96.0.44', port: 80, want: { kind: 'reject', code: 'NO_VALID_DESTINATION', message: /no valid routing destination for workload: c1\/\/Pod\/shop\/remote/ } },
  { name: 'a DNS-resolved workload is not supported yet', dst: '10.96.0.33', port: 5432, want: { kind: 'reject', code: 'UNSUPPORTED_ROUTE', message: /DNS/ } },
  { name: 'without a source workload a public Service still routes', dst: '10.96.31.7', port: 80, source: null, want: { kind: 'hbone', authority: '10.244.2.45:8080' } },
];

for (const row of rows) {
  t.test(row.name, async (t) => {
    const source = row.source === null ? undefined : (row.source ?? frontend);
    const input: RouteInput = { source, dst: { ip: row.dst, port: row.port }, network: '', ...row.input };
    const route = buildRoute(state, input, { ...baseOpts, ...row.opts });
    t.match(route, row.want);
    if (row.identities) {
      t.equal(route.kind, 'hbone');
      if (route.kind === 'hbone') t.same(route.expectedIdentities.map(formatIdentity), row.identities);
    }
  });
}

t.test('the unhealthy endpoint of a Service is never picked', async (t) => {
  const seen = new Set<string>();
  const opts = { ...baseOpts, random: seededRandom(1) };
  for (let i = 0; i < 500; i++) {
    const r = buildRoute(state, { source: frontend, dst: { ip: '10.96.31.7', port: 80 }, network: '' }, opts);
    if (r.kind === 'hbone') seen.add(r.nextHop.ip);
  }
  t.same([...seen], ['10.244.2.45']);
});

t.test('endpoints are picked in proportion to their capacity', async (t) => {
  const counts = new Map<string, number>();
  const opts = { ...baseOpts, random: seededRandom(99) };
  const n = 2000;
  for (let i = 0; i < n; i++) {
    const r: Route = buildRoute(state, { source: frontend, dst: { ip: '10.96.0.22', port: 80 }, network: '' }, opts);
    const ip = r.kind === 'hbone' ? r.nextHop.ip : r.kind;
    counts.set(ip, (counts.get(ip) ?? 0) + 1);
  }
  const heavy = (counts.get('10.244.6.2') ?? 0) / n;
  t.ok(heavy > 0.85 && heavy < 0.95, `capacity-9 endpoint share ${heavy} is about 0.9`);
  t.equal((counts.get('10.244.6.1') ?? 0) + (counts.get('10.244.6.2') ?? 0), n, 'only the two endpoints are used');
});

// --- weightedWaypoints (Istio's fetch_service_waypoint) -------------------------------------------
{
  const wpB: GatewayAddress = { destination: { kind: 'address', address: { network: '', ip: '10.244.9.10' } }, hboneMtlsPort: 15008 };
  const canaryState = new State();
  const wpB_workload = workload({ uid: 'c1//Pod/shop/waypoint-b', namespace: 'shop', serviceAccount: 'waypoint-b', workloadIps: ['10.244.9.10'] });
  const target = workload({ uid: 'c1//Pod/shop/split-1', namespace: 'shop', workloadIps: ['10.244.7.1'], services: svcOf('shop/split.shop.svc.cluster.local') });
  const split = (weighted: { destination: GatewayAddress; weight: number }[], single?: GatewayAddress) =>
    service({ hostname: 'split.shop.svc.cluster.local', namespace: 'shop', vips: vip('10.96.0.21'), ports: ports({ 80: 8080 }), weightedWaypoints: weighted, ...(single ? { waypoint: single } : {}) });
  const hopOf = (svc: ReturnType<typeof split>, random: () => number): string => {
    canaryState.apply({ workloads: { upsert: [frontend, waypoint, wpB_workload, target], remove: [] }, services: { upsert: [svc], remove: [] } });
    const r = buildRoute(canaryState, { source: frontend, dst: { ip: '10.96.0.21', port: 80 }, network: '' }, { ...baseOpts, random });
    return r.kind === 'hbone' ? `${r.nextHop.ip} via waypoint ${r.viaWaypoint}` : r.kind;
  };
  const fixed = (x: number) => () => x;

  t.test('weightedWaypoints: a draw below the first weight picks the first, above it the second (weight / total)', async (t) => {
    const svc = split([{ destination: wpAddr, weight: 90 }, { destination: wpB, weight: 10 }]);
    t.equal(hopOf(svc, fixed(0.0)), '10.244.9.9 via waypoint true');
    t.equal(hopOf(svc, fixed(0.899)), '10.244.9.9 via waypoint true');
    t.equal(hopOf(svc, fixed(0.9)), '10.244.9.10 via waypoint true');
    t.equal(hopOf(svc, fixed(0.999999)), '10.244.9.10 via waypoint true');
  });

  t.test('weightedWaypoints: a zero weight is never picked; the single waypoint field is not used when a weight is positive', async (t) => {
    const svc = split([{ destination: wpAddr, weight: 0 }, { destination: wpB, weight: 5 }], wpAddr);
    for (const x of [0, 0.3, 0.99]) t.equal(hopOf(svc, fixed(x)), '10.244.9.10 via waypoint true');
  });

  t.test('weightedWaypoints all zero: the single waypoint field applies; without one the Service is reached directly', async (t) => {
    t.equal(hopOf(split([{ destination: wpB, weight: 0 }], wpAddr), fixed(0.5)), '10.244.9.9 via waypoint true');
    t.equal(hopOf(split([{ destination: wpB, weight: 0 }]), fixed(0.5)), '10.244.7.1 via waypoint false');
  });

  t.test('weightedWaypoints 3:1 over 4000 seeded connections: about three quarters to the first', async (t) => {
    const svc = split([{ destination: wpAddr, weight: 3 }, { destination: wpB, weight: 1 }]);
    const random = seededRandom(7);
    let first = 0;
    for (let i = 0; i < 4000; i++) if (hopOf(svc, random).startsWith('10.244.9.9 ')) first++;
    t.ok(first > 2800 && first < 3200, `${first} of 4000 to the weight-3 waypoint`);
  });
}

// --- double HBONE through a network gateway (hbone.md §8; Istio's build_request_through_gateway) ---
{
  const gwAddr: GatewayAddress = { destination: { kind: 'address', address: { network: 'west', ip: '172.16.0.10' } }, hboneMtlsPort: 15008 };
  const gwWorkload = workload({ uid: 'c2//Pod/istio-system/eastwest', namespace: 'istio-system', serviceAccount: 'eastwest', network: 'west', workloadIps: ['172.16.0.10'] });
  const remoteEp = workload({ uid: 'c2//Pod/shop/api-west', namespace: 'shop', serviceAccount: 'api', network: 'west', workloadIps: ['10.250.1.1'], networkGateway: gwAddr, services: svcOf('shop/api.shop.svc.cluster.local', { 80: 8080 }) });
  const remoteWp = workload({ uid: 'c2//Pod/shop/wp-west', namespace: 'shop', serviceAccount: 'wp', network: 'west', workloadIps: ['10.250.9.9'], networkGateway: gwAddr, services: svcOf('shop/wp.shop.svc.cluster.local', { 15008: 15008 }) });
  const wpWest: GatewayAddress = { destination: { kind: 'hostname', namespace: 'shop', hostname: 'wp.shop.svc.cluster.local' }, hboneMtlsPort: 15008 };
  const st = new State();
  st.apply({
    workloads: { upsert: [frontend, gwWorkload, remoteEp, remoteWp], remove: [] },
    services: { upsert: [
      service({ hostname: 'api.shop.svc.cluster.local', namespace: 'shop', vips: vip('10.96.1.1'), ports: ports({ 80: 8080 }), subjectAltNames: ['spiffe://cluster.local/ns/shop/sa/api'] }),
      service({ hostname: 'wp.shop.svc.cluster.local', namespace: 'shop', vips: vip('10.96.9.10'), ports: ports({ 15008: 15008 }), subjectAltNames: ['spiffe://cluster.local/ns/shop/sa/wp'] }),
      service({ hostname: 'viawp.shop.svc.cluster.local', namespace: 'shop', vips: vip('10.96.1.2'), ports: ports({ 80: 8080 }), waypoint: wpWest }),
    ], remove: [] },
  });
  const route = (ip: string) => buildRoute(st, { source: frontend, dst: { ip, port: 80 }, network: '' }, baseOpts);
  const summary = (r: Route) => (r.kind === 'double-hbone'
    ? { kind: r.kind, nextHop: `${r.nextHop.ip}:${r.nextHop.port}`, authority: r.authority, outer: r.expectedIdentities.map(formatIdentity), inner: r.finalIdentities.map(formatIdentity), viaWaypoint: r.viaWaypoint }
    : r);

  t.test('a Service endpoint on another network: outer CONNECT to its gateway with authority hostname:port, inner verified against the Service SANs', async (t) => {
    t.same(summary(route('10.96.1.1')), {
      kind: 'double-hbone', nextHop: '172.16.0.10:15008', authority: 'api.shop.svc.cluster.local:80',
      outer: ['spiffe://cluster.local/ns/istio-system/sa/eastwest'], inner: ['spiffe://cluster.local/ns/shop/sa/api'], viaWaypoint: false,
    });
  });

  t.test("a Service whose waypoint is on another network: through the waypoint's network gateway, inner verified against the waypoint Service SANs", async (t) => {
    t.same(summary(route('10.96.1.2')), {
      kind: 'double-hbone', nextHop: '172.16.0.10:15008', authority: 'viawp.shop.svc.cluster.local:80',
      outer: ['spiffe://cluster.local/ns/istio-system/sa/eastwest'], inner: ['spiffe://cluster.local/ns/shop/sa/wp'], viaWaypoint: true,
    });
  });
}
