import t from 'tap';
import { buildBaggage, buildForwarded, newTraceparent, parseAuthority, parseBaggage, parseForwardedHost, type BaggageSource } from './headers.js';

const frontend: BaggageSource = {
  clusterId: 'Kubernetes',
  namespace: 'shop',
  workloadType: 'deployment',
  workloadName: 'frontend',
  canonicalName: 'frontend',
  canonicalRevision: 'v2',
  region: '',
  zone: '',
};

const baggageRows: [string, BaggageSource, string][] = [
  ['the hbone.md §3 example request baggage is reproduced exactly', frontend,
    'k8s.cluster.name=Kubernetes,k8s.namespace.name=shop,k8s.deployment.name=frontend,service.name=frontend,service.version=v2'],
  ['region and zone come last, in that order', { ...frontend, region: 'eu-west1', zone: 'eu-west1-b' },
    'k8s.cluster.name=Kubernetes,k8s.namespace.name=shop,k8s.deployment.name=frontend,service.name=frontend,service.version=v2,cloud.region=eu-west1,cloud.availability_zone=eu-west1-b'],
  ['the workload type names the key (cronjob)', { ...frontend, workloadType: 'cronjob', workloadName: 'nightly' },
    'k8s.cluster.name=Kubernetes,k8s.namespace.name=shop,k8s.cronjob.name=nightly,service.name=frontend,service.version=v2'],
  ['an upper-case workload type is lower-cased', { ...frontend, workloadType: 'Pod', workloadName: 'p' },
    'k8s.cluster.name=Kubernetes,k8s.namespace.name=shop,k8s.pod.name=p,service.name=frontend,service.version=v2'],
  ['empty values are left out instead of sent empty', { ...frontend, clusterId: '', canonicalRevision: '' },
    'k8s.namespace.name=shop,k8s.deployment.name=frontend,service.name=frontend'],
  ['a workload with nothing known sends an empty baggage', { clusterId: '', namespace: '', workloadType: '', workloadName: '', canonicalName: '', canonicalRevision: '', region: '', zone: '' }, ''],
];
for (const [name, src, want] of baggageRows) {
  t.test(`baggage: ${name}`, async (t) => t.equal(buildBaggage(src), want));
}

t.test('baggage: parsing the example gives back the source workload values', async (t) => {
  t.same(parseBaggage(buildBaggage({ ...frontend, region: 'r', zone: 'z' })), {
    clusterId: 'Kubernetes', namespace: 'shop', workloadName: 'frontend', workloadType: 'deployment',
    canonicalName: 'frontend', canonicalRevision: 'v2', region: 'r', zone: 'z',
  });
});

t.test('baggage: several headers are merged and unknown keys ignored', async (t) => {
  t.same(parseBaggage(['k8s.cluster.name=c1,foo=bar', 'k8s.job.name=batch,service.version=v9,tenant=x']), {
    clusterId: 'c1', workloadName: 'batch', workloadType: 'job', canonicalRevision: 'v9',
  });
});

t.test('baggage: an empty value counts as unset and items without "=" are skipped', async (t) => {
  t.same(parseBaggage('k8s.namespace.name=,service.name=cart,garbage,cloud.region='), { canonicalName: 'cart' });
});

t.test('baggage: a missing header parses to nothing', async (t) => t.same(parseBaggage(undefined), {}));

t.test('forwarded: IPv4 client with a destination Service, as in the hbone.md §3 example', async (t) => {
  t.equal(buildForwarded({ ip: '10.244.1.12', port: 51544 }, 'cart.shop.svc.cluster.local'), 'for="10.244.1.12:51544";host=cart.shop.svc.cluster.local');
});

t.test('forwarded: IPv6 client is bracketed and host= is left out without a Service', async (t) => {
  t.equal(buildForwarded({ ip: 'fd00:10:244::2d', port: 5000 }), 'for="[fd00:10:244::2d]:5000"');
});

const forwardedHostRows: [string, string | string[] | undefined, string | null][] = [
  ['plain host element', 'for="10.0.0.1:5000";host=cart.shop.svc.cluster.local', 'cart.shop.svc.cluster.local'],
  ['quoted host is unquoted', 'for="10.0.0.1:5000";host="cart.shop.svc.cluster.local"', 'cart.shop.svc.cluster.local'],
  ['key is case-insensitive and order free', 'Host=a.b;for="[::1]:80"', 'a.b'],
  ['no host element', 'for="10.0.0.1:5000"', null],
  ['non-ASCII header is ignored', 'for="10.0.0.1:5000";host=café.example', null],
  ['a semicolon inside quotes does not split', 'for="x;host=evil";host=good', 'good'],
  ['first of several headers is used', ['for="1.1.1.1:1";host=one', 'host=two'], 'one'],
  ['absent header', undefined, null],
];
for (const [name, v, want] of forwardedHostRows) {
  t.test(`forwarded host: ${name}`, async (t) => t.equal(parseForwardedHost(v), want));
}

t.test('traceparent: version 00, 32 + 16 lower-case hex ids from the random source, flags 00', async (t) => {
  let n = 0;
  const tp = newTraceparent((size) => Uint8Array.from({ length: size }, () => n++));
  t.equal(tp, '00-000102030405060708090a0b0c0d0e0f-1011121314151617-00');
  t.equal(tp.length, 55, 'the 55 characters the server reads');
});

t.test('traceparent: two default traceparents differ and match the W3C shape', async (t) => {
  const a = newTraceparent();
  const b = newTraceparent();
  t.match(a, /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
  t.not(a, b);
});

const authorityRows: [string, string | undefined, unknown][] = [
  ['IPv4 socket address', '10.244.2.45:8080', { kind: 'addr', addr: { ip: '10.244.2.45', port: 8080 } }],
  ['bracketed IPv6 socket address', '[fd00:10:244::2d]:8080', { kind: 'addr', addr: { ip: 'fd00:10:244::2d', port: 8080 } }],
  ['IPv6 is canonicalised', '[FD00:0:0::1]:80', { kind: 'addr', addr: { ip: 'fd00::1', port: 80 } }],
  ['hostname and port (double HBONE)', 'cart.shop.svc.cluster.local:80', { kind: 'host', host: 'cart.shop.svc.cluster.local', port: 80 }],
  ['hostname without port is rejected', 'cart.shop.svc.cluster.local', null],
  ['IP without port is rejected', '10.0.0.1', null],
  ['port out of range is rejected', '10.0.0.1:70000', null],
  ['bracketed non-IPv6 is rejected', '[cart]:80', null],
  ['empty authority is rejected', '', null],
  ['missing authority is rejected', undefined, null],
  ['hostname with a path is rejected', 'a/b:80', null],
];
for (const [name, s, want] of authorityRows) {
  t.test(`authority: ${name}`, async (t) => t.same(parseAuthority(s), want));
}
