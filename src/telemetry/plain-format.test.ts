// Log lines in Istio ztunnel's layout (telemetry.md §4; istio/ztunnel src/telemetry.rs), both formats,
// field by field.
import t from 'tap';
import { formatJson, formatPlain, istioDestination, istioTime } from './plain-format.js';

const access = {
  level: 'info', time: '2026-03-02T10:15:07.412305Z', component: 'access',
  'src.addr': '10.244.1.12:51544', 'src.workload': 'frontend-7d9c', 'src.namespace': 'shop',
  'src.identity': 'spiffe://cluster.local/ns/shop/sa/frontend', 'src.cluster': 'Kubernetes',
  'dst.addr': '10.244.2.45:15008', 'dst.hbone_addr': '10.244.2.45:8080', 'dst.service': 'cart.shop.svc.cluster.local',
  'dst.workload': 'cart-5f6b', 'dst.namespace': 'shop', 'dst.identity': 'spiffe://cluster.local/ns/shop/sa/cart',
  'dst.cluster': 'Kubernetes', direction: 'outbound', bytes_sent: 412, bytes_recv: 1380, duration: '27ms',
  msg: 'connection complete',
};

t.test('plain: time, lower-case level, scope, message and fields separated by tabs; addresses bare, strings quoted', async (t) => {
  const line = formatPlain(access);
  const [time, level, scope, message, fields, ...rest] = line.slice(0, -1).split('\t');
  t.equal(rest.length, 0, 'five tab-separated columns');
  t.equal(time, '2026-03-02T10:15:07.412305Z');
  t.equal(level, 'info');
  t.equal(scope, 'access');
  t.equal(message, 'connection complete');
  t.same(fields!.split(' '), [
    'src.addr=10.244.1.12:51544', 'src.workload="frontend-7d9c"', 'src.namespace="shop"',
    'src.identity="spiffe://cluster.local/ns/shop/sa/frontend"', 'src.cluster="Kubernetes"',
    'dst.addr=10.244.2.45:15008', 'dst.hbone_addr=10.244.2.45:8080', 'dst.service="cart.shop.svc.cluster.local"',
    'dst.workload="cart-5f6b"', 'dst.namespace="shop"', 'dst.identity="spiffe://cluster.local/ns/shop/sa/cart"',
    'dst.cluster="Kubernetes"', 'direction="outbound"', 'bytes_sent=412', 'bytes_recv=1380', 'duration="27ms"',
  ]);
  t.ok(line.endsWith('\n'));
});

t.test('json: level, time, scope, message first, then the fields in logged order', async (t) => {
  const line = formatJson({ ...access, level: 'error', error: 'http status: 503 Service Unavailable' });
  const o = JSON.parse(line) as Record<string, unknown>;
  t.same(Object.keys(o), [
    'level', 'time', 'scope', 'message', 'src.addr', 'src.workload', 'src.namespace', 'src.identity', 'src.cluster',
    'dst.addr', 'dst.hbone_addr', 'dst.service', 'dst.workload', 'dst.namespace', 'dst.identity', 'dst.cluster',
    'direction', 'bytes_sent', 'bytes_recv', 'duration', 'error',
  ]);
  t.equal(o['level'], 'error');
  t.equal(o['scope'], 'access');
  t.equal(o['message'], 'connection complete');
  t.equal(o['bytes_sent'], 412, 'numbers stay numbers');
});

const rows: [string, Record<string, unknown>, string][] = [
  ['a message without fields still ends its column with a tab', { level: 'warn', time: 'T', component: 'xds', msg: 'm' }, 'T\twarn\txds\tm\t\n'],
  ['fatal is logged as error (Istio has no fatal level)', { level: 'fatal', time: 'T', component: 'ztunnel', msg: 'm' }, 'T\terror\tztunnel\tm\t\n'],
  ['objects are JSON, booleans bare, undefined dropped', { level: 'debug', time: 'T', component: 'x', msg: 'm', o: { a: 1 }, b: true, u: undefined }, 'T\tdebug\tx\tm\to={"a":1} b=true\n'],
  ['quotes inside strings are escaped', { level: 'info', time: 'T', component: 'access', msg: 'm', error: 'say "hi"' }, 'T\tinfo\taccess\tm\terror="say \\"hi\\""\n'],
];
for (const [name, rec, want] of rows) t.test(`plain: ${name}`, async (t) => t.equal(formatPlain(rec), want));

t.test('timestamps are UTC with six fractional digits', async (t) => {
  t.equal(istioTime(Date.UTC(2026, 2, 2, 10, 15, 7, 412) + 0.305), '2026-03-02T10:15:07.412305Z');
  t.match(istioTime(), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
});

t.test('the destination rewrites each JSON record and passes through what is not JSON', async (t) => {
  const out: string[] = [];
  const d = istioDestination('plain', { write: (s: string) => out.push(s) });
  d.write('{"level":"info","time":"T","component":"proxy","msg":"hello"}\n');
  d.write('not json\n');
  t.same(out, ['T\tinfo\tproxy\thello\t\n', 'not json\n']);
});
