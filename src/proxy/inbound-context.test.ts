// Phase (a) of an inbound HBONE request (hbone.md §4) as a table: each CONNECT request gives a
// context (workload, upstream, target port, Service) or the catalogue code that decides its status.
import t from 'tap';
import { ERRORS, ZtunnelError, hboneStatus, type ErrorCode } from '../core/errors.js';
import type { SocketAddr } from '../core/net.js';
import type { GatewayAddress } from '../state/model.js';
import { State } from '../state/state.js';
import { ports, service, workload } from '../state/test-builders.js';
import { buildInboundContext, type InboundOptions, type InboundRequest } from './inbound-context.js';

const CART = 'shop/cart.shop.svc.cluster.local';
const svcOf = (key: string, map: Record<number, number> = {}) => new Map([[key, ports(map)]]);
const WAYPOINT_IP = '10.244.9.9';
const wpAddr: GatewayAddress = { destination: { kind: 'address', address: { network: '', ip: WAYPOINT_IP } }, hboneMtlsPort: 15008 };

const state = new State();
const applied = state.apply({
  workloads: {
    upsert: [
      workload({ uid: 'c1//Pod/shop/cart-1', namespace: 'shop', serviceAccount: 'cart', workloadIps: ['10.244.2.45'], services: svcOf(CART, { 80: 8080 }) }),
      workload({ uid: 'c1//Pod/shop/other', namespace: 'shop', workloadIps: ['10.244.3.3'] }),
      workload({ uid: 'c1//Pod/shop/waypoint', namespace: 'shop', serviceAccount: 'waypoint', workloadIps: [WAYPOINT_IP] }),
      workload({ uid: 'c1//Pod/shop/ratings', namespace: 'shop', workloadIps: ['10.244.4.5'], waypoint: wpAddr }),
      workload({ uid: 'c1//Pod/shop/tunnel', namespace: 'shop', workloadIps: ['10.244.7.7'], applicationTunnel: { protocol: 'PROXY', port: 15088 }, services: svcOf(CART) }),
    ],
    remove: [],
  },
  services: {
    upsert: [service({ hostname: 'cart.shop.svc.cluster.local', namespace: 'shop', vips: [{ network: '', ip: '10.96.31.7' }], ports: ports({ 80: 8080, 81: 0 }) })],
    remove: [],
  },
});
t.same(applied.rejected, [], 'fixture state is valid');

const at = (ip: string, port = 15008): SocketAddr => ({ ip, port });
const baseOpts: InboundOptions = { network: '', transparentNetworkPolicies: false, hbonePort: 15008, illegalPorts: new Set([15001, 15006, 15008]) };

type Want =
  | { code: ErrorCode; status: 400 | 401 | 503 }
  | { workload: string; upstream: string; targetPort: number; service?: string; tunnel?: boolean };

interface Row {
  readonly name: string;
  readonly req: Partial<InboundRequest>;
  readonly opts?: Partial<InboundOptions>;
  readonly want: Want;
}

const CONNECT = { method: 'CONNECT', localAddr: at('10.244.2.45') };
const rows: Row[] = [
  // --- accepted ---
  { name: 'ip:port of the workload the connection reached', req: { ...CONNECT, authority: '10.244.2.45:8080' },
    want: { workload: 'c1//Pod/shop/cart-1', upstream: '10.244.2.45:8080', targetPort: 8080, service: 'cart.shop.svc.cluster.local' } },
  { name: 'a port no Service names: no Service, still accepted', req: { ...CONNECT, authority: '10.244.2.45:9999' },
    want: { workload: 'c1//Pod/shop/cart-1', upstream: '10.244.2.45:9999', targetPort: 9999 } },
  { name: 'hostname authority: the Service port maps to the target port', req: { ...CONNECT, authority: 'cart.shop.svc.cluster.local:80' },
    want: { workload: 'c1//Pod/shop/cart-1', upstream: '10.244.2.45:8080', targetPort: 8080, service: 'cart.shop.svc.cluster.local' } },
  { name: 'forwarded host= picks the Service for telemetry', req: { ...CONNECT, authority: '10.244.2.45:9999', forwardedHost: 'cart.shop.svc.cluster.local' },
    want: { workload: 'c1//Pod/shop/cart-1', upstream: '10.244.2.45:9999', targetPort: 9999, service: 'cart.shop.svc.cluster.local' } },
  { name: 'sandwich: the waypoint receives a CONNECT for a workload it serves', req: { method: 'CONNECT', localAddr: at(WAYPOINT_IP), authority: '10.244.4.5:80' },
    want: { workload: 'c1//Pod/shop/waypoint', upstream: `${WAYPOINT_IP}:80`, targetPort: 80 } },
  { name: 'an application tunnel accepts another authority IP', req: { method: 'CONNECT', localAddr: at('10.244.7.7'), authority: '10.96.31.7:80' },
    want: { workload: 'c1//Pod/shop/tunnel', upstream: '10.244.7.7:80', targetPort: 80, tunnel: true } },
  { name: 'an application tunnel takes a hostname port without mapping', req: { method: 'CONNECT', localAddr: at('10.244.7.7'), authority: 'cart.shop.svc.cluster.local:7000' },
    want: { workload: 'c1//Pod/shop/tunnel', upstream: '10.244.7.7:7000', targetPort: 7000, service: 'cart.shop.svc.cluster.local', tunnel: true } },
  { name: 'transparent mode: the CONNECT port equals the outer original port', req: { ...CONNECT, authority: '10.244.2.45:8080', outerOriginalDst: at('10.244.2.45', 8080) },
    opts: { transparentNetworkPolicies: true }, want: { workload: 'c1//Pod/shop/cart-1', upstream: '10.244.2.45:8080', targetPort: 8080, service: 'cart.shop.svc.cluster.local' } },
  { name: 'transparent mode: an outer connection to 15008 itself is not compared', req: { ...CONNECT, authority: '10.244.2.45:8080', outerOriginalDst: at('10.244.2.45', 15008) },
    opts: { transparentNetworkPolicies: true }, want: { workload: 'c1//Pod/shop/cart-1', upstream: '10.244.2.45:8080', targetPort: 8080, service: 'cart.shop.svc.cluster.local' } },
  { name: 'the served workload (dedicated mode) is the destination', req: { ...CONNECT, authority: '10.244.2.45:8080' }, opts: { servedWorkloadUid: 'c1//Pod/shop/cart-1' },
    want: { workload: 'c1//Pod/shop/cart-1', upstream: '10.244.2.45:8080', targetPort: 8080, service: 'cart.shop.svc.cluster.local' } },

  // --- refused ---
  { name: 'GET is not CONNECT', req: { ...CONNECT, method: 'GET', authority: '10.244.2.45:8080' }, want: { code: 'BAD_METHOD', status: 400 } },
  { name: 'no :method at all', req: { ...CONNECT, method: undefined, authority: '10.244.2.45:8080' }, want: { code: 'BAD_METHOD', status: 400 } },
  { name: 'no :authority', req: { ...CONNECT }, want: { code: 'BAD_AUTHORITY', status: 400 } },
  { name: 'an authority without a port', req: { ...CONNECT, authority: '10.244.2.45' }, want: { code: 'BAD_AUTHORITY', status: 400 } },
  { name: 'a bracketed host that is not IPv6', req: { ...CONNECT, authority: '[cart]:80' }, want: { code: 'BAD_AUTHORITY', status: 400 } },
  { name: 'an authority IP other than the one connected to', req: { ...CONNECT, authority: '10.244.3.3:8080' }, want: { code: 'IP_MISMATCH', status: 400 } },
  { name: 'a workload whose waypoint is not the receiver', req: { ...CONNECT, authority: '10.244.4.5:80' }, want: { code: 'IP_MISMATCH', status: 400 } },
  { name: 'transparent mode: the CONNECT port differs from the outer original port', req: { ...CONNECT, authority: '10.244.2.45:8080', outerOriginalDst: at('10.244.2.45', 9090) },
    opts: { transparentNetworkPolicies: true }, want: { code: 'PORT_MISMATCH', status: 400 } },
  { name: 'no workload at the address', req: { method: 'CONNECT', localAddr: at('10.244.99.99'), authority: '10.244.99.99:80' }, want: { code: 'UNKNOWN_DESTINATION', status: 503 } },
  { name: 'a local workload other than the one served', req: { ...CONNECT, authority: '10.244.2.45:8080' }, opts: { servedWorkloadUid: 'c1//Pod/shop/other' },
    want: { code: 'UNKNOWN_DESTINATION', status: 503 } },
  { name: 'a hostname no Service has', req: { ...CONNECT, authority: 'nope.shop.svc.cluster.local:80' }, want: { code: 'UNKNOWN_SERVICE', status: 503 } },
  { name: 'a hostname authority on a port the Service does not map', req: { ...CONNECT, authority: 'cart.shop.svc.cluster.local:9999' }, want: { code: 'NO_PORT_MAPPING', status: 503 } },
  { name: 'a named target port (0) the workload does not resolve', req: { ...CONNECT, authority: 'cart.shop.svc.cluster.local:81' }, want: { code: 'NO_PORT_MAPPING', status: 503 } },
  { name: 'the HBONE port itself as the upstream', req: { ...CONNECT, authority: '10.244.2.45:15008' }, want: { code: 'ILLEGAL_PORT', status: 503 } },
  { name: 'the outbound capture port as the upstream', req: { ...CONNECT, authority: '10.244.2.45:15001' }, want: { code: 'ILLEGAL_PORT', status: 503 } },
];

t.test('each CONNECT request gives its context or the code that decides its status', async (t) => {
  for (const row of rows) {
    const req = { method: undefined, authority: undefined, localAddr: at('0.0.0.0'), ...row.req } as InboundRequest;
    const got = buildInboundContext(state, req, { ...baseOpts, ...row.opts });
    const want = row.want;
    if ('code' in want) {
      if (!(got instanceof ZtunnelError)) {
        t.fail(`${row.name}: expected ${want.code}, got a context for ${got.destination.uid}`);
        continue;
      }
      t.equal(got.code, want.code, `${row.name}: ${want.code}`);
      t.equal(hboneStatus(got), want.status, `${row.name}: answered ${want.status}`);
      t.equal(ERRORS[got.code].status, want.status, `${row.name}: the status is the catalogue's`);
    } else {
      if (got instanceof ZtunnelError) {
        t.fail(`${row.name}: refused with ${got.code}: ${got.message}`);
        continue;
      }
      t.same({
        workload: got.destination.uid,
        upstream: `${got.upstream.ip}:${got.upstream.port}`,
        targetPort: got.targetPort,
        ...(got.service ? { service: got.service.hostname } : {}),
        ...(got.applicationTunnel ? { tunnel: true } : {}),
      }, want, row.name);
      t.equal(got.authority, req.authority, `${row.name}: the authority is kept for the access log`);
    }
  }
});

t.test('every phase (a) code of the catalogue has a row', async (t) => {
  const phaseA: ErrorCode[] = ['BAD_METHOD', 'BAD_AUTHORITY', 'IP_MISMATCH', 'PORT_MISMATCH', 'UNKNOWN_DESTINATION', 'UNKNOWN_SERVICE', 'NO_PORT_MAPPING', 'ILLEGAL_PORT'];
  const covered = new Set(rows.flatMap((r) => ('code' in r.want ? [r.want.code] : [])));
  t.same(phaseA.filter((c) => !covered.has(c)), []);
});
