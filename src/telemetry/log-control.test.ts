// /logging levels (telemetry.md §5): one logger per component, changed at run time, reset.
import t from 'tap';
import { LogControl } from './log-control.js';
import { createLogger } from './logger.js';

function control(spec: string) {
  const lines: Record<string, unknown>[] = [];
  const root = createLogger({ level: 'info', destination: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) } });
  return { logs: new LogControl(root, spec), lines };
}

t.test('the start-up spec sets the default and per-component levels, printed as RUST_LOG does', async (t) => {
  const { logs } = control('warn,access=debug');
  t.equal(logs.describe(), 'warn,access=debug');
  t.equal(logs.component('access').level, 'debug');
  t.equal(logs.component('proxy').level, 'warn');
});

t.test('a global change reaches loggers created before it; a scope change only its component', async (t) => {
  const { logs, lines } = control('info');
  const access = logs.component('access');
  const proxy = logs.component('proxy');
  access.debug('hidden');
  t.ok(logs.apply('access=debug'));
  access.debug('shown');
  proxy.debug('still hidden');
  t.same(lines.map((l) => l['msg']), ['shown']);
  t.equal(logs.describe(), 'info,access=debug');
  t.ok(logs.apply('error'));
  t.equal(proxy.level, 'error');
  t.equal(access.level, 'debug', 'the scope keeps its own level');
  t.ok(logs.apply('off'));
  t.equal(proxy.level, 'silent');
});

const bad = ['loud', 'access:loud', 'access=', '=debug', 'info,,bogus', 'access:debug', 'nosuchscope=debug', 'access=debug,nosuchscope=debug', ' info'];
for (const spec of bad) {
  t.test(`an invalid spec (${JSON.stringify(spec)}) is refused and changes nothing`, async (t) => {
    const { logs } = control('info');
    t.notOk(logs.apply(spec));
    t.equal(logs.describe(), 'info');
  });
}

t.test('reset restores the start-up levels', async (t) => {
  const { logs } = control('info,policy=debug');
  logs.component('access');
  t.ok(logs.apply('trace,access=debug'));
  t.equal(logs.describe(), 'trace,policy=debug,access=debug');
  logs.reset();
  t.equal(logs.describe(), 'info,policy=debug');
  t.equal(logs.component('access').level, 'info');
});

t.test('issue 16 item 7: hundreds of requests naming new scopes keep nothing (each is a 400)', async (t) => {
  const { logs } = control('info');
  logs.component('access');
  for (let i = 0; i < 300; i++) t.notOk(logs.apply(Array.from({ length: 700 }, (_, j) => `s${i}_${j}=debug`).join(',')), `request ${i} refused`, { diagnostic: false });
  t.equal(logs.describe(), 'info', 'no scope kept');
});
