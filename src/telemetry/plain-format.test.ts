// Log lines in Istio ztunnel's layout (telemetry.md §4; istio/ztunnel src/telemetry.rs), both formats,
// field by field.
import t from 'tap';
import { LogControl } from './log-control.js';
import { createLogger, logFields } from './logger.js';
import { LINE_BATCH_BYTES, batchLines, formatJson, formatPlain, istioDestination, istioTime } from './plain-format.js';

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

t.test('timestamps of one second share its formatted prefix, and the next second gets its own', async (t) => {
  const base = Date.UTC(2026, 11, 31, 23, 59, 59);
  t.equal(istioTime(base + 0.001), '2026-12-31T23:59:59.000001Z');
  t.equal(istioTime(base + 999.999), '2026-12-31T23:59:59.999999Z');
  t.equal(istioTime(base + 999.9996), '2027-01-01T00:00:00.000000Z', 'rounding to the microsecond can carry into the next second');
  t.equal(istioTime(base + 1000 + 12.5), '2027-01-01T00:00:00.012500Z');
  t.equal(istioTime(base - 1000 + 7), '2026-12-31T23:59:58.007000Z', 'an earlier second after a later one');
});

t.test('batched lines: written in order, whole, at most 4096 bytes a write unless one line is longer', async (t) => {
  const writes: string[] = [];
  const due: Array<() => void> = [];
  const b = batchLines({ write: (s: string) => writes.push(s) }, (fn) => due.push(fn));
  const line = (i: number, n = 100) => `${String(i).padStart(4, '0')}${'x'.repeat(n - 5)}\n`;
  for (let i = 0; i < 100; i++) b.write(line(i));
  t.equal(due.length, 1, 'one timer for the lines pending together');
  t.ok(writes.length > 0 && writes.every((w) => Buffer.byteLength(w) <= LINE_BATCH_BYTES && w.endsWith('\n')), 'full batches written at once, whole lines');
  due.shift()!();
  t.equal(writes.join(''), Array.from({ length: 100 }, (_, i) => line(i)).join(''), 'every line once, in order');
  writes.length = 0;
  b.write(line(1, 5000));
  b.flush();
  t.same(writes, [line(1, 5000)], 'a line longer than a batch is written alone');
  writes.length = 0;
  const wide = `${'é'.repeat(1500)}\n`; // 1,501 characters, 3,001 bytes
  b.write(wide);
  b.write(wide);
  b.flush();
  t.same(writes, [wide, wide], 'batches are counted in bytes, not characters');
  b.flush();
  t.equal(writes.length, 2, 'nothing pending, nothing written');
});

t.test('logFields writes the line pino would, for both formats and any level', async (t) => {
  for (const format of ['plain', 'json'] as const) {
    const viaPino: string[] = [];
    const direct: string[] = [];
    const fixed = { time: '' };
    const make = (out: string[]) => new LogControl(createLogger({ level: 'info', destination: istioDestination(format, { write: (s: string) => out.push(s) }) }), 'info').component('access');
    const a = make(viaPino);
    const b = make(direct);
    const fields = () => ({ 'src.addr': '10.0.0.1:1234', 'src.workload': 'a "quoted" \\ name', 'dst.addr': '[fd00::1]:15008', direction: 'outbound', bytes_sent: 12, bytes_recv: 0, duration: '3ms', ok: true });
    a.info(fields(), 'connection complete');
    logFields(b, 'info', fields(), 'connection complete');
    a.error({ ...fields(), error: 'über "x"' }, 'connection complete');
    logFields(b, 'error', { ...fields(), error: 'über "x"' }, 'connection complete');
    logFields(b, 'debug', fields(), 'not written at info');
    const strip = (l: string) => l.replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/, fixed.time);
    t.same(direct.map(strip), viaPino.map(strip), format);
    t.equal(direct.length, 2);
  }
});
