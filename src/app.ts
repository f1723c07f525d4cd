// Composition root (docs/design.md §2): the control plane (control-plane.ts, main thread), the data
// plane (N worker threads running data-plane.ts, docs/workers.md) and the lifecycle
// (lifecycle.ts: readiness, drain). This file wires them in order (ports-and-modes.md §4–§5);
// it decides nothing else.
import type { Config } from './config/config.js';
import { formatIdentity, type Identity } from './core/spiffe.js';
import { ControlPlane } from './control-plane.js';
import { DataPlaneWorkers } from './data-plane-workers.js';
import type { SharedMode } from './inpod/shared-mode.js';
import { createDnsDeps, dumpDnsDeps, startDnsProxy } from './dns/dns-proxy.js';
import type { DnsServer } from './dns/dns-server.js';
import { PlainSocketFactory } from './platform/plain-socket-factory.js';
import { IdleReclaimer, MemoryTrimmer, reclaimThreadMemory, releaseExecutablePages } from './platform/memory.js';
import { bindSelfProxy } from './inpod/self-proxy.js';
import { listenerError } from './config/listener-error.js';
import { ZtunnelError } from './core/errors.js';
import type { WorkloadProxy } from './proxy/workload-proxy.js';
import { ConnectionRecorder, snapshotConnection } from './telemetry/connection-record.js';
import { Lifecycle } from './lifecycle.js';
import type { Readiness } from './admin/readiness.js';
import { basicConstraintsReader, loadNativeAddon } from './platform/native-addon.js';
import { readBasicConstraintsWith } from './tls/verify.js';
import { LinuxSocketFactory } from './platform/linux-socket-factory.js';
import { transparentMode } from './platform/socket-factory.js';
import type { ProxySpec } from './proxy/proxy-spec.js';
import type { ListenerKind, ListenerSpec } from './proxy/workload-proxy.js';
import type { State } from './state/state.js';
import { identityOf } from './state/workload-identity.js';
import type { Logger } from './telemetry/logger.js';

export { VERSION, embeddedDefaultConfigPath, readVersionFile } from './control-plane.js';

export interface AppOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** Environment read for test-only switches (ZTUNNEL_TS_TEST_WORKER_CRASH); default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export interface RunningApp {
  readonly readiness: Readiness;
  readonly state: State;
  /** Actual bound addresses (listeners may use port 0 in tests). */
  readonly addresses: Record<string, string | undefined>;
  /** Graceful drain then stop; idempotent. */
  shutdown(): Promise<void>;
  readonly done: Promise<void>;
  /** The process exit status once `done` resolves: 1 after a fatal ZDS protocol violation (capture.md §6). */
  readonly exitCode?: () => number;
}

export async function startApp(opts: AppOptions): Promise<RunningApp> {
  const config = opts.config;
  const env = opts.env ?? process.env;
  // The workers start first: loading the data-plane modules in each thread overlaps with the
  // control plane's own start (CA, config sources, ZDS); they are awaited before `proxy` is ready.
  let cp: ControlPlane | undefined;
  // A worker being replaced makes the `proxy` task pending again until its successor is up.
  let proxyStarted = false;
  let life: Lifecycle | undefined;
  // Listeners are bound once on this thread and every worker serves a duplicate of each fd; that
  // needs the native addon. Without it (non-Linux, addon not built) one worker binds them itself.
  const addon = loadNativeAddon();
  // Peer leaves are read as the workers read them (the shared-mode self-proxy runs on this thread).
  const bcReader = basicConstraintsReader();
  if (bcReader) readBasicConstraintsWith(bcReader);
  let count = config.workerThreads;
  const reduced = !addon.ok && count > 1 && config.proxyMode === 'dedicated';
  if (reduced) count = 1;
  const workers = new DataPlaneWorkers({
    config,
    count,
    logger: opts.logger.child({ component: 'workers' }),
    logSpec: () => cp?.logs.describe() ?? config.logLevel,
    certs: { getCertificate: (id) => cp!.secrets.getCertificate(id) },
    snapshot: () => cp?.snapshot() ?? {},
    onReadyChange: (up) => {
      if (!proxyStarted || !config.enableProxy || !life) return;
      if (up) life.readiness.complete('proxy');
      else life.readiness.setPending('proxy');
    },
  });
  // Dedicated mode starts them now; shared mode once the ZDS client is connecting (the node
  // agent waits for ztunnel; pods it sends meanwhile wait for the workers).
  let workersUp: Promise<void> | undefined;
  const startWorkers = () => {
    workersUp ??= workers.start();
    workersUp.catch(() => {}); // awaited below; a failure before then must not be unhandled
    return workersUp;
  };
  if (config.proxyMode !== 'shared') startWorkers();
  const control = await ControlPlane.create({ config, logger: opts.logger }).catch(async (e: unknown) => {
    await workers.close(0);
    throw e;
  });
  cp = control;
  const log = control.log;
  if (reduced) log.warn({ requested: config.workerThreads, reason: addon.ok ? '' : addon.error.message }, 'worker threads share listeners through the native addon, which is unavailable; running 1 data-plane worker');
  life = new Lifecycle({ logger: log, drainDeadlineMs: config.drainDeadlineMs });
  const readiness = life.readiness;
  const stateReady = readiness.register('state manager');
  const proxyReady = config.enableProxy ? readiness.register('proxy') : () => {};

  // DNS proxy (docs/dns.md): on this thread, beside the state it answers from (docs/workers.md);
  // shared parts now (an unusable resolv.conf is fatal at start).
  const dnsDeps = config.dnsProxy ? createDnsDeps(config, control.state, control.registry, control.logs.component('dns')) : undefined;
  const dnsServers: DnsServer[] = [];
  control.onStateBatch((b) => workers.applyState(b));
  control.secrets.onRotate((_id, cert) => workers.certificateRotated(cert));
  control.logs.onChange((spec) => workers.logSpecChanged(spec));

  let inpod: SharedMode | undefined; // shared mode: the pod proxies (capture.md §6)
  const listenerFds: number[] = []; // dedicated mode: bound here, served by every worker
  // Shared mode's self-proxy (inpod/self-proxy.ts) is the one proxy on this thread: its own
  // records, counted with this thread's traffic metrics (summed with the workers' at scrape).
  let selfProxy: WorkloadProxy | undefined;
  const selfRecords = new ConnectionRecorder(control.logs.component('access'), control.traffic);
  // Gives freed native memory back after start-up and after bursts (platform/memory.ts). Its
  // signal is the process's RSS (native buffers of every thread, unauthenticated bursts); the
  // reclaimers below watch each thread's V8 heap. malloc_trim is process-wide, so both may trim.
  let trimmer: MemoryTrimmer | undefined;
  // This thread's heap, and the node binary's start-up pages, back once start-up and the first
  // traffic settled (platform/memory.ts, docs/memory.md); each worker reclaims its own heap.
  let reclaimer: IdleReclaimer | undefined;
  const memoryLog = control.logs.component('memory');
  const startTrimmer = () => {
    trimmer = new MemoryTrimmer({ openConnections: () => selfRecords.openCount + workers.openConnections() });
    reclaimer = new IdleReclaimer({
      activity: () => workers.connectionsStarted(),
      reclaim: (reason) => {
        reclaimThreadMemory(reason);
        // Start-up only: pages the first traffic maps (the code that serves connections) stay.
        if (reason !== 'startup' || !config.releaseStartupPages) return;
        const r = releaseExecutablePages();
        if (r.unsupported) memoryLog.debug({ reason: r.unsupported }, 'start-up pages not released');
        else memoryLog.debug({ mappings: r.regions, residentBytes: r.bytes }, 'start-up pages released');
      },
      onReclaim: (reason, before, after, ms) => memoryLog.debug({ reason, heapBefore: before, heapAfter: after, durationMs: Math.round(ms) }, 'memory reclaimed'),
    });
  };
  life.onDrain(async (deadlineMs) => {
    for (const d of dnsServers) d.close();
    trimmer?.stop();
    reclaimer?.stop();
    await Promise.allSettled([inpod?.close(deadlineMs), selfProxy?.close(deadlineMs)]);
    await workers.close(deadlineMs);
    await selfRecords.settled(5_000);
    selfRecords.finishOpen(new ZtunnelError('DRAINING', 'connection closed at the drain deadline'));
    if (addon.ok) for (const fd of listenerFds.splice(0)) addon.value.closeFd(fd);
  });
  life.onStop(() => control.stop());
  life.onServerClose(() => control.closeServers());

  await control.startServers(readiness, {
    connections: async () => [...(selfProxy?.connections().map((c) => snapshotConnection(c, -1, 'self')) ?? []), ...(await workers.connections())],
    metrics: () => workers.metrics(),
    shutdown: (reply) => life.shutdown(reply),
    dns: () => ({ ...dumpDnsDeps(dnsDeps), listeners: config.proxyMode === 'shared' ? inpod?.manager.dnsListeners() ?? {} : dnsServers.flatMap((d) => d.addresses()) }),
    ...(config.proxyMode === 'shared' ? { workloadState: (conns) => ({ ...inpod?.manager.workloadState(conns) }) } : {}),
    // Test-only (docs/workers.md): never on unless set explicitly.
    ...(env['ZTUNNEL_TS_TEST_WORKER_CRASH'] === '1' ? { crashWorker: (n: number) => workers.crash(n) } : {}),
  });
  const addresses = control.addresses;
  const lifecycle = life;
  const shutdown = () => lifecycle.shutdown();
  const workersStarted = async () => {
    await startWorkers();
    log.info({ workers: count }, 'data-plane workers started');
  };

  if (config.proxyMode === 'shared') {
    // Shared (in-pod) mode (capture.md §6-§7): each pod enrolled over ZDS gets 15001/15006/15008
    // inside its netns; ztunnel's own netns has only the self-proxy (ports-and-modes.md §1).
    // Loaded only in shared mode (with the ZDS protobuf messages): dedicated mode does not carry it.
    const { checkSharedModeSupport, startSharedMode } = await import('./inpod/shared-mode.js');
    const sharedAddon = await checkSharedModeSupport(config); // fatal: addon missing or no CAP_NET_ADMIN/RAW
    const managerTask = 'workload proxy manager';
    readiness.register(managerTask);
    await control.startConfigSources();
    selfProxy = await bindSelfProxy({
      config, state: control.state, certs: control.secrets, records: selfRecords,
      logger: control.logs.component('proxy'), accessLogger: control.logs.component('access'), policyLogger: control.logs.component('policy'),
    });
    if (selfProxy) {
      addresses['inbound'] = selfProxy.address('inbound');
      const self = selfProxy;
      // Live re-authorization (policy.md §7) of the self-proxy's connections; the workers do their own.
      control.state.onChange((change) => {
        if (!change.policies) return;
        const closed = self.reauthorize();
        if (closed) log.info({ closed }, 'connections closed due to policy change');
      });
    }
    stateReady();
    selfProxy?.startAccepting();
    let exitCode = 0;
    if (config.enableProxy) {
      inpod = startSharedMode({
        addon: sharedAddon,
        config,
        state: control.state,
        dataPlane: workers,
        ...(dnsDeps ? { dns: dnsDeps } : {}),
        secrets: control.secrets,
        registry: control.registry,
        readiness: { pending: () => readiness.setPending(managerTask), complete: () => readiness.complete(managerTask) },
        logger: control.logs.component('inpod'),
        zdsLogger: control.logs.component('zds'),
        onFatal: (e) => {
          log.fatal({ err: e.message }, 'ZDS protocol violation; exiting');
          exitCode = 1;
          void shutdown();
        },
      });
    } else {
      readiness.complete(managerTask);
    }
    await workersStarted();
    proxyReady();
    proxyStarted = true;
    startTrimmer();
    log.info({ mode: config.proxyMode, node: config.nodeName, inpodUds: config.inpodUds, workers: count, ...addresses }, 'ztunnel-ts ready');
    return { readiness, state: control.state, addresses, shutdown, done: lifecycle.done, exitCode: () => exitCode };
  }

  const info = config.proxyWorkloadInfo!;
  await control.startConfigSources();
  await workersStarted();
  const served = control.state.findLocalWorkload(info.namespace, info.name, info.serviceAccount, '');
  const identity: Identity = served
    ? identityOf(served)
    : { trustDomain: config.trustDomain, namespace: info.namespace, serviceAccount: info.serviceAccount };
  if (!served) log.warn({ workload: `${info.namespace}/${info.name}/${info.serviceAccount}` }, 'PROXY_WORKLOAD_INFO matches no workload yet; outbound traffic fails until one appears');
  if (config.enableProxy) {
    const wanted: Partial<Record<ListenerKind, ListenerSpec>> = {
      inbound: config.listeners.inbound,
      inboundPlaintext: config.listeners.inboundPlaintext,
      outbound: config.listeners.outbound,
      ...(config.enableSocks5 ? { socks5: config.listeners.socks5 } : {}),
    };
    // Istio's rule in every mode: unset = spoof the client's address when IP_TRANSPARENT can be set.
    const transparent = transparentMode(config.enableOrigSrc);
    const listeners: Partial<Record<ListenerKind, ListenerSpec>> = {};
    if (addon.ok) {
      // Bound here once (SO_ORIGINAL_DST, marks and IP_TRANSPARENT need the addon anyway);
      // every worker adopts a duplicate of each fd (docs/workers.md).
      const sockets = new LinuxSocketFactory(addon.value, { onWarning: (m) => control.logs.component('platform').warn(m) });
      for (const [kind, addr] of Object.entries(wanted) as [ListenerKind, ListenerSpec][]) {
        const bound = await sockets.bindListener({ host: addr.host, port: addr.port, reusePort: false, transparent: kind === 'socks5' ? 'off' : transparent }).catch((e: unknown) => {
          throw listenerError(kind, `${addr.host}:${addr.port}`, e);
        });
        listenerFds.push(bound.fd);
        listeners[kind] = { ...addr, fd: bound.fd, transparent: bound.transparent };
      }
    } else {
      Object.assign(listeners, wanted);
    }
    const spec: ProxySpec = {
      key: 'dedicated',
      name: `${info.namespace}/${info.name}`,
      listeners,
      reusePort: false,
      transparent,
      localWorkload: { namespace: info.namespace, name: info.name, serviceAccount: info.serviceAccount, node: '' },
      identity,
    };
    const bound = await workers.addProxy(spec);
    for (const k of ['inbound', 'inboundPlaintext', 'outbound', 'socks5'] as const) addresses[k] = bound[k];
    // Warm the certificate so the first connection does not wait for issuance.
    control.secrets.prefetch?.(identity);
    stateReady();
    workers.startAccepting(spec.key);
  } else {
    stateReady();
  }
  if (dnsDeps) {
    const dns = await startDnsProxy({
      deps: dnsDeps,
      sockets: addon.ok ? new LinuxSocketFactory(addon.value, { onWarning: (m) => control.logs.component('platform').warn(m) }) : new PlainSocketFactory(),
      addresses: [config.listeners.dns],
      client: () => control.state.findLocalWorkload(info.namespace, info.name, info.serviceAccount, ''),
      perPodSearch: false,
      ...(config.packetMark !== undefined ? { mark: config.packetMark } : {}),
    });
    dnsServers.push(dns);
    addresses['dns'] = dns.addresses()[0];
  }
  proxyReady();
  proxyStarted = true;
  startTrimmer();
  log.info({ mode: config.proxyMode, identity: formatIdentity(identity), workers: count, ...addresses }, 'ztunnel-ts ready');
  return { readiness, state: control.state, addresses, shutdown, done: lifecycle.done };
}
