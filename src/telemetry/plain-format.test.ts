// LOG_FORMAT=plain (telemetry.md §4): pino JSON records as ztunnel-style text lines.
import t from 'tap';
import { formatPlain, plainDestination } from './plain-format.js';

t.test('an access record becomes "<time>  INFO access: <msg> k=v ..." with addresses bare and strings quoted', async (t) => {
  const line = formatPlain({
    level: 'info', time: '2026-03-02T10:15:07.412Z', component: 'access',
    'src.addr': '10.244.1.12:51544', 'src.workload': 'frontend-7d9c', 'dst.addr': '10.244.2.45:15008',
    'dst.hbone_addr': '10.244.2.45:8080', direction: 'outbound', bytes_sent: 412, bytes_recv: 1380, duration: '27ms',
    msg: 'connection complete',
  });
  t.equal(line, '2026-03-02T10:15:07.412Z  INFO access: connection complete src.addr=10.244.1.12:51544 src.workload="frontend-7d9c" ' +
    'dst.addr=10.244.2.45:15008 dst.hbone_addr=10.244.2.45:8080 direction="outbound" bytes_sent=412 bytes_recv=1380 duration="27ms"\n');
});

const rows: [string, Record<string, unknown>, string][] = [
  ['levels are upper-case and right-aligned to five columns', { level: 'warn', time: 'T', msg: 'm' }, 'T  WARN m\n'],
  ['ERROR has no padding', { level: 'error', time: 'T', component: 'x', msg: 'm' }, 'T ERROR x: m\n'],
  ['objects are JSON, booleans bare, undefined dropped', { level: 'debug', time: 'T', msg: 'm', o: { a: 1 }, b: true, u: undefined }, 'T DEBUG m o={"a":1} b=true\n'],
  ['quotes inside strings are escaped', { level: 'info', time: 'T', msg: 'm', error: 'say "hi"' }, 'T  INFO m error="say \\"hi\\""\n'],
];
for (const [name, rec, want] of rows) t.test(name, async (t) => t.equal(formatPlain(rec), want));

t.test('the destination rewrites each JSON line and passes through what is not JSON', async (t) => {
  const out: string[] = [];
  const d = plainDestination({ write: (s: string) => out.push(s) });
  d.write('{"level":"info","time":"T","msg":"hello"}\n');
  d.write('not json\n');
  t.same(out, ['T  INFO hello\n', 'not json\n']);
});
