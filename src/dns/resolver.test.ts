import t from 'tap';
import { State } from '../state/state.js';
import { ports, service, workload } from '../state/test-builders.js';
import { aliasesOf, kubeFqdnsOf, kubeSearchDomains, resolveQuestion, trimDomain, wildcardsOf, type ResolverSettings } from './resolver.js';

const CD = 'cluster.local';
const settings: ResolverSettings = { clusterDomain: CD, ipv6Enabled: true, searchDomains: (w) => kubeSearchDomains(w.namespace, CD) };
const client = workload({ uid: 'c//Pod/ns1/client', namespace: 'ns1', workloadIps: ['10.0.0.1'] });
const clientNs2 = workload({ uid: 'c//Pod/ns2/client', namespace: 'ns2', workloadIps: ['10.0.0.2'] });
const otherNet = workload({ uid: 'c//Pod/ns1/far', namespace: 'ns1', network: 'nw2', workloadIps: ['10.9.0.1'] });

const podA = workload({ uid: 'c//Pod/ns1/a', namespace: 'ns1', workloadIps: ['10.1.0.1', 'fd00::1'], services: new Map([['ns1/headless.ns1.svc.cluster.local', ports({ 80: 80 })], ['ns1/headless4.ns1.svc.cluster.local', ports({ 80: 80 })]]) });
const podB = workload({ uid: 'c//Pod/ns1/b', namespace: 'ns1', workloadIps: ['10.1.0.2'], services: new Map([['ns1/headless.ns1.svc.cluster.local', ports({ 80: 80 })], ['ns1/headless4.ns1.svc.cluster.local', ports({ 80: 80 })]]) });

const state = new State();
state.apply({
  workloads: { upsert: [podA, podB], remove: [] },
  services: {
    upsert: [
      service({ hostname: 'web.ns1.svc.cluster.local', name: 'web', namespace: 'ns1', vips: [{ network: '', ip: '10.96.0.10' }, { network: '', ip: 'fd00:96::10' }] }),
      service({ hostname: 'web.ns2.svc.cluster.local', name: 'web', namespace: 'ns2', vips: [{ network: '', ip: '10.96.0.20' }] }),
      service({ hostname: 'v4only.ns1.svc.cluster.local', name: 'v4only', namespace: 'ns1', vips: [{ network: '', ip: '10.96.0.11' }, { network: '', ip: 'fd00:96::11' }], ipFamilies: 'IPv4' }),
      service({ hostname: 'remote.ns1.svc.cluster.local', name: 'remote', namespace: 'ns1', vips: [{ network: 'nw2', ip: '10.96.0.12' }] }),
      service({ hostname: 'headless.ns1.svc.cluster.local', name: 'headless', namespace: 'ns1', vips: [] }),
      service({ hostname: 'headless4.ns1.svc.cluster.local', name: 'headless4', namespace: 'ns1', vips: [], ipFamilies: 'IPv4' }),
      service({ hostname: 'api.example.com', name: 'api', namespace: 'ns1', vips: [{ network: '', ip: '240.240.0.1' }, { network: '', ip: '2001:2::1' }] }),
      service({ hostname: 'novip.example.com', name: 'novip', namespace: 'ns1', vips: [] }),
      service({ hostname: '*.wild.example.com', name: 'wild', namespace: 'ns1', vips: [{ network: '', ip: '240.240.0.2' }] }),
      service({ hostname: 'private.ns2.svc.cluster.local', name: 'private', namespace: 'ns2', vips: [{ network: '', ip: '10.96.0.30' }], visibility: 'Namespace' }),
      service({ hostname: 'shared.example.com', name: 'shared', namespace: 'ns3', canonical: false, vips: [{ network: '', ip: '240.240.0.3' }] }),
      service({ hostname: 'shared.example.com', name: 'shared', namespace: 'ns4', canonical: false, vips: [{ network: '', ip: '240.240.0.4' }] }),
    ],
    remove: [],
  },
});

type Row = { name: string; q: string; type?: string; from?: typeof client; s?: Partial<ResolverSettings>; want: 'forward' | string[] };

const rows: Row[] = [
  { name: 'a short Service name resolves in the client namespace', q: 'web', want: ['web A 10.96.0.10'] },
  { name: 'the same short name from another namespace gets that namespace\'s Service', q: 'web', from: clientNs2, want: ['web A 10.96.0.20'] },
  { name: 'the FQDN resolves to the VIP', q: 'web.ns1.svc.cluster.local', want: ['web.ns1.svc.cluster.local A 10.96.0.10'] },
  { name: 'an FQDN with a trailing dot resolves the same', q: 'web.ns1.svc.cluster.local.', want: ['web.ns1.svc.cluster.local A 10.96.0.10'] },
  { name: '<svc>.<ns> expands to the FQDN', q: 'web.ns2', want: ['web.ns2 A 10.96.0.20'] },
  { name: '<svc>.<ns>.svc expands to the FQDN', q: 'web.ns2.svc', want: ['web.ns2.svc A 10.96.0.20'] },
  { name: 'AAAA of a dual-stack Service answers the IPv6 VIP', q: 'web', type: 'AAAA', want: ['web AAAA fd00:96::10'] },
  { name: 'a search-domain form is answered with a CNAME to the stripped name', q: 'web.ns1.svc.cluster.local.ns1.svc.cluster.local', want: ['web.ns1.svc.cluster.local.ns1.svc.cluster.local CNAME web.ns1.svc.cluster.local', 'web.ns1.svc.cluster.local A 10.96.0.10'] },
  { name: 'a short name with the client search domain appended resolves without a CNAME', q: 'web.ns1.svc.cluster.local', want: ['web.ns1.svc.cluster.local A 10.96.0.10'] },
  { name: 'an external host with its search domain appended gets a CNAME', q: 'api.example.com.ns1.svc.cluster.local', want: ['api.example.com.ns1.svc.cluster.local CNAME api.example.com', 'api.example.com A 240.240.0.1'] },
  { name: 'an IPv4-only Service answers AAAA with no records', q: 'v4only', type: 'AAAA', want: [] },
  { name: 'an IPv4-only Service answers A', q: 'v4only', want: ['v4only A 10.96.0.11'] },
  { name: 'with IPv6 disabled AAAA has no records', q: 'web', type: 'AAAA', s: { ipv6Enabled: false }, want: [] },
  { name: 'a VIP on another network is not returned to this client', q: 'remote', want: [] },
  { name: 'a VIP on the client network is returned', q: 'remote', from: otherNet, want: ['remote A 10.96.0.12'] },
  { name: 'a headless Service answers its endpoint IPs', q: 'headless', want: ['headless A 10.1.0.1', 'headless A 10.1.0.2'] },
  { name: 'a headless Service answers AAAA with the endpoints that have one', q: 'headless', type: 'AAAA', want: ['headless AAAA fd00::1'] },
  { name: 'an IPv4-only headless Service answers no AAAA even for dual-stack pods', q: 'headless4', type: 'AAAA', want: [] },
  { name: 'a ServiceEntry host with an auto-allocated VIP resolves', q: 'api.example.com', want: ['api.example.com A 240.240.0.1'] },
  { name: 'a ServiceEntry host answers AAAA from its IPv6 VIP', q: 'api.example.com', type: 'AAAA', want: ['api.example.com AAAA 2001:2::1'] },
  { name: 'a host without VIP outside .svc is forwarded', q: 'novip.example.com', want: 'forward' },
  { name: 'a wildcard ServiceEntry answers a matching name without a CNAME', q: 'x.wild.example.com', want: ['x.wild.example.com A 240.240.0.2'] },
  { name: 'an unknown name is forwarded', q: 'example.org', want: 'forward' },
  { name: 'a record type other than A/AAAA is forwarded', q: 'web.ns1.svc.cluster.local', type: 'SRV', want: 'forward' },
  { name: 'a namespace-visible Service is not answered to another namespace', q: 'private.ns2.svc.cluster.local', want: 'forward' },
  { name: 'a namespace-visible Service is answered in its namespace', q: 'private', from: clientNs2, want: ['private A 10.96.0.30'] },
  { name: 'without a client-namespace or canonical match the first Service wins', q: 'shared.example.com', want: ['shared.example.com A 240.240.0.3'] },
  { name: 'PREFERED_SERVICE_NAMESPACE breaks the tie', q: 'shared.example.com', s: { preferedServiceNamespace: 'ns4' }, want: ['shared.example.com A 240.240.0.4'] },
  { name: 'pod hostnames are not answered (forwarded, as Istio)', q: 'a.headless.ns1.svc.cluster.local', want: 'forward' },
  { name: 'names are matched case-insensitively and answered lower-case, as Istio does', q: 'WEB.ns1.svc.cluster.local', want: ['web.ns1.svc.cluster.local A 10.96.0.10'] },
];

for (const r of rows) {
  t.test(r.name, async (t) => {
    const res = resolveQuestion({ name: r.q, type: r.type ?? 'A' }, state, r.from ?? client, { ...settings, ...r.s }, (x) => x.sort());
    if (r.want === 'forward') {
      t.equal(res.kind, 'forward');
      return;
    }
    t.equal(res.kind, 'answer');
    if (res.kind !== 'answer') return;
    t.same(res.records.map((x) => `${x.name} ${x.type} ${x.data}`), r.want);
    for (const x of res.records) t.equal(x.ttl, 30, 'TTL 30 s');
  });
}

t.test('name helpers', async (t) => {
  t.same(wildcardsOf('a.b.c'), ['a.b.c', '*.b.c', '*.c']);
  t.same(kubeFqdnsOf('svc', 'ns.svc.cluster.local', CD), ['svc.ns.svc.cluster.local']);
  t.same(kubeFqdnsOf('a.b', 'ns.svc.cluster.local', CD), ['a.b.svc.cluster.local', 'a.b.ns.svc.cluster.local']);
  t.same(kubeFqdnsOf('a.b.svc', 'ns.svc.cluster.local', CD), ['a.b.svc.cluster.local', 'a.b.svc.svc.cluster.local']);
  t.same(kubeFqdnsOf('p.sub.ns', 'ns.svc.cluster.local', CD), ['p.sub.ns.svc.cluster.local']);
  t.same(kubeFqdnsOf('p.sub.ns.svc', 'ns.svc.cluster.local', CD), ['p.sub.ns.svc.cluster.local']);
  t.same(kubeFqdnsOf('a.b.c.d.e', 'ns.svc.cluster.local', CD), []);
  t.equal(trimDomain('name.ns.svc.cluster.local', 'svc.cluster.local'), 'name.ns');
  t.equal(trimDomain('name.ns.other.domain', 'svc.cluster.local'), undefined);
  t.equal(trimDomain('svc.cluster.local', 'svc.cluster.local'), undefined, 'nothing left: no trim');
  t.same(aliasesOf('web', client, settings).map((a) => a.name), ['web', 'web.ns1.svc.cluster.local']);
});
