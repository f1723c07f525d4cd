// WorkloadProxyManager against real network namespaces (capture.md §6-§7, ports-and-modes.md §4):
// the ZDS handler's lifecycle rules one by one — idempotent Add, netns replacement, snapshot
// reconciliation with Keep, pending retries, readiness and metrics — with real WorkloadProxy
// listeners bound inside the namespaces. Root only.
import { spawnSync } from 'node:child_process';
import { chmodSync, openSync, rmSync } from 'node:fs';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import t, { type Test } from 'tap';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/config.js';
import { LocalCa } from '../../src/identity/local-ca.js';
import { SecretManager } from '../../src/identity/secret-manager.js';
import { WorkloadProxyManager } from '../../src/inpod/workload-proxy-manager.js';
import { loadNativeAddon } from '../../src/platform/native-addon.js';
import { LinuxSocketFactory } from '../../src/platform/linux-socket-factory.js';
import { State } from '../../src/state/state.js';
import { workload } from '../../src/state/test-builders.js';
import { DataPlane } from '../../src/data-plane.js';
import { LogControl } from '../../src/telemetry/log-control.js';
import { MAIN_JS, tempDir } from '../helpers/daemon.js';
import { eventually, netnsAvailable } from './bed.js';
import { createNetns, type Netns } from './netns-fixture.js';

const NODE = 'node-1';

if (netnsAvailable(t)) {
  const addon = (() => {
    const a = loadNativeAddon();
    if (!a.ok) throw a.error;
    return a.value;
  })();
  const configResult = loadConfig({ flags: {}, env: { PROXY_MODE: 'shared', NODE_NAME: NODE, XDS_ADDRESS: '', FAKE_CA: 'true' } });
  if (!configResult.ok) throw new Error(configResult.error.join('; '));
  const config: Config = configResult.value;
  const logger = pino({ level: 'silent' });
  const caDir = tempDir('zt-wpm-');
  t.teardown(() => rmSync(caDir, { recursive: true, force: true }));
  const ca = await LocalCa.open({ stateDir: caDir, ttlMs: 3600_000 });
  const secrets = new SecretManager({ ca, logger });
  t.teardown(() => secrets.close());
  const ns1 = createNetns(t);
  const ns2 = createNetns(t);
  const ns3 = createNetns(t);

  const pods = {
    p1: { uid: 'Kubernetes//Pod/shop/p1', info: { name: 'p1', namespace: 'shop', serviceAccount: 'sa-p1' } },
    p2: { uid: 'Kubernetes//Pod/shop/p2', info: { name: 'p2', namespace: 'shop', serviceAccount: 'sa-p2' } },
  };

  function setup(t: Test, opts: { waitMs?: number; retryMs?: number; withP2?: boolean } = {}) {
    const state = new State();
    const wl = (name: 'p1' | 'p2', ip: string) => workload({ uid: pods[name].uid, name, namespace: 'shop', serviceAccount: `sa-${name}`, node: NODE, workloadIps: [ip] });
    state.apply({ workloads: { upsert: [wl('p1', '10.77.0.1'), ...(opts.withP2 === false ? [] : [wl('p2', '10.77.0.2')])], remove: [] } });
    // OpenMetrics, as app.ts creates it (counters are exposed with `_total`).
    const registry = new (Registry as unknown as new (contentType: string) => Registry)(Registry.OPENMETRICS_CONTENT_TYPE);
    const dataPlane = new DataPlane({
      config,
      workerId: 0,
      state,
      certs: secrets,
      logs: new LogControl(logger, 'info'),
      registry: new Registry(),
      sockets: (netnsFd) => new LinuxSocketFactory(addon, netnsFd !== undefined ? { netnsFd } : {}),
    });
    t.teardown(() => dataPlane.close(0));
    const readiness = { ready: false, pending: () => void (readiness.ready = false), complete: () => void (readiness.ready = true) };
    const manager = new WorkloadProxyManager({
      addon,
      config,
      state,
      // The data plane in this thread (the daemon runs it in worker threads, docs/workers.md).
      dataPlane,
      secrets,
      registry,
      readiness,
      logger,
      drainDeadlineMs: 500,
      ...(opts.waitMs !== undefined ? { localWorkloadWaitMs: opts.waitMs } : {}),
      ...(opts.retryMs !== undefined ? { retryIntervalMs: opts.retryMs } : {}),
    });
    t.teardown(() => manager.close(0));
    const metric = async (name: string) => {
      const line = (await registry.metrics()).split('\n').find((l) => l.startsWith(`${name} `));
      return Number(line?.split(' ')[1]);
    };
    return { state, manager, readiness, metric, wl };
  }

  /** A fresh fd of the netns: the manager owns (and closes) every fd it is given. */
  const fdOf = (ns: Netns) => openSync(`/run/netns/${ns.name}`, 'r');
  const listening = async (ns: Netns, port = 15008) => {
    try {
      const s = await new LinuxSocketFactory(addon, { netnsFd: ns.fd }).connect({ host: '127.0.0.1', port, timeoutMs: 1000 });
      s.destroy();
      return true;
    } catch {
      return false;
    }
  };

  t.test('an Add opens 15001/15006/15008 in the pod netns; the same netns again is an idempotent ACK', async (t) => {
    const { manager, metric } = setup(t);
    manager.connected();
    await manager.add(pods.p1.uid, pods.p1.info, fdOf(ns1));
    for (const port of [15001, 15006, 15008]) t.ok(await listening(ns1, port), `${port} listens inside the pod netns`);
    t.notOk(await listening(ns2), 'nothing in another netns');
    await manager.add(pods.p1.uid, pods.p1.info, fdOf(ns1));
    t.equal(await metric('workload_manager_proxies_started_total'), 1, 'the second Add started nothing');
    t.equal(await metric('workload_manager_active_proxy_count'), 1);
    t.same(manager.workloadState(), { [pods.p1.uid]: { state: 'Up', info: pods.p1.info, connections: { inbound: [], outbound: [] } } }, 'Up, with its (no) live connections as istioctl reads them');
  });

  t.test('an Add for a known uid with a different netns drains the old proxy and starts one in the new netns', async (t) => {
    const { manager, metric } = setup(t);
    manager.connected();
    await manager.add(pods.p1.uid, pods.p1.info, fdOf(ns1));
    t.ok(await listening(ns1));
    await manager.add(pods.p1.uid, pods.p1.info, fdOf(ns2));
    t.ok(await listening(ns2), 'the new netns has the listeners');
    t.ok(await eventually(async () => !(await listening(ns1))), 'the old netns listeners are gone');
    t.equal(await metric('workload_manager_proxies_started_total'), 2);
    t.ok(await eventually(async () => (await metric('workload_manager_proxies_stopped_total')) === 1), 'the old proxy counts as stopped');
    t.equal(await metric('workload_manager_active_proxy_count'), 1);
  });

  t.test('SnapshotSent stops the pods this connection did not name; a Keep names a pod without a netns', async (t) => {
    const { manager, readiness } = setup(t);
    manager.connected();
    await manager.add(pods.p1.uid, pods.p1.info, fdOf(ns1));
    await manager.add(pods.p2.uid, pods.p2.info, fdOf(ns2));
    await manager.snapshotSent();
    t.ok(readiness.ready, 'ready after the first snapshot');
    manager.disconnected();
    t.notOk(readiness.ready, 'pending again when the ZDS stream ends');
    t.ok(await listening(ns1) && (await listening(ns2)), 'proxies keep running while disconnected');
    // Agent restart: it no longer holds p1's netns (Keep) and forgot p2.
    manager.connected();
    await manager.keep(pods.p1.uid);
    await manager.snapshotSent();
    t.ok(readiness.ready, 'ready after the new snapshot');
    t.ok(await listening(ns1), 'the kept pod still has its listeners');
    t.ok(await eventually(async () => !(await listening(ns2))), 'the pod missing from the snapshot was stopped');
    t.same(Object.keys(manager.workloadState()), [pods.p1.uid]);
  });

  t.test('an Add whose workload never appears NACKs "failed to fetch information about local workload", stays Pending and is retried', async (t) => {
    const { manager, readiness, metric, state, wl } = setup(t, { waitMs: 200, retryMs: 200, withP2: false });
    manager.connected();
    await t.rejects(manager.add(pods.p2.uid, pods.p2.info, fdOf(ns3)), /failed to fetch information about local workload/);
    await manager.snapshotSent();
    t.notOk(readiness.ready, 'a pending pod keeps readiness pending after the snapshot');
    t.equal(manager.workloadState()[pods.p2.uid]?.state, 'Pending');
    t.equal(await metric('workload_manager_pending_proxy_count'), 1);
    t.notOk(await listening(ns3), 'no listeners while pending');
    state.apply({ workloads: { upsert: [wl('p2', '10.77.0.2')], remove: [] } });
    t.ok(await eventually(() => manager.workloadState()[pods.p2.uid]?.state === 'Up'), 'a retry starts the proxy once the workload exists');
    t.ok(readiness.ready, 'readiness completes when nothing is pending');
    t.ok(await listening(ns3));
    t.equal(await metric('workload_manager_pending_proxy_count'), 0);
  });

  t.test('Del and close drain the pods; a Del for an unknown uid is a no-op ACK', async (t) => {
    const { manager, metric } = setup(t);
    manager.connected();
    await manager.add(pods.p1.uid, pods.p1.info, fdOf(ns1));
    await manager.add(pods.p2.uid, pods.p2.info, fdOf(ns2));
    await manager.del('Kubernetes//Pod/shop/nobody');
    await manager.del(pods.p2.uid);
    t.ok(await eventually(async () => !(await listening(ns2))), 'the deleted pod is drained');
    t.ok(await listening(ns1), 'the other pod is untouched');
    await manager.close(500);
    t.notOk(await listening(ns1), 'close stops every pod proxy');
    t.equal(await metric('workload_manager_proxies_stopped_total'), 2);
    await t.rejects(manager.add(pods.p1.uid, pods.p1.info, fdOf(ns1)), /shutting down/, 'no Add after close');
  });

  t.test('shared mode without capabilities does not start: exit 1, the hint names CAP_SYS_ADMIN for setns', async (t) => {
    const dir = tempDir('zt-nocaps-');
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    chmodSync(dir, 0o777); // the unprivileged process writes its local CA there
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, MAIN_JS, 'run'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 20_000,
      env: sharedModeEnv(dir),
    });
    t.equal(r.status, 1, 'exit status 1');
    t.match(r.stdout + r.stderr, /setns EPERM[^"]*: entering a pod network namespace \(setns\) needs CAP_SYS_ADMIN: make sure ztunnel has CAP_SYS_ADMIN, CAP_NET_ADMIN and CAP_NET_RAW/);
    t.notMatch(r.stdout, /ztunnel-ts ready/);
  });

  t.test('shared mode as root without CAP_NET_ADMIN and CAP_NET_RAW: SO_MARK fails and the hint names CAP_NET_ADMIN', async (t) => {
    const dir = tempDir('zt-nonetadmin-');
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    // Root keeps every capability but CAP_NET_ADMIN and CAP_NET_RAW (either allows SO_MARK on Linux 5.17+).
    const r = spawnSync('setpriv', ['--bounding-set=-net_admin,-net_raw', '--inh-caps=-net_admin,-net_raw', process.execPath, MAIN_JS, 'run'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 20_000,
      env: sharedModeEnv(dir),
    });
    t.equal(r.status, 1, 'exit status 1');
    t.match(r.stdout + r.stderr, /setsockopt\(SO_MARK\) EPERM[^"]*: setting SO_MARK needs CAP_NET_ADMIN/);
    t.notMatch(r.stdout, /ztunnel-ts ready/);
  });
}

/** Shared mode on a local CA, no istiod, ephemeral admin ports: it stops at the capability check. */
function sharedModeEnv(dir: string): Record<string, string> {
  return {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    LOG_FORMAT: 'json',
    PROXY_MODE: 'shared',
    XDS_ADDRESS: '',
    FAKE_CA: 'true',
    ZTUNNEL_STATE_DIR: `${dir}/ca`,
    INPOD_UDS: `${dir}/ztunnel.sock`,
    ZTUNNEL_ADMIN_ADDR: '127.0.0.1:0',
    ZTUNNEL_STATS_ADDR: '127.0.0.1:0',
    ZTUNNEL_READINESS_ADDR: '127.0.0.1:0',
  };
}
