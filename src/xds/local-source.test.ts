import t from 'tap';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { appendFile, link, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { ZtunnelError } from '../core/errors.js';
import type { StateBatch } from '../state/batch.js';
import { createLogger } from '../telemetry/logger.js';
import type { LocalConfigProblem, LocalConfigSnapshot } from './local-file.js';
import { LocalConfigSource, type FileLimits, type LocalConfigTransform } from './local-source.js';

const DEBOUNCE_MS = 20;
const WAIT_MS = 30_000; // bound for every wait on an event (a reload parses on a worker thread); never a timing assertion

const y = (...lines: string[]): string => lines.join('\n') + '\n';
const workload = (uid: string, ip: string, extra: string[] = []): string[] => [
  `- uid: ${uid}`, '  namespace: ns', `  workloadIps: ["${ip}"]`, '  services: {}', ...extra,
];
const service = (name: string, port: number): string[] => [
  `- name: ${name}`, '  namespace: ns', `  hostname: ${name}.ns.svc.cluster.local`, '  vips: []', `  ports: {80: ${port}}`,
];
const policy = (name: string, port: number): string[] => [
  `- name: ${name}`, '  namespace: ns', '  scope: Namespace', '  action: Deny', '  dryRun: false', '  rules:', `  - - - destinationPorts: [${port}]`,
];

const V1 = y('workloads:', ...workload('a', '10.0.0.1'), ...workload('b', '10.0.0.2'), 'services:', ...service('cart', 8080));

/** Collects what the source does and lets a test wait for the next event of a kind. */
class Harness {
  readonly batches: StateBatch[] = [];
  readonly applied: LocalConfigSnapshot[] = [];
  readonly failures: (readonly LocalConfigProblem[])[] = [];
  readonly logs: { level: string; msg: string; [k: string]: unknown }[] = [];
  private waiters: { kind: 'applied' | 'failure'; resolve: () => void }[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  readonly sink = { apply: (b: StateBatch): void => void this.batches.push(b) };
  readonly logger = createLogger({ level: 'debug', destination: { write: (s: string) => void this.logs.push(JSON.parse(s)) } });

  options(extra: { transform?: LocalConfigTransform; limits?: Partial<FileLimits> } = {}) {
    return {
      sink: this.sink,
      logger: this.logger,
      debounceMs: DEBOUNCE_MS,
      onApplied: (s: LocalConfigSnapshot) => this.fire('applied', () => this.applied.push(s)),
      onReloadFailure: (p: readonly LocalConfigProblem[]) => this.fire('failure', () => this.failures.push(p)),
      ...extra,
    };
  }

  private fire(kind: 'applied' | 'failure', record: () => void): void {
    record();
    const ready = this.waiters.filter((w) => w.kind === kind);
    this.waiters = this.waiters.filter((w) => w.kind !== kind);
    for (const w of ready) w.resolve();
  }

  /** Resolves on the next event of this kind; rejects after WAIT_MS. */
  next(kind: 'applied' | 'failure'): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${kind} event within ${WAIT_MS} ms`)), WAIT_MS);
      this.timers.add(timer);
      this.waiters.push({ kind, resolve: () => { clearTimeout(timer); this.timers.delete(timer); resolve(); } });
    });
  }

  /** Drops waits nobody needs any more (e.g. the loser of a race) so they do not hold the process. */
  dispose(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.waiters = [];
  }
}

async function tempConfig(t: { teardown(fn: () => unknown): void }, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ztunnel-local-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'local.yaml');
  await writeFile(file, text);
  return file;
}

/** Atomic replace, as editors and ConfigMap updates do it. */
async function replaceFile(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

/** An in-place write can be observed half-done: waits (bounded) until the final text is in force. */
async function writeInPlace(src: LocalConfigSource, h: Harness, file: string, target: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  await writeFile(file, target);
  while (src.rawText() !== target && Date.now() < deadline) {
    await Promise.race([h.next('applied'), h.next('failure')]).catch(() => undefined);
    h.dispose();
  }
}

t.test('the first load applies every resource as an upsert and exposes the snapshot and text', async (t) => {
  const h = new Harness();
  const file = await tempConfig(t, V1);
  const src = new LocalConfigSource({ path: file, ...h.options() });
  await src.start();
  t.teardown(() => src.close());
  t.equal(h.batches.length, 1);
  const b = h.batches[0]!;
  t.same(b.workloads!.upsert.map((w) => w.uid), ['a', 'b']);
  t.same(b.workloads!.remove, []);
  t.same(b.services!.upsert.map((s) => s.name), ['cart']);
  t.same(b.policies, { upsert: [], remove: [] });
  t.same(src.current()!.workloads.map((w) => w.uid), ['a', 'b']);
  t.equal(src.rawText(), V1);
  t.same(src.lastErrors(), []);
  t.equal(h.applied.length, 1, 'onApplied is called for the first load');
});

t.test('a valid change is applied as a diff: changed and new resources upserted, removed ones removed', async (t) => {
  const h = new Harness();
  const file = await tempConfig(t, V1);
  const src = new LocalConfigSource({ path: file, ...h.options() });
  await src.start();
  t.teardown(() => src.close());

  const v2 = y('workloads:', ...workload('a', '10.0.0.1'), ...workload('c', '10.0.0.3'), 'services:', ...service('cart', 9090), 'policies:', ...policy('deny', 9000));
  const applied = h.next('applied');
  await replaceFile(file, v2);
  await applied;

  const b = h.batches.at(-1)!;
  t.same(b.workloads!.upsert.map((w) => w.uid), ['c'], 'unchanged workload "a" is not re-sent');
  t.same(b.workloads!.remove, ['b']);
  t.same(b.services!.upsert.map((s) => [...s.ports]), [[[80, 9090]]], 'the changed service is upserted');
  t.same(b.services!.remove, []);
  t.same(b.policies!.upsert.map((p) => p.name), ['deny']);
  t.same(b.policies!.remove, []);
  t.equal(src.rawText(), v2);

  const v3 = y('services:', ...service('cart', 9090));
  const applied3 = h.next('applied');
  await replaceFile(file, v3);
  await applied3;
  const b3 = h.batches.at(-1)!;
  t.same([...b3.workloads!.remove].sort(), ['a', 'c'], 'workloads removed from the file are removed from state');
  t.same(b3.policies!.remove, ['ns/deny'], 'policies are removed by "<ns>/<name>"');
  t.same(b3.services!.upsert, [], 'the unchanged service is not re-sent');
});

t.test('an invalid change keeps the last good config and reports file:line field: message', async (t) => {
  const h = new Harness();
  const file = await tempConfig(t, V1);
  const src = new LocalConfigSource({ path: file, ...h.options() });
  await src.start();
  t.teardown(() => src.close());

  const failed = h.next('failure');
  await replaceFile(file, y('workloads:', ...workload('a', '10.0.0.1'), 'policies:', ...policy('deny', 70000)));
  await failed;

  t.equal(h.batches.length, 1, 'nothing was applied after the first load');
  t.same(src.current()!.workloads.map((w) => w.uid), ['a', 'b'], 'the last good config stays in force');
  t.equal(src.rawText(), V1);
  const problems = h.failures[0]!;
  t.same(problems.map((p) => [p.file, p.line, p.path, p.message]), [[file, 13, 'policies[0].rules[0][0][0].destinationPorts[0]', '70000 is not a u16']]);
  t.same(src.lastErrors(), problems);
  const logged = h.logs.filter((l) => l.level === 'error').map((l) => l.msg);
  t.ok(logged.includes(`${file}:13 policies[0].rules[0][0][0].destinationPorts[0]: 70000 is not a u16`), 'the problem is logged with file, line and path');

  // Fixing the file applies it and clears the errors.
  const applied = h.next('applied');
  await replaceFile(file, y('workloads:', ...workload('a', '10.0.0.1')));
  await applied;
  t.same(src.lastErrors(), []);
  t.same(h.batches.at(-1)!.workloads!.remove, ['b']);
  t.same(h.batches.at(-1)!.services!.remove, ['ns/cart.ns.svc.cluster.local']);
});

t.test('a file rewritten in place is picked up', async (t) => {
  const h = new Harness();
  const file = await tempConfig(t, V1);
  const src = new LocalConfigSource({ path: file, ...h.options() });
  await src.start();
  t.teardown(() => src.close());
  const target = y('workloads:', ...workload('z', '10.0.0.26'));
  await writeInPlace(src, h, file, target);
  t.same(src.current()!.workloads.map((w) => w.uid), ['z']);
});

t.test('a file replaced by rename (as editors and ConfigMaps do) is picked up, repeatedly', async (t) => {
  const h = new Harness();
  const file = await tempConfig(t, V1);
  const src = new LocalConfigSource({ path: file, ...h.options() });
  await src.start();
  t.teardown(() => src.close());
  for (const uid of ['r1', 'r2', 'r3']) {
    const applied = h.next('applied');
    await replaceFile(file, y('workloads:', ...workload(uid, '10.0.0.9')));
    await applied;
    t.same(src.current()!.workloads.map((w) => w.uid), [uid], `replacement ${uid} is in force`);
  }
});

t.test('a config that links to another file of its directory follows in-place writes of that file', async (t) => {
  const h = new Harness();
  const real = await tempConfig(t, V1);
  const file = join(dirname(real), 'config.yaml');
  await symlink('local.yaml', file);
  const src = new LocalConfigSource({ path: file, ...h.options() });
  await src.start();
  t.teardown(() => src.close());
  const target = y('workloads:', ...workload('linked', '10.0.0.27'));
  await writeInPlace(src, h, real, target);
  t.same(src.current()!.workloads.map((w) => w.uid), ['linked']);
});

t.test('writes to other files of its directory (a log file beside it) do not make it read the config again', async (t) => {
  const h = new Harness();
  const file = await tempConfig(t, V1);
  // The same file under a name in another directory: writing through it changes the config
  // without any event in the watched directory, so only a re-read could pick the change up.
  const elsewhere = await mkdtemp(join(tmpdir(), 'ztunnel-local-link-'));
  t.teardown(() => rm(elsewhere, { recursive: true, force: true }));
  const alias = join(elsewhere, 'alias.yaml');
  await link(file, alias);
  const log = join(dirname(file), 'ztunnel.log');
  await writeFile(log, ''); // created before (a creation is a rename event, which is looked at)
  const src = new LocalConfigSource({ path: file, ...h.options() });
  await src.start();
  t.teardown(() => src.close());
  await writeFile(alias, y('workloads:', ...workload('unseen', '10.0.0.28')));
  for (let i = 0; i < 5; i++) await appendFile(log, `line ${i}\n`);
  // An absence: give a reload triggered by those writes ample time to have applied (debounce,
  // settle, parse), then check nothing was read.
  await delay(DEBOUNCE_MS * 25);
  t.equal(src.rawText(), V1, 'the config in force is still the one first loaded');
  t.equal(h.applied.length, 1, 'no reload was applied');
  // A write of the config file itself is still picked up.
  const target = y('workloads:', ...workload('seen', '10.0.0.29'));
  await writeInPlace(src, h, file, target);
  t.same(src.current()!.workloads.map((w) => w.uid), ['seen']);
});

t.test('a deleted file is a reload failure that keeps the config; the file coming back is applied', async (t) => {
  const h = new Harness();
  const file = await tempConfig(t, V1);
  const src = new LocalConfigSource({ path: file, ...h.options() });
  await src.start();
  t.teardown(() => src.close());
  const failed = h.next('failure');
  await rm(file);
  await failed;
  t.match(h.failures[0]![0]!.message, /cannot read the file \(ENOENT\)/);
  t.same(src.current()!.workloads.map((w) => w.uid), ['a', 'b']);
  const applied = h.next('applied');
  await writeFile(file, V1);
  await applied;
  t.same(src.lastErrors(), []);
  t.same(src.current()!.workloads.map((w) => w.uid), ['a', 'b']);
});

t.test('close() stops watching: later changes are not applied', async (t) => {
  const closedHarness = new Harness();
  const liveHarness = new Harness();
  const file = await tempConfig(t, V1);
  const closed = new LocalConfigSource({ path: file, ...closedHarness.options() });
  const live = new LocalConfigSource({ path: file, ...liveHarness.options() });
  await closed.start();
  await live.start();
  t.teardown(() => live.close());
  await closed.close();

  // The live source shows the change was observable; then give the closed one several debounce
  // periods in which it would have reloaded had it still been watching.
  const applied = liveHarness.next('applied');
  await replaceFile(file, y('workloads:', ...workload('after-close', '10.0.0.5')));
  await applied;
  await new Promise((r) => setTimeout(r, DEBOUNCE_MS * 10));
  t.equal(closedHarness.batches.length, 1, 'only the first load reached the closed source\'s sink');
  t.same(closed.current()!.workloads.map((w) => w.uid), ['a', 'b']);
  t.same(live.current()!.workloads.map((w) => w.uid), ['after-close']);
});

t.test('start() rejects with CONFIG_INVALID listing every problem when the first load is invalid', async (t) => {
  const h = new Harness();
  const file = await tempConfig(t, y('workloads:', '- uid: a', '  workloadIps: [x]', '  services: {}'));
  const src = new LocalConfigSource({ path: file, ...h.options() });
  const e = await src.start().then(() => undefined, (err: unknown) => err);
  t.ok(e instanceof ZtunnelError && e.code === 'CONFIG_INVALID', 'a CONFIG_INVALID error');
  const message = (e as Error).message;
  t.ok(message.includes(`${file}:2 workloads[0]: missing required key "namespace"`), message);
  t.ok(message.includes(`${file}:3 workloads[0].workloadIps[0]: "x" is not an IP address`), message);
  t.equal(h.batches.length, 0, 'nothing is applied');
  t.equal(src.current(), undefined);
  t.equal(src.lastErrors().length, 2);
  t.equal(h.failures.length, 0, 'a failed first load is not counted as a reload failure');
  await src.close();
});

t.test('start() rejects when the file does not exist', async (t) => {
  const h = new Harness();
  const src = new LocalConfigSource({ path: join(tmpdir(), `ztunnel-missing-${process.pid}.yaml`), ...h.options() });
  await t.rejects(src.start(), { code: 'CONFIG_INVALID', message: /ENOENT/ });
});

t.test('inline config (LOCAL_XDS) is applied once and problems name LOCAL_XDS', async (t) => {
  const h = new Harness();
  const src = new LocalConfigSource({ inline: V1, ...h.options() });
  await src.start();
  t.same(h.batches[0]!.workloads!.upsert.map((w) => w.uid), ['a', 'b']);
  t.equal(src.rawText(), V1);
  await src.close();
  const bad = new LocalConfigSource({ inline: 'workloads: 5\n', ...h.options() });
  await t.rejects(bad.start(), { code: 'CONFIG_INVALID', message: /LOCAL_XDS:1 workloads: expected a list/ });
});

t.test('both or neither of path and inline is a configuration error', async (t) => {
  const h = new Harness();
  t.throws(() => new LocalConfigSource({ path: '/x', inline: '', ...h.options() }), { code: 'CONFIG_INVALID' });
  t.throws(() => new LocalConfigSource({ ...h.options() }), { code: 'CONFIG_INVALID' });
});

t.test('the transform hook shapes what is applied, and its errors keep the last good config', async (t) => {
  const h = new Harness();
  const file = await tempConfig(t, V1);
  // A stand-in translator: rejects workloads named "bad", and adds one policy per Istio document.
  const transform: LocalConfigTransform = (snap) => {
    const bad = snap.workloads.find((w) => w.uid === 'bad');
    if (bad) return { ok: false, errors: [{ file, line: 2, path: 'workloads[0]', message: 'rejected by transform', severity: 'error' }] };
    const policies = snap.istioDocuments.map((d, i) => ({
      name: `istio-${i}`, namespace: 'ns', scope: 'Namespace' as const, action: 'Allow' as const, dryRun: false, rules: [],
    }));
    return { ok: true, value: { ...snap, policies: [...snap.policies, ...policies] }, warnings: [] };
  };
  const src = new LocalConfigSource({ path: file, ...h.options({ transform }) });
  await src.start();
  t.teardown(() => src.close());

  const applied = h.next('applied');
  await replaceFile(file, y('workloads:', ...workload('a', '10.0.0.1'), '---', 'apiVersion: security.istio.io/v1', 'kind: AuthorizationPolicy', 'metadata: {name: x, namespace: ns}'));
  await applied;
  t.same(h.batches.at(-1)!.policies!.upsert.map((p) => p.name), ['istio-0'], 'the transformed snapshot is applied');
  t.same(src.current()!.policies.map((p) => p.name), ['istio-0']);

  const failed = h.next('failure');
  await replaceFile(file, y('workloads:', ...workload('bad', '10.0.0.1')));
  await failed;
  t.same(h.failures[0]!.map((p) => p.message), ['rejected by transform']);
  t.same(src.current()!.workloads.map((w) => w.uid), ['a'], 'the last good config stays in force');
});

// Config writes that must not hurt (issue 16 items 8 and 10), on real files.

t.test('a reload waits for the file to settle: a writer\'s half-written file is never read', async (t) => {
  const h = new Harness();
  const file = await tempConfig(t, V1);
  const src = new LocalConfigSource({ path: file, ...h.options({ limits: { settleMs: 300 } }) });
  await src.start();
  t.teardown(() => src.close());
  const v2 = y('workloads:', ...workload('a', '10.0.0.1'), ...workload('c', '10.0.0.3'));
  const cut = v2.indexOf('10.0.0.3') + 4; // inside a quoted scalar: the first half alone is invalid
  const applied = h.next('applied');
  // A slow writer: truncate and write the first half, the rest 50 ms later (the debounce is 20 ms).
  writeFileSync(file, v2.slice(0, cut));
  setTimeout(() => writeFileSync(file, v2), 50);
  await applied;
  t.same(h.applied.at(-1)!.workloads.map((w) => w.uid), ['a', 'c'], 'the whole file is applied');
  t.same(h.failures, [], 'no reload of the partial file was attempted');
});

t.test('an empty or comment-only file on reload is refused like a missing file; the first load may be empty', async (t) => {
  const h = new Harness();
  const file = await tempConfig(t, V1);
  const src = new LocalConfigSource({ path: file, ...h.options() });
  await src.start();
  t.teardown(() => src.close());
  for (const text of ['', '# being regenerated\n', '---\n# nothing yet\n']) {
    const failed = h.next('failure');
    await writeFile(file, text);
    await failed;
    t.match(h.failures.at(-1), [{ line: 0, message: 'the file is empty (no YAML document, or only comments); treated like a missing file' }], JSON.stringify(text));
    t.same(src.current()!.workloads.map((w) => w.uid), ['a', 'b'], 'the last good config stays');
  }
  t.equal(h.batches.length, 1, 'nothing was applied after the first load');

  const h2 = new Harness();
  const empty = await tempConfig(t, '');
  const src2 = new LocalConfigSource({ path: empty, ...h2.options() });
  await src2.start();
  t.teardown(() => src2.close());
  t.same(src2.current()!.workloads, [], 'a first load of an empty file starts with no config');
});

t.test('only a regular file is read: a FIFO, a symlink to /dev/zero and a directory are refused at once', async (t) => {
  const h = new Harness();
  const file = await tempConfig(t, V1);
  const src = new LocalConfigSource({ path: file, ...h.options() });
  await src.start();
  t.teardown(() => src.close());
  const cases: Array<[string, () => Promise<void>, string]> = [
    ['a FIFO', async () => void execFileSync('mkfifo', [file]), 'the path is a FIFO; only a regular file is read'],
    ['a symlink to /dev/zero', async () => symlink('/dev/zero', file), 'the path is a character device; only a regular file is read'],
    ['a directory', async () => void execFileSync('mkdir', [file]), 'the path is a directory; only a regular file is read'],
  ];
  for (const [name, make, message] of cases) {
    await rm(file, { recursive: true, force: true });
    const failed = h.next('failure');
    await make();
    await failed;
    t.match(h.failures.at(-1), [{ line: 0, message }], name);
    t.same(src.current()!.workloads.map((w) => w.uid), ['a', 'b'], `${name}: the last good config stays`);
  }
  // The watch and the reloads still work afterwards (nothing hung on the FIFO).
  await rm(file, { recursive: true, force: true });
  const applied = h.next('applied');
  await writeFile(file, y('workloads:', ...workload('z', '10.0.0.9')));
  await applied;
  t.same(src.current()!.workloads.map((w) => w.uid), ['z']);
});

t.test('a file larger than the size limit is refused without being parsed', async (t) => {
  const h = new Harness();
  const file = await tempConfig(t, V1);
  const src = new LocalConfigSource({ path: file, ...h.options({ limits: { maxBytes: 4096 } }) });
  await src.start();
  t.teardown(() => src.close());
  const big = y('workloads:', ...Array.from({ length: 100 }, (_, i) => workload(`w${i}`, `10.0.1.${i}`)).flat());
  const failed = h.next('failure');
  await replaceFile(file, big);
  await failed;
  t.match(h.failures.at(-1), [{ line: 0, message: `the file is ${Buffer.byteLength(big)} bytes, more than the limit of 4096` }]);
  t.same(src.current()!.workloads.map((w) => w.uid), ['a', 'b']);
});
