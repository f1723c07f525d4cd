// staticConfig of /config_dump (telemetry.md §5): the local file as Rust's LocalConfig object.
import t from 'tap';
import { staticConfigObject } from './config-dump.js';

t.test('no local config: empty workloads, policies and services', async (t) => {
  t.same(staticConfigObject(undefined), { workloads: [], policies: [], services: [] });
});

t.test('a ztunnel-form file is echoed as an object with the missing lists empty', async (t) => {
  t.same(staticConfigObject('workloads:\n- uid: x\n  workloadIps: ["10.0.0.1"]\n'), {
    workloads: [{ uid: 'x', workloadIps: ['10.0.0.1'] }],
    policies: [],
    services: [],
  });
});

t.test('Istio documents in the same file are listed apart from the ztunnel-form lists', async (t) => {
  const text = 'services:\n- name: s\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default}\n';
  t.same(staticConfigObject(text), {
    workloads: [],
    policies: [],
    services: [{ name: 's' }],
    istioResources: [{ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default' } }],
  });
});

// --- the shapes Istio's ztunnel prints (its serde Serialize of Workload, Service, Authorization) ---
import { State } from '../state/state.js';
import { policy, ports, service, workload } from '../state/test-builders.js';
import { emptyMatch } from '../policy/model.js';
import { buildConfigDump, decimalSerial, dumpConfig, dumpWorkload, rfc3339Seconds } from './config-dump.js';
import { dumpConnections } from '../proxy/connection-manager.js';
import type { Config } from '../config/config.js';

t.test('a workload: empty strings, false and empty lists left out; services as namespace/hostname', async (t) => {
  const w = dumpWorkload(workload({ uid: 'Kubernetes//Pod/default/a', workloadIps: ['10.0.0.1'], services: new Map([['default/s.default.svc.cluster.local', ports({ 80: 8080 })]]) }));
  for (const k of ['hostname', 'network', 'nativeTunnel', 'authorizationPolicies', 'canonicalName', 'canonicalRevision', 'workloadName', 'locality', 'labels']) t.notOk(k in w, `no ${k}`);
  t.same(w['services'], ['default/s.default.svc.cluster.local']);
  t.match(w, { uid: 'Kubernetes//Pod/default/a', name: 'a', namespace: 'default', protocol: 'HBONE', networkMode: 'Standard', status: 'Healthy', clusterId: 'Kubernetes', capacity: 1 });
  const bare = dumpWorkload(workload({ uid: 'u', nativeTunnel: true, hostname: 'h', network: 'n', applicationTunnel: { protocol: 'PROXY' } }));
  t.match(bare, { nativeTunnel: true, hostname: 'h', network: 'n', applicationTunnel: { protocol: 'PROXY', port: null } });
  t.notOk('services' in bare, 'no services: the key is left out');
});

t.test('services, policies and staged services in Istio\'s shapes, sorted as Istio sorts them', async (t) => {
  const state = new State();
  const presence = { ...emptyMatch(), principals: [{ kind: 'presence' as const }] };
  state.apply({
    workloads: { upsert: [workload({ uid: 'b', services: new Map([['default/gone.default.svc.cluster.local', ports({ 80: 80 })]]) })], remove: [] },
    services: {
      upsert: [
        service({ hostname: 'z.default.svc.cluster.local', cidrVips: [{ network: '', cidr: '10.9.0.0/16' }] }),
        service({
          hostname: 'a.default.svc.cluster.local',
          waypoint: { destination: { kind: 'address', address: { network: '', ip: '10.0.0.9' } }, hboneMtlsPort: 15008 },
          weightedWaypoints: [{ destination: { destination: { kind: 'hostname', namespace: 'default', hostname: 'wp2' }, hboneMtlsPort: 15008 }, weight: 10 }],
        }),
      ],
      remove: [],
    },
    policies: { upsert: [policy({ name: 'p2' }), policy({ name: 'p1', rules: [[[presence]]] })], remove: [] },
  });
  const dump = buildConfigDump({ state, certificates: () => [], staticConfig: () => undefined, config: {}, version: {}, stagedServices: () => state.stagedServices() });
  const svcs = dump['services'] as Record<string, unknown>[];
  t.same(svcs.map((s) => s['hostname']), ['a.default.svc.cluster.local', 'z.default.svc.cluster.local']);
  t.same(svcs[1]!['cidrVips'], [{ network: '', cidr: '10.9.0.0/16' }], 'CIDR VIPs as {network, cidr}');
  t.notOk('cidrVips' in svcs[0]!, 'no CIDR VIPs: left out');
  t.same(svcs[0]!['weightedWaypoints'], [{ destination: { destination: 'default/wp2', hboneMtlsPort: 15008 }, weight: 10 }]);
  t.same(svcs[0]!['waypoint'], { destination: '/10.0.0.9', hboneMtlsPort: 15008 });
  const pols = dump['policies'] as Record<string, any>[];
  t.same(pols.map((p) => p['name']), ['p1', 'p2']);
  t.same(pols[0]!['rules'], [[[{ principals: [{ Presence: [] }] }]]], 'a presence match is {"Presence": []}');
  t.same(dump['stagedServices'], { 'default/gone.default.svc.cluster.local': { b: { workloadUid: 'b', port: { 80: 80 }, status: 'Healthy' } } });
});

t.test('certificate serial numbers in decimal and times in whole seconds', async (t) => {
  t.equal(decimalSerial('0A1B'), '2587');
  t.equal(decimalSerial('7F:FF:FF:FF:FF:FF:FF:FF:FF'), '2361183241434822606847', 'beyond 2^53 exactly');
  t.equal(rfc3339Seconds(new Date('2026-12-06T03:04:05.678Z')), '2026-12-06T03:04:05Z');
});

t.test('config: map-valued settings with their values, headers as pairs, no token', async (t) => {
  const config = {
    proxyMode: 'shared', authToken: 'literal-secret',
    xdsHeaders: new Map([['authorization', 'Bearer literal-secret'], ['x-tenant', 'blue']]),
    caHeaders: new Map([['x-session-token', 'literal-secret']]),
    proxyMetadata: new Map([['TEAM', 'payments']]),
    metaJson: new Map([['LABELS', { app: 'x' }]]),
  } as Partial<Config>;
  const out = dumpConfig(config);
  t.same(out['xdsHeaders'], [['authorization', '<redacted>'], ['x-tenant', 'blue']]);
  t.same(out['caHeaders'], [['x-session-token', '<redacted>']]);
  t.same(out['proxyMetadata'], { TEAM: 'payments' });
  t.same(out['metaJson'], { LABELS: { app: 'x' } });
  t.notMatch(JSON.stringify(out), 'literal-secret');
});

t.test('connections as istioctl reads them: inbound and outbound with src, originalDst, actualDst, protocol', async (t) => {
  const conn = (d: Record<string, unknown>) => ({ id: 1, startedAtMs: 0, clientToServerBytes: 0, serverToClientBytes: 0, description: d as never });
  const out = dumpConnections([
    conn({ direction: 'inbound', srcAddr: { ip: '10.0.0.1', port: 5000 }, srcIdentity: { trustDomain: 'td', namespace: 'ns', serviceAccount: 'sa' }, dstAddr: { ip: '10.0.0.2', port: 15008 }, hboneAddr: '10.0.0.2:8080', mtls: true }),
    conn({ direction: 'inbound', srcAddr: { ip: '10.0.0.3', port: 5001 }, dstAddr: { ip: '10.0.0.2', port: 8080 }, mtls: false }),
    conn({ direction: 'outbound', srcAddr: { ip: '10.0.0.2', port: 6000 }, originalDst: { ip: '10.96.0.1', port: 80 }, dstAddr: { ip: '10.0.0.5', port: 15008 }, mtls: true }),
  ]);
  t.same(out, {
    inbound: [
      { src: '10.0.0.1:5000', originalDst: null, actualDst: '10.0.0.2:8080', protocol: 'HBONE' },
      { src: '10.0.0.3:5001', originalDst: null, actualDst: '10.0.0.2:8080', protocol: 'TCP' },
    ],
    outbound: [{ src: '10.0.0.2:6000', originalDst: '10.96.0.1:80', actualDst: '10.0.0.5:15008', protocol: 'HBONE' }],
  });
});

t.test('a file sharing one anchor among many workloads is shown with the aliases expanded (issue 16 item 9)', async (t) => {
  const lines = ['workloads:'];
  for (let i = 0; i < 300; i++) lines.push(`- uid: w${i}`, i === 0 ? '  labels: &l {app: a}' : '  labels: *l');
  const dump = staticConfigObject(lines.join('\n') + '\n') as { workloads: { uid: string; labels: unknown }[] };
  t.equal(dump.workloads.length, 300);
  t.same(dump.workloads[299], { uid: 'w299', labels: { app: 'a' } });
});

t.test('a document whose aliases expand without bound is named, not a thrown error', async (t) => {
  const bomb = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i < 9; i++) bomb.push(`a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ')}]`);
  const dump = staticConfigObject('workloads: []\n---\n' + bomb.join('\n') + '\n') as { unreadableDocuments?: string[] };
  t.equal(dump.unreadableDocuments?.length, 1);
  t.match(dump.unreadableDocuments?.[0], /^line 2: .*alias/i);
});
