// Table tests: istio.workload.Workload objects (as protobufjs/proto-loader decode them) → the
// internal Workload, following spec/xds.md §3 and §5.
import t from 'tap';
import type { Workload } from '../state/model.js';
import { decodeAddress } from './decode-address.js';
import type { ProtoWorkload } from './decode-types.js';
import { decodeWorkload } from './decode-workload.js';

const v4 = (s: string) => Uint8Array.from(s.split('.').map(Number));
const base: ProtoWorkload = { uid: 'Kubernetes//Pod/ns/a', name: 'a', namespace: 'ns', addresses: [v4('10.0.0.1')] };

interface Row {
  readonly name: string;
  readonly input: ProtoWorkload;
  readonly want?: Partial<Record<keyof Workload, unknown>>;
  readonly reject?: RegExp;
}

const rows: Row[] = [
  {
    name: 'empty trust domain, service account and cluster id take the proto defaults; capacity unset is 1',
    input: base,
    want: {
      trustDomain: 'cluster.local', serviceAccount: 'default', clusterId: 'Kubernetes', capacity: 1,
      protocol: 'TCP', workloadType: 'deployment', status: 'Healthy', networkMode: 'Standard',
      nativeTunnel: false, hostname: '', network: '', locality: undefined, waypoint: undefined,
    },
  },
  {
    name: 'explicit trust domain, service account and cluster id are kept',
    input: { ...base, trust_domain: 'example.org', service_account: 'cart', cluster_id: 'east' },
    want: { trustDomain: 'example.org', serviceAccount: 'cart', clusterId: 'east' },
  },
  {
    name: '4-byte and 16-byte addresses become canonical IP text',
    input: { ...base, addresses: [v4('10.244.1.12'), Uint8Array.from([0xfd, 0, ...Array(13).fill(0), 1])] },
    want: { workloadIps: ['10.244.1.12', 'fd00::1'] },
  },
  {
    name: 'an IPv4-mapped IPv6 address is canonicalised to IPv4',
    input: { ...base, addresses: [Uint8Array.from([...Array(10).fill(0), 0xff, 0xff, 10, 1, 2, 3])] },
    want: { workloadIps: ['10.1.2.3'] },
  },
  { name: 'a 5-byte address rejects the workload', input: { ...base, addresses: [Uint8Array.from([1, 2, 3, 4, 5])] }, reject: /length 5/ },
  { name: 'an empty address rejects the workload', input: { ...base, addresses: [new Uint8Array(0)] }, reject: /length 0/ },
  { name: 'tunnel protocol HBONE', input: { ...base, tunnel_protocol: 1 }, want: { protocol: 'HBONE' } },
  { name: 'tunnel protocol LEGACY_ISTIO_MTLS is rejected', input: { ...base, tunnel_protocol: 2 }, reject: /LEGACY_ISTIO_MTLS/ },
  { name: 'an unknown tunnel protocol number is rejected', input: { ...base, tunnel_protocol: 7 }, reject: /tunnel_protocol 7/ },
  { name: 'workload type POD is lower-cased', input: { ...base, workload_type: 2 }, want: { workloadType: 'pod' } },
  { name: 'workload type given by enum name (proto-loader enums: String)', input: { ...base, workload_type: 'CRONJOB' }, want: { workloadType: 'cronjob' } },
  { name: 'an unknown workload type falls back to deployment', input: { ...base, workload_type: 9 }, want: { workloadType: 'deployment' } },
  { name: 'status UNHEALTHY', input: { ...base, status: 1 }, want: { status: 'Unhealthy' } },
  { name: 'an unknown status is rejected', input: { ...base, status: 4 }, reject: /status/ },
  { name: 'network mode HOST_NETWORK', input: { ...base, network_mode: 1 }, want: { networkMode: 'HostNetwork' } },
  { name: 'an unknown network mode is rejected', input: { ...base, network_mode: 'BRIDGE' }, reject: /network_mode/ },
  { name: 'capacity 0 set explicitly stays 0', input: { ...base, capacity: {} }, want: { capacity: 0 } },
  { name: 'capacity 5', input: { ...base, capacity: { value: 5 } }, want: { capacity: 5 } },
  {
    name: 'services map becomes service key → port map, dropping ports above 65535',
    input: {
      ...base,
      services: {
        'ns/cart.ns.svc.cluster.local': { ports: [{ service_port: 80, target_port: 8080 }, { service_port: 70000, target_port: 1 }] },
        'ns/named.ns.svc.cluster.local': { ports: [{ service_port: 9090 }] },
      },
    },
    want: {
      services: new Map([
        ['ns/cart.ns.svc.cluster.local', new Map([[80, 8080]])],
        ['ns/named.ns.svc.cluster.local', new Map([[9090, 0]])],
      ]),
    },
  },
  { name: 'a services key without a namespace is rejected', input: { ...base, services: { 'cart': { ports: [] } } }, reject: /services/ },
  {
    name: 'a waypoint by hostname',
    input: { ...base, waypoint: { hostname: { namespace: 'ns', hostname: 'wp.ns.svc.cluster.local' }, hbone_mtls_port: 15008 } },
    want: { waypoint: { destination: { kind: 'hostname', namespace: 'ns', hostname: 'wp.ns.svc.cluster.local' }, hboneMtlsPort: 15008 } },
  },
  {
    name: 'a network gateway by address',
    input: { ...base, network_gateway: { address: { network: 'east', address: v4('192.168.0.1') }, hbone_mtls_port: 15008 } },
    want: { networkGateway: { destination: { kind: 'address', address: { network: 'east', ip: '192.168.0.1' } }, hboneMtlsPort: 15008 } },
  },
  { name: 'a waypoint with no destination is rejected', input: { ...base, waypoint: { hbone_mtls_port: 15008 } }, reject: /waypoint: .*no destination/ },
  { name: 'a waypoint address with 3 bytes is rejected', input: { ...base, waypoint: { address: { address: Uint8Array.from([1, 2, 3]) } } }, reject: /waypoint/ },
  {
    name: 'an application tunnel with PROXY protocol and a port',
    input: { ...base, application_tunnel: { protocol: 1, port: 15088 } },
    want: { applicationTunnel: { protocol: 'PROXY', port: 15088 } },
  },
  { name: 'an application tunnel port 0 means no port', input: { ...base, application_tunnel: { protocol: 0 } }, want: { applicationTunnel: { protocol: 'NONE' } } },
  { name: 'an application tunnel with an unknown protocol is rejected', input: { ...base, application_tunnel: { protocol: 3 } }, reject: /application_tunnel/ },
  {
    name: 'locality, node, canonical names, native tunnel and selector policies are carried',
    input: {
      ...base, locality: { region: 'r', zone: 'z' }, node: 'node-a', canonical_name: 'cart', canonical_revision: 'v1',
      workload_name: 'cart', native_tunnel: true, authorization_policies: ['ns/allow-frontend'], hostname: 'db.example.com', network: 'east',
    },
    want: {
      locality: { region: 'r', zone: 'z', subzone: '' }, node: 'node-a', canonicalName: 'cart', canonicalRevision: 'v1',
      workloadName: 'cart', nativeTunnel: true, authorizationPolicies: ['ns/allow-frontend'], hostname: 'db.example.com', network: 'east',
    },
  },
];

for (const row of rows) {
  t.test(row.name, async (tt) => {
    const r = decodeWorkload(row.input);
    if (row.reject) {
      tt.equal(r.ok, false, 'rejected');
      if (!r.ok) tt.match(r.error, row.reject);
      return;
    }
    tt.equal(r.ok, true, r.ok ? 'accepted' : `unexpected rejection: ${r.error}`);
    if (!r.ok) return;
    for (const [k, v] of Object.entries(row.want ?? {})) tt.same(r.value[k as keyof Workload], v, k);
  });
}

t.test('an Address carrying a workload, a service, or neither', async (tt) => {
  const w = decodeAddress({ workload: base });
  tt.equal(w.ok && w.value.kind, 'workload');
  const s = decodeAddress({ service: { namespace: 'ns', hostname: 'h' } });
  tt.equal(s.ok && s.value.kind, 'service');
  const n = decodeAddress({});
  tt.equal(n.ok, false);
  const bad = decodeAddress({ workload: { ...base, tunnel_protocol: 2 } });
  tt.equal(bad.ok, false, 'a bad workload inside an Address is rejected');
});

t.test('garbage input never throws', async (tt) => {
  const inputs: unknown[] = [null, undefined, 5, 'x', { addresses: 'nope' }, { services: 7 }, { capacity: { value: -1 } }];
  for (const i of inputs) tt.doesNotThrow(() => decodeWorkload(i as ProtoWorkload));
});
