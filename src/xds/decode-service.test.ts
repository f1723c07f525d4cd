// Table tests: istio.workload.Service objects → the internal Service (spec/xds.md §5).
import t from 'tap';
import type { Service } from '../state/model.js';
import { decodeService } from './decode-service.js';
import type { ProtoService } from './decode-types.js';

const v4 = (s: string) => Uint8Array.from(s.split('.').map(Number));
const base: ProtoService = {
  name: 'cart', namespace: 'shop', hostname: 'cart.shop.svc.cluster.local',
  addresses: [{ network: '', address: v4('10.96.0.7') }],
  ports: [{ service_port: 80, target_port: 8080 }],
};

interface Row {
  readonly name: string;
  readonly input: ProtoService;
  readonly want?: Partial<Record<keyof Service, unknown>>;
  readonly reject?: RegExp;
}

const rows: Row[] = [
  {
    name: 'VIPs, ports and defaults',
    input: base,
    want: {
      vips: [{ network: '', ip: '10.96.0.7' }], ports: new Map([[80, 8080]]), canonical: false, visibility: 'Public',
      ipFamilies: undefined, loadBalancer: undefined, subjectAltNames: [],
    },
  },
  {
    name: 'an IPv6 VIP on a named network',
    input: { ...base, addresses: [{ network: 'east', address: Uint8Array.from([0xfd, 0, ...Array(13).fill(0), 7]) }] },
    want: { vips: [{ network: 'east', ip: 'fd00::7' }] },
  },
  {
    name: 'a VIP with a full-length prefix is kept, a CIDR VIP (newer) goes to cidrVips',
    input: { ...base, addresses: [{ address: v4('10.96.0.7'), length: 32 }, { address: v4('10.97.0.0'), length: 16 }] },
    want: { vips: [{ network: '', ip: '10.96.0.7' }], cidrVips: [{ network: '', cidr: '10.97.0.0/16' }] },
  },
  { name: 'a prefix longer than the address is rejected', input: { ...base, addresses: [{ address: v4('10.96.0.7'), length: 33 }] }, reject: /prefix/ },
  { name: 'a VIP with 6 bytes is rejected', input: { ...base, addresses: [{ address: Uint8Array.from([1, 2, 3, 4, 5, 6]) }] }, reject: /length 6/ },
  {
    name: 'ports outside 0..65535 are dropped; target port 0 is kept (named port)',
    input: { ...base, ports: [{ service_port: 80, target_port: 0 }, { service_port: 65536, target_port: 80 }, { service_port: 443, target_port: 99999 }] },
    want: { ports: new Map([[80, 0]]) },
  },
  {
    name: 'load balancing with routing preferences, failover and allow-all health',
    input: { ...base, load_balancing: { routing_preference: [2, 6], mode: 2, health_policy: 1 } },
    want: { loadBalancer: { routingPreferences: ['Zone', 'Network'], mode: 'Failover', healthPolicy: 'AllowAll' } },
  },
  {
    name: 'load balancing given by enum names',
    input: { ...base, load_balancing: { routing_preference: ['NODE', 'CLUSTER'], mode: 'PASSTHROUGH' } },
    want: { loadBalancer: { routingPreferences: ['Node', 'Cluster'], mode: 'Passthrough', healthPolicy: 'OnlyHealthy' } },
  },
  { name: 'an UNSPECIFIED_SCOPE routing preference is rejected', input: { ...base, load_balancing: { routing_preference: [0] } }, reject: /routing_preference/ },
  { name: 'an unknown load balancing mode is rejected', input: { ...base, load_balancing: { mode: 9 } }, reject: /mode/ },
  { name: 'ip families IPV4_ONLY', input: { ...base, ip_families: 1 }, want: { ipFamilies: 'IPv4' } },
  { name: 'ip families DUAL', input: { ...base, ip_families: 3 }, want: { ipFamilies: 'Dual' } },
  { name: 'unknown ip families are rejected', input: { ...base, ip_families: 8 }, reject: /ip_families/ },
  { name: 'visibility NAMESPACE (newer)', input: { ...base, visibility: 1 }, want: { visibility: 'Namespace' } },
  { name: 'an unknown visibility (a newer istiod) is PUBLIC, as in Istio', input: { ...base, visibility: 2 }, want: { visibility: 'Public', name: 'cart' } },
  { name: 'an unknown visibility name is PUBLIC too', input: { ...base, visibility: 'CLUSTER' }, want: { visibility: 'Public' } },
  {
    name: 'subject alt names, canonical flag and a hostname waypoint',
    input: {
      ...base, subject_alt_names: ['spiffe://cluster.local/ns/shop/sa/cart'], canonical: true,
      waypoint: { hostname: { namespace: 'shop', hostname: 'wp.shop.svc.cluster.local' }, hbone_mtls_port: 15008 },
    },
    want: {
      subjectAltNames: ['spiffe://cluster.local/ns/shop/sa/cart'], canonical: true,
      waypoint: { destination: { kind: 'hostname', namespace: 'shop', hostname: 'wp.shop.svc.cluster.local' }, hboneMtlsPort: 15008 },
    },
  },
  { name: 'a weighted waypoint without a destination is rejected', input: { ...base, weighted_waypoints: [{ weight: 1 }] }, reject: /weighted_waypoints/ },
  {
    name: 'a valid weighted waypoint is accepted',
    input: { ...base, weighted_waypoints: [{ destination: { address: { address: v4('10.0.0.9') }, hbone_mtls_port: 15008 }, weight: 3 }] },
    want: { weightedWaypoints: [{ destination: { destination: { kind: 'address', address: { network: '', ip: '10.0.0.9' } }, hboneMtlsPort: 15008 }, weight: 3 }] },
  },
];

for (const row of rows) {
  t.test(row.name, async (tt) => {
    const r = decodeService(row.input);
    if (row.reject) {
      tt.equal(r.ok, false, 'rejected');
      if (!r.ok) tt.match(r.error, row.reject);
      return;
    }
    tt.equal(r.ok, true, r.ok ? 'accepted' : `unexpected rejection: ${r.error}`);
    if (!r.ok) return;
    for (const [k, v] of Object.entries(row.want ?? {})) tt.same(r.value[k as keyof Service], v, k);
  });
}
