// Memory of a running daemon (docs/memory.md), on two real daemons carrying a tunneled connection:
// each data-plane worker loads only the data plane (never the CLI parser, the xDS client, the
// admin servers, YAML, the local CA or a certificate library), and once start-up and the first
// traffic settled every thread reclaims its heap and the main thread releases the node binary's start-up pages, unless
// ZTUNNEL_TS_RELEASE_STARTUP_PAGES=false.
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { LocalCa } from '../../src/identity/local-ca.js';
import { REPO_ROOT, dedicatedEnv, randomLoopback, startDaemon, tempDir, type Daemon, type LogLine } from '../helpers/daemon.js';
import { roundTrip, socks5Connect, startEchoServer } from '../helpers/servers.js';

const A = randomLoopback();
const B = randomLoopback();
const dir = tempDir();
const echo = await startEchoServer(B);
t.teardown(() => echo.close());
const configPath = join(dir, 'mesh.yaml');
writeFileSync(
  configPath,
  `workloads:
- {uid: "Kubernetes//Pod/shop/a-pod", name: a-pod, namespace: shop, serviceAccount: sa-a, trustDomain: cluster.local, workloadIps: ["${A}"], protocol: HBONE, services: {}}
- {uid: "Kubernetes//Pod/shop/b-pod", name: b-pod, namespace: shop, serviceAccount: sa-b, trustDomain: cluster.local, workloadIps: ["${B}"], protocol: HBONE, services: {}}
`,
);
await LocalCa.open({ stateDir: join(dir, 'ca'), ttlMs: 24 * 3600_000 });
const moduleLog = join(dir, 'modules');
mkdirSync(moduleLog);
const preload = pathToFileURL(join(REPO_ROOT, 'dist', 'test', 'helpers', 'module-log.js')).href;

const env = (pod: string, sa: string, ip: string, extra: Record<string, string> = {}) =>
  dedicatedEnv({ workloadInfo: `shop/${pod}/${sa}`, ip, config: configPath, stateDir: join(dir, 'ca'), extra: { RUST_LOG: 'info,memory=debug', ...extra } });

// A carries the module log; B runs with the page release turned off.
const [a, b] = await Promise.all([
  startDaemon({ name: 'A', env: env('a-pod', 'sa-a', A, { NODE_OPTIONS: `--import ${preload}`, ZTUNNEL_TEST_MODULE_LOG: moduleLog }) }),
  startDaemon({ name: 'B', env: env('b-pod', 'sa-b', B, { ZTUNNEL_TS_RELEASE_STARTUP_PAGES: 'false' }) }),
]);
t.teardown(async () => {
  await Promise.all([a.stop(), b.stop()]);
});
const workers = (d: Daemon) => Number(d.logs.find((l) => l.msg === 'data-plane workers started')?.['workers']);

const reclaimed = (d: Daemon, reason: string, worker?: number) =>
  d.waitForLog((l: LogLine) => l.msg === 'memory reclaimed' && l['reason'] === reason && l['worker'] === worker, 30_000);

/** Every thread of `d` logged a reclaim for `reason` (waits for each, event-driven). */
async function allReclaimed(d: Daemon, reason: string): Promise<LogLine[]> {
  const lines = [await reclaimed(d, reason)];
  for (let w = 0; w < workers(d); w++) lines.push(await reclaimed(d, reason, w));
  return lines;
}

// Start-up settles first; then one tunneled connection A → B → echo (the first traffic of both).
const startup = [await allReclaimed(a, 'startup'), await allReclaimed(b, 'startup')];
const [host, port] = a.addresses['socks5']!.split(':');
const s = await socks5Connect({ host: host!, port: Number(port) }, { host: B, port: echo.port });
const echoed = await roundTrip(s, Buffer.from('ping'));
s.destroy();
t.equal(echoed.data.toString(), 'ping', 'the tunnel works');

t.test('every thread reclaims its heap after start-up and after the first traffic', async (t) => {
  for (const [i, d] of [a, b].entries()) {
    const n = workers(d);
    t.ok(n >= 1, `${d.name} runs ${n} workers`);
    t.equal(startup[i]!.length, n + 1, `${d.name}: start-up reclaim in the main thread and in each worker`);
    const first = await allReclaimed(d, 'first-traffic');
    t.equal(first.length, n + 1, `${d.name}: first-traffic reclaim in the main thread and in each worker`);
    // Start-up leaves garbage and a grown young generation: every thread's heap shrinks. After the
    // first traffic a thread may have little to give back (a compacting collection can even take
    // a page more), so only a sane size is asserted there.
    for (const l of startup[i]!) t.ok(Number(l['heapAfter']) > 0 && Number(l['heapAfter']) < Number(l['heapBefore']), `${d.name} ${l['worker'] ?? 'main'} startup: heap ${l['heapBefore']} → ${l['heapAfter']}`);
    for (const l of first) t.ok(Number(l['heapAfter']) > 0 && Number(l['heapAfter']) <= Number(l['heapBefore']) + 4 * 1024 * 1024, `${d.name} ${l['worker'] ?? 'main'} first-traffic: heap ${l['heapBefore']} → ${l['heapAfter']}`);
  }
});

t.test('the main thread releases the node binary\'s start-up pages, unless turned off', async (t) => {
  await reclaimed(a, 'first-traffic');
  await reclaimed(b, 'first-traffic');
  const released = a.logs.filter((l) => l.msg === 'start-up pages released');
  t.equal(released.length, 1, 'A: once, at start-up (the pages the first traffic maps stay)');
  for (const l of released) t.ok(Number(l['mappings']) >= 2 && Number(l['residentBytes']) > 0, `A: ${l['mappings']} mappings, ${l['residentBytes']} bytes`);
  // B's first-traffic reclaim is logged after the release would have been (same synchronous step).
  t.equal(b.logs.filter((l) => /start-up pages/.test(String(l.msg))).length, 0, 'B (ZTUNNEL_TS_RELEASE_STARTUP_PAGES=false): none');
});

t.test('a data-plane worker loads only the data plane', async (t) => {
  const files = readdirSync(moduleLog).sort();
  const byThread = new Map(files.map((f) => [Number(/thread-(\d+)/.exec(f)![1]), readFileSync(join(moduleLog, f), 'utf8').split('\n').filter(Boolean)]));
  const main = byThread.get(0) ?? [];
  // Data-plane workers only (the local config file is parsed in a short-lived thread of its own).
  const workerLists = [...byThread].filter(([id, list]) => id !== 0 && list.some((u) => u.endsWith('/dist/src/data-plane-worker.js')));
  t.equal(workerLists.length, workers(a), 'one module list per data-plane worker');
  // The control plane, as the main thread shows (the log sees what it must not find in workers).
  const controlOnly: [string, RegExp][] = [
    ['yargs (command line; parsed on a short-lived thread of its own)', /\/node_modules\/yargs\//],
    ['yaml (config files)', /\/node_modules\/yaml\//],
    ['the xDS / local config sources', /\/dist\/src\/xds\//],
    ['the admin, metrics and readiness servers', /\/dist\/src\/admin\//],
    ['the local CA and CA clients', /\/dist\/src\/identity\/(local-ca|istio-ca-client|ca-client|secret-manager)\.js/],
    ['the control plane', /\/dist\/src\/control-plane\.js/],
    ['the DNS proxy', /\/dist\/src\/dns\//],
    // A worker reads peer leaves' BasicConstraints with Node's OpenSSL (tls/verify.ts, the native addon).
    ['@peculiar/x509 with its ASN.1 packages, tsyringe and reflect-metadata', /\/node_modules\/(@peculiar\/|tsyringe\/|reflect-metadata\/|asn1js\/)/],
  ];
  for (const [what, re] of controlOnly) {
    if (what.startsWith('the xDS') || what.startsWith('the admin') || what.startsWith('the control') || what.startsWith('@peculiar')) {
      t.ok(main.some((u) => re.test(u)), `main thread loads ${what}`);
    }
    for (const [id, list] of workerLists) t.notOk(list.find((u) => re.test(u)), `worker thread ${id} does not load ${what}`);
  }
  t.notOk(main.find((u) => /\/node_modules\/yargs\//.test(u)), 'the main thread does not load yargs either');
  const cliThread = [...byThread].find(([, list]) => list.some((u) => u.endsWith('/dist/src/cli-args-worker.js')));
  t.ok(cliThread?.[1].some((u) => /\/node_modules\/yargs\//.test(u)), 'the command line was parsed with yargs on its own thread');
});
