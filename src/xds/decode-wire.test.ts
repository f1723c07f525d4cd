// Wire-format checks: the field numbers in proto/*.proto are the contract with istiod
// (spec/xds.md §4–§7). Each case hand-writes the protobuf bytes (tags spelled out from the spec's
// numbers, independent of protobufjs) and checks both directions: protobufjs encoding our object
// yields exactly those bytes, and decoding those bytes yields the expected model value.
import t from 'tap';
import { buildNode } from './ads-node.js';
import { decodeAddress } from './decode-address.js';
import { decodeAuthorization } from './decode-authorization.js';
import type { ProtoAddress, ProtoAuthorization } from './decode-types.js';
import { decodeMessage, encodeMessage, loadXdsProto } from './xds-proto.js';

// --- a tiny independent protobuf writer ---------------------------------------------------------
function varint(n: number): number[] {
  const out: number[] = [];
  let v = n;
  while (v > 127) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}
const LEN = 2;
const VARINT = 0;
const tag = (field: number, wireType: number) => varint(field * 8 + wireType);
const ld = (field: number, ...parts: number[][]) => {
  const body = parts.flat();
  return [...tag(field, LEN), ...varint(body.length), ...body];
};
const vi = (field: number, n: number) => [...tag(field, VARINT), ...varint(n)];
const s = (text: string) => [...Buffer.from(text, 'utf8')];
const hex = (b: Uint8Array | number[]) => Buffer.from(b).toString('hex');

const proto = loadXdsProto();

t.test('writer sanity: two-byte tags for fields ≥ 16 and multi-byte varints', async (tt) => {
  tt.same(tag(20, LEN), [0xa2, 0x01], 'Workload.uid = 20, length-delimited');
  tt.same(tag(22, LEN), [0xb2, 0x01], 'Workload.services = 22');
  tt.same(tag(27, LEN), [0xda, 0x01], 'Workload.capacity = 27');
  tt.same(varint(8080), [0x90, 0x3f]);
  tt.same(varint(86400), [0x80, 0xa3, 0x05]);
});

t.test('Workload: every field lands on its spec number, both ways', async (tt) => {
  // Written out literally, field by field, in field-number order (the order protobufjs emits).
  const workloadBody = [
    0x0a, 0x01, ...s('w'), //                                   name = 1
    0x12, 0x02, ...s('ns'), //                                  namespace = 2
    0x1a, 0x04, 10, 0, 0, 1, //                                 addresses = 3 (10.0.0.1)
    0x1a, 0x10, 0xfd, ...Array(14).fill(0), 0x01, //            addresses = 3 (fd00::1)
    0x28, 0x01, //                                              tunnel_protocol = 5 (HBONE)
    0x32, 0x02, ...s('td'), //                                  trust_domain = 6
    0x3a, 0x02, ...s('sa'), //                                  service_account = 7
    0x42, 0x0b, 0x12, 0x06, 0x12, 0x04, 10, 0, 0, 9, 0x18, 0xa0, 0x75, // waypoint = 8 {address=2 {address=2}, hbone_mtls_port=3 15008}
    0x60, 0x02, //                                              workload_type = 12 (POD)
    0x88, 0x01, 0x01, //                                        status = 17 (UNHEALTHY)
    0x92, 0x01, 0x02, ...s('c1'), //                            cluster_id = 18
    0xa2, 0x01, 0x02, ...s('u1'), //                            uid = 20
    0xb2, 0x01, 0x0e, 0x0a, 0x03, ...s('a/b'), 0x12, 0x07, 0x0a, 0x05, 0x08, 0x50, 0x10, 0x90, 0x3f, // services = 22 {"a/b": PortList{ports=1 [Port{1: 80, 2: 8080}]}}
    0xda, 0x01, 0x02, 0x08, 0x05, //                            capacity = 27 (UInt32Value{value=1: 5})
  ];
  const address = [0x0a, ...varint(workloadBody.length), ...workloadBody]; // Address.workload = 1

  const encoded = encodeMessage(proto.address, {
    workload: {
      name: 'w', namespace: 'ns',
      addresses: [Buffer.from([10, 0, 0, 1]), Buffer.from([0xfd, ...Array(14).fill(0), 1])],
      tunnel_protocol: 1, trust_domain: 'td', service_account: 'sa',
      waypoint: { address: { address: Buffer.from([10, 0, 0, 9]) }, hbone_mtls_port: 15008 },
      workload_type: 2, status: 1, cluster_id: 'c1', uid: 'u1',
      services: { 'a/b': { ports: [{ service_port: 80, target_port: 8080 }] } },
      capacity: { value: 5 },
    },
  });
  tt.equal(hex(encoded), hex(address), 'protobufjs encodes the same bytes');

  const d = decodeAddress(decodeMessage(proto.address, Uint8Array.from(address)) as ProtoAddress);
  tt.equal(d.ok, true);
  if (!d.ok || d.value.kind !== 'workload') return;
  const w = d.value.workload;
  tt.same(
    [w.name, w.namespace, w.workloadIps, w.protocol, w.trustDomain, w.serviceAccount, w.workloadType, w.status, w.clusterId, w.uid, w.capacity],
    ['w', 'ns', ['10.0.0.1', 'fd00::1'], 'HBONE', 'td', 'sa', 'pod', 'Unhealthy', 'c1', 'u1', 5],
  );
  tt.same(w.waypoint, { destination: { kind: 'address', address: { network: '', ip: '10.0.0.9' } }, hboneMtlsPort: 15008 });
  tt.same([...w.services.get('a/b')!], [[80, 8080]]);
});

t.test('Workload.capacity: absent on the wire is 1, an empty UInt32Value is 0', async (tt) => {
  const uid = [0xa2, 0x01, 0x01, ...s('x')];
  const absent = decodeAddress(decodeMessage(proto.address, Uint8Array.from(ld(1, uid))) as ProtoAddress);
  const zero = decodeAddress(decodeMessage(proto.address, Uint8Array.from(ld(1, uid, [0xda, 0x01, 0x00]))) as ProtoAddress);
  tt.equal(absent.ok && absent.value.kind === 'workload' && absent.value.workload.capacity, 1);
  tt.equal(zero.ok && zero.value.kind === 'workload' && zero.value.workload.capacity, 0);
});

t.test('Workload: unknown fields (newer istiod) are skipped', async (tt) => {
  const body = [...ld(20, s('u1')), ...ld(99, s('future')), ...vi(98, 7)];
  const d = decodeAddress(decodeMessage(proto.address, Uint8Array.from(ld(1, body))) as ProtoAddress);
  tt.equal(d.ok && d.value.kind === 'workload' && d.value.workload.uid, 'u1');
});

t.test('Service inside Address (field 2): hostname, VIPs, ports, load balancing, visibility', async (tt) => {
  const svc = [
    ...ld(1, s('cart')), ...ld(2, s('shop')), ...ld(3, s('cart.shop.svc')),
    ...ld(4, ld(1, s('net')), ld(2, [10, 96, 0, 7])), //         addresses = 4 NetworkAddress{network=1, address=2}
    ...ld(5, vi(1, 80), vi(2, 8080), vi(3, 2)), //               ports = 5 Port{1, 2, app_protocol=3 HTTP2}
    ...ld(6, s('spiffe://td/ns/shop/sa/cart')), //               subject_alt_names = 6
    ...ld(8, ld(1, [2, 6]), vi(2, 1), vi(3, 1)), //              load_balancing = 8 {routing_preference=1 packed [ZONE, NETWORK], mode=2 STRICT, health_policy=3 ALLOW_ALL}
    ...vi(9, 2), //                                              ip_families = 9 IPV6_ONLY
    ...vi(11, 1), //                                             canonical = 11
    ...vi(14, 1), //                                             visibility = 14 NAMESPACE
  ];
  const bytes = ld(2, svc);
  const encoded = encodeMessage(proto.address, {
    service: {
      name: 'cart', namespace: 'shop', hostname: 'cart.shop.svc',
      addresses: [{ network: 'net', address: Buffer.from([10, 96, 0, 7]) }],
      ports: [{ service_port: 80, target_port: 8080, app_protocol: 2 }],
      subject_alt_names: ['spiffe://td/ns/shop/sa/cart'],
      load_balancing: { routing_preference: [2, 6], mode: 1, health_policy: 1 },
      ip_families: 2, canonical: true, visibility: 1,
    },
  });
  tt.equal(hex(encoded), hex(bytes), 'protobufjs encodes the same bytes');
  const d = decodeAddress(decodeMessage(proto.address, Uint8Array.from(bytes)) as ProtoAddress);
  tt.equal(d.ok && d.value.kind, 'service');
  if (!d.ok || d.value.kind !== 'service') return;
  const v = d.value.service;
  tt.same(
    [v.name, v.namespace, v.hostname, v.vips, [...v.ports], v.subjectAltNames, v.ipFamilies, v.canonical, v.visibility],
    ['cart', 'shop', 'cart.shop.svc', [{ network: 'net', ip: '10.96.0.7' }], [[80, 8080]], ['spiffe://td/ns/shop/sa/cart'], 'IPv6', true, 'Namespace'],
  );
  tt.same(v.loadBalancer, { routingPreferences: ['Zone', 'Network'], mode: 'Strict', healthPolicy: 'AllowAll' });
});

t.test('NetworkAddress.length = 3 (newer, optional): an explicit /32 is on the wire and kept', async (tt) => {
  const bytes = ld(2, ld(4, ld(2, [10, 96, 0, 7]), vi(3, 32)));
  const d = decodeAddress(decodeMessage(proto.address, Uint8Array.from(bytes)) as ProtoAddress);
  tt.same(d.ok && d.value.kind === 'service' && d.value.service.vips, [{ network: '', ip: '10.96.0.7' }]);
  const cidr = decodeAddress(decodeMessage(proto.address, Uint8Array.from(ld(2, ld(4, ld(2, [10, 96, 0, 0]), vi(3, 16))))) as ProtoAddress);
  tt.same(cidr.ok && cidr.value.kind === 'service' && cidr.value.service.vips, [], 'a /16 CIDR VIP is not an exact VIP');
});

t.test('Authorization → Rule(5) → Clause(1) → Match(2): every Match field number', async (tt) => {
  const match = [
    ...ld(1, ld(4, [])), //                                       namespaces = 1 [StringMatch{presence=4 Empty}]
    ...ld(2, ld(2, s('kube-'))), //                               not_namespaces = 2 [StringMatch{prefix=2}]
    ...ld(3, ld(1, s('td/ns/a/sa/b'))), //                        principals = 3 [StringMatch{exact=1}]
    ...ld(4, ld(3, s('/sa/evil'))), //                            not_principals = 4 [StringMatch{suffix=3}]
    ...ld(5, ld(1, [10, 0, 0, 0]), vi(2, 8)), //                  source_ips = 5 [Address{address=1, length=2}]
    ...ld(6, ld(1, [10, 9, 0, 0]), vi(2, 16)), //                 not_source_ips = 6
    ...ld(7, ld(1, [192, 168, 1, 1]), vi(2, 32)), //              destination_ips = 7
    ...ld(8, ld(1, [192, 168, 2, 0]), vi(2, 24)), //              not_destination_ips = 8
    ...ld(9, [80, ...varint(443)]), //                           destination_ports = 9 (packed)
    ...ld(10, varint(9090)), //                                  not_destination_ports = 10 (packed)
    ...ld(11, ld(1, s('shop')), ld(2, s('cart'))), //            service_accounts = 11 [{namespace=1, serviceAccount=2}]
    ...ld(12, ld(1, s('x')), ld(2, s('y'))), //                  not_service_accounts = 12
  ];
  const authz = [
    ...ld(1, s('p')), ...ld(2, s('ns')), ...vi(3, 2), ...vi(4, 1), // name=1, namespace=2, scope=3 WORKLOAD_SELECTOR, action=4 DENY
    ...ld(5, ld(1, ld(2, match))), //                                  rules=5 → clauses=1 → matches=2
    ...vi(6, 1), //                                                    dry_run=6
  ];
  const encoded = encodeMessage(proto.authorization, {
    name: 'p', namespace: 'ns', scope: 2, action: 1, dry_run: true,
    rules: [{
      clauses: [{
        matches: [{
          namespaces: [{ presence: {} }], not_namespaces: [{ prefix: 'kube-' }],
          principals: [{ exact: 'td/ns/a/sa/b' }], not_principals: [{ suffix: '/sa/evil' }],
          source_ips: [{ address: Buffer.from([10, 0, 0, 0]), length: 8 }],
          not_source_ips: [{ address: Buffer.from([10, 9, 0, 0]), length: 16 }],
          destination_ips: [{ address: Buffer.from([192, 168, 1, 1]), length: 32 }],
          not_destination_ips: [{ address: Buffer.from([192, 168, 2, 0]), length: 24 }],
          destination_ports: [80, 443], not_destination_ports: [9090],
          service_accounts: [{ namespace: 'shop', serviceAccount: 'cart' }],
          not_service_accounts: [{ namespace: 'x', serviceAccount: 'y' }],
        }],
      }],
    }],
  });
  tt.equal(hex(encoded), hex(authz), 'protobufjs encodes the same bytes');

  const d = decodeAuthorization(decodeMessage(proto.authorization, Uint8Array.from(authz)) as ProtoAuthorization);
  tt.equal(d.ok, true);
  if (!d.ok) return;
  const a = d.value;
  tt.same([a.name, a.namespace, a.scope, a.action, a.dryRun], ['p', 'ns', 'WorkloadSelector', 'Deny', true]);
  tt.equal(a.rules.length, 1);
  tt.equal(a.rules[0]!.length, 1);
  tt.equal(a.rules[0]![0]!.length, 1);
  const m = a.rules[0]![0]![0]!;
  tt.same(m.namespaces, [{ kind: 'presence' }]);
  tt.same(m.notNamespaces, [{ kind: 'prefix', value: 'kube-' }]);
  tt.same(m.principals, [{ kind: 'exact', value: 'td/ns/a/sa/b' }]);
  tt.same(m.notPrincipals, [{ kind: 'suffix', value: '/sa/evil' }]);
  tt.same([m.sourceIps, m.notSourceIps, m.destinationIps, m.notDestinationIps].map((l) => l.map((c) => c.text)),
    [['10.0.0.0/8'], ['10.9.0.0/16'], ['192.168.1.1/32'], ['192.168.2.0/24']]);
  tt.same([m.destinationPorts, m.notDestinationPorts], [[80, 443], [9090]]);
  tt.same([m.serviceAccounts, m.notServiceAccounts], [[{ namespace: 'shop', serviceAccount: 'cart' }], [{ namespace: 'x', serviceAccount: 'y' }]]);
});

t.test('Authorization: unpacked repeated ports (another encoder) decode the same', async (tt) => {
  const match = [...vi(9, 80), ...vi(9, 443)];
  const d = decodeAuthorization(decodeMessage(proto.authorization, Uint8Array.from(ld(5, ld(1, ld(2, match))))) as ProtoAuthorization);
  tt.same(d.ok && d.value.rules[0]![0]![0]!.destinationPorts, [80, 443]);
});

t.test('DeltaDiscoveryRequest: ACK, NACK and initial request fields', async (tt) => {
  const nack = encodeMessage(proto.deltaRequest, {
    type_url: 'T', response_nonce: 'n1', error_detail: { code: 3, message: 'a: bad' },
  });
  // type_url=2, response_nonce=6, error_detail=7 google.rpc.Status{code=1, message=2}
  tt.equal(hex(nack), hex([...ld(2, s('T')), ...ld(6, s('n1')), ...ld(7, vi(1, 3), ld(2, s('a: bad')))]));

  const initial = encodeMessage(proto.deltaRequest, {
    node: buildNode({
      instanceIp: '10.1.2.3', podName: 'p', podNamespace: 'ns', nodeName: 'n',
      proxyMetadata: new Map(), metaJson: new Map<string, unknown>([['J', true]]),
    }),
    type_url: 'T',
    resource_names_subscribe: ['*'],
    resource_names_unsubscribe: ['*'],
    initial_resource_versions: { a: '1' },
  });
  // Struct{fields=1 map<string, Value>}; Value{string_value=3, bool_value=4}
  const field = (k: string, value: number[]) => ld(1, ld(1, s(k)), ld(2, value));
  const expectedNode = ld(1,
    ld(1, s('ztunnel~10.1.2.3~p.ns~ns.svc.cluster.local')), //     Node.id = 1
    ld(3, //                                                       Node.metadata = 3
      field('INSTANCE_IPS', ld(3, s('10.1.2.3'))),
      field('J', vi(4, 1)),
      field('NAME', ld(3, s('p'))),
      field('NAMESPACE', ld(3, s('ns'))),
      field('NODE_NAME', ld(3, s('n')))));
  const decoded = decodeMessage(proto.deltaRequest, initial);
  const fields = (decoded['node'] as { metadata: { fields: Record<string, unknown> } }).metadata.fields;
  tt.same(Object.keys(fields).sort(), ['INSTANCE_IPS', 'J', 'NAME', 'NAMESPACE', 'NODE_NAME']);
  // Map entry order is not fixed on the wire: compare with the node re-encoded in sorted key order.
  const sortedNode = encodeMessage(proto.deltaRequest, {
    node: { id: 'ztunnel~10.1.2.3~p.ns~ns.svc.cluster.local', metadata: { fields: Object.fromEntries(Object.entries(fields).sort()) } },
  });
  tt.equal(hex(sortedNode), hex(expectedNode), 'Node.id = 1, Node.metadata = 3, Struct/Value numbers');
  const rest = [...ld(2, s('T')), ...ld(3, s('*')), ...ld(4, s('*')), ...ld(5, ld(1, s('a')), ld(2, s('1')))];
  tt.ok(hex(initial).endsWith(hex(rest)), 'type_url=2, subscribe=3, unsubscribe=4, initial_resource_versions=5');
});

t.test('DeltaDiscoveryResponse: resources, Any, nonce and removals decode from hand-written bytes', async (tt) => {
  const anyValue = ld(1, ld(20, s('u1'))); // Address{workload{uid}}
  const bytes = [
    ...ld(1, s('sys')), //                                                        system_version_info = 1
    ...ld(2, ld(1, s('v7')), ld(2, ld(1, s('type.googleapis.com/x')), ld(2, anyValue)), ld(3, s('u1'))), // resources = 2 Resource{version=1, resource=2 Any{type_url=1, value=2}, name=3}
    ...ld(4, s('type.googleapis.com/istio.workload.Address')), //               type_url = 4
    ...ld(5, s('nonce-1')), //                                                  nonce = 5
    ...ld(6, s('ns/gone.svc')), //                                              removed_resources = 6
  ];
  const r = decodeMessage(proto.deltaResponse, Uint8Array.from(bytes)) as {
    system_version_info: string; type_url: string; nonce: string; removed_resources: string[];
    resources: { version: string; name: string; resource: { type_url: string; value: Uint8Array } }[];
  };
  tt.same([r.system_version_info, r.type_url, r.nonce, r.removed_resources], ['sys', 'type.googleapis.com/istio.workload.Address', 'nonce-1', ['ns/gone.svc']]);
  tt.same([r.resources[0]!.version, r.resources[0]!.name, r.resources[0]!.resource.type_url], ['v7', 'u1', 'type.googleapis.com/x']);
  const d = decodeAddress(decodeMessage(proto.address, r.resources[0]!.resource.value) as ProtoAddress);
  tt.equal(d.ok && d.value.kind === 'workload' && d.value.workload.uid, 'u1');
});

t.test('IstioCertificateRequest/Response: csr=1, validity_duration=3, metadata=4, cert_chain=1', async (tt) => {
  const req = proto.root.lookupType('istio.v1.auth.IstioCertificateRequest');
  const res = proto.root.lookupType('istio.v1.auth.IstioCertificateResponse');
  const encoded = encodeMessage(req, {
    csr: 'CSR', validity_duration: 86400,
    metadata: { fields: { ImpersonatedIdentity: { stringValue: 'spiffe://td/ns/a/sa/b' } } },
  });
  const expected = [
    ...ld(1, s('CSR')),
    ...vi(3, 86400),
    ...ld(4, ld(1, ld(1, s('ImpersonatedIdentity')), ld(2, ld(3, s('spiffe://td/ns/a/sa/b'))))),
  ];
  tt.equal(hex(encoded), hex(expected));
  const chain = decodeMessage(res, Uint8Array.from([...ld(1, s('LEAF')), ...ld(1, s('ROOTS'))]));
  tt.same(chain['cert_chain'], ['LEAF', 'ROOTS']);
});
