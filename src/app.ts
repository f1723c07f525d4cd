// Composition root (docs/design.md §2): builds every component from the Config, hands each only what it
// needs, wires readiness and drain. No logic of its own beyond ordering (ports-and-modes.md §4–§5).
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Counter, Registry } from 'prom-client';
import { startAdminServer } from './admin/admin-server.js';
import { startMetricsServer } from './admin/metrics-server.js';
import { Readiness } from './admin/readiness.js';
import { startReadinessServer } from './admin/readiness-server.js';
import type { BindAddr, Config } from './config/config.js';
import { listenerError, type ListenerKind } from './config/listener-error.js';
import { ZtunnelError } from './core/errors.js';
import { formatIdentity, type Identity } from './core/spiffe.js';
import type { CaClient } from './identity/ca-client.js';
import { LocalCa } from './identity/local-ca.js';
import { SecretManager } from './identity/secret-manager.js';
import { PlainSocketFactory } from './platform/plain-socket-factory.js';
import { LinuxSocketFactory } from './platform/linux-socket-factory.js';
import { loadNativeAddon } from './platform/native-addon.js';
import { MemoryTrimmer } from './platform/memory.js';
import { transparentMode, type SocketFactory } from './platform/socket-factory.js';
import { WorkloadProxy } from './proxy/workload-proxy.js';
import type { SharedMode } from './inpod/shared-mode.js';
import { bindSelfProxy } from './inpod/self-proxy.js';
import { State } from './state/state.js';
import { CertPrefetchSink, type CertWarmer } from './state/cert-prefetch.js';
import type { StateSink } from './state/batch.js';
import { identityOf } from './state/workload-identity.js';
import { ConnectionRecorder } from './telemetry/connection-record.js';
import { LogControl } from './telemetry/log-control.js';
import type { Logger } from './telemetry/logger.js';
import { createTrafficMetrics } from './telemetry/traffic-metrics.js';
import { INLINE_CONFIG_NAME, LocalConfigSource } from './xds/local-source.js';
import { istioTransform } from './xds/istio-transform.js';
import type { AdsClient } from './xds/ads-client.js';
import { checkTlsTuning } from './tls/secure-context.js';
import { RevocationList, setRevocationList } from './tls/crl.js';
import { createXdsMetrics } from './telemetry/xds-metrics.js';
import { createDnsDeps, dumpDnsDeps, startDnsProxy } from './dns/dns-proxy.js';
import type { DnsServer } from './dns/dns-server.js';

export const VERSION = '0.1.0';

export interface AppOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** Overrides for tests: a socket factory (default: plain) and where the embedded config lives. */
  readonly sockets?: SocketFactory;
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

/** The embedded default local config (examples/embedded-default.yaml), read at start. */
export function embeddedDefaultConfigPath(): string {
  const here = dirname(fileURLToPath(import.meta.url)); // dist/src
  return join(here, '..', '..', 'examples', 'embedded-default.yaml');
}

export async function startApp(opts: AppOptions): Promise<RunningApp> {
  const config = opts.config;
  const logs = new LogControl(opts.logger, config.logLevel);
  const log = logs.component('ztunnel');
  // Always the OpenMetrics encoding (telemetry.md §1). prom-client's typings omit the constructor
  // argument its runtime takes.
  const registry = new (Registry as unknown as new (t: string) => Registry)(Registry.OPENMETRICS_CONTENT_TYPE);
  const readiness = new Readiness();
  const stateReady = readiness.register('state manager');
  const proxyReady = config.enableProxy ? readiness.register('proxy') : () => {};

  // --- state and its config sources --------------------------------------------------------
  const state = new State({ warn: (m) => logs.component('state').warn(m) });
  // Shared mode warms the certificate of every HBONE workload of this node as it arrives, as
  // Istio's ztunnel does (state/cert-prefetch.ts); the cache is attached once it exists.
  let certWarmer: CertWarmer | undefined;
  const sink: StateSink = config.proxyMode === 'shared' ? new CertPrefetchSink({ state, node: config.nodeName, certs: () => certWarmer }) : state;
  const reloadFailures = createReloadFailureCounter(registry);
  const localPath = config.localXdsPath ?? (config.embeddedDefault && !config.localXds ? embeddedDefaultConfigPath() : undefined);
  const local =
    localPath !== undefined || config.localXds !== undefined
      ? new LocalConfigSource({
          ...(localPath !== undefined ? { path: localPath } : { inline: config.localXds! }),
          sink,
          logger: logs.component('local_config'),
          watch: localPath !== undefined && !(config.embeddedDefault && !config.localXdsPath),
          onReloadFailure: () => reloadFailures.inc(),
          // Istio AuthorizationPolicy / PeerAuthentication documents in the file (config.md "Beyond" b).
          transform: istioTransform(localPath ?? INLINE_CONFIG_NAME),
        })
      : undefined;
  // Local file first, then xDS adds and overrides (config.md §1).
  // gRPC and protobuf (~17 MB resident) are loaded only when istiod is configured.
  let ads: AdsClient | undefined;
  if (config.xdsAddress !== null) {
    const { AdsClient } = await import('./xds/ads-client.js');
    ads = new AdsClient({ config, sink, metrics: createXdsMetrics(registry), logger: logs.component('xds') });
  }

  // --- certificates ---------------------------------------------------------------------------
  let ca: CaClient;
  const tlsProblem = checkTlsTuning({ tls12Enabled: config.tls12Enabled, ...(config.compliancePolicy ? { compliancePolicy: config.compliancePolicy } : {}) });
  if (tlsProblem) throw tlsProblem;
  if (config.caAddress !== null && !config.fakeCa) {
    const { IstioCaClient } = await import('./identity/istio-ca-client.js');
    ca = new IstioCaClient({ config, logger: logs.component('ca') });
  } else {
    ca = await LocalCa.open({
      stateDir: config.stateDir,
      ...(config.caCertPath ? { caCertPath: config.caCertPath } : {}),
      ...(config.caKeyPath ? { caKeyPath: config.caKeyPath } : {}),
      ttlMs: config.secretTtlMs,
      logger: logs.component('ca'),
    });
  }
  const secrets = new SecretManager({ ca, logger: logs.component('secrets') });
  certWarmer = secrets;

  // --- telemetry ------------------------------------------------------------------------------
  const metrics = createTrafficMetrics(registry, { istioVersion: config.istioVersion });
  const crl = config.crlPath !== undefined ? await openCrl(config.crlPath, registry, logs.component('tls')) : undefined;
  const recorder = new ConnectionRecorder(logs.component('access'), metrics);
  // DNS proxy (docs/dns.md): shared parts now (an unusable resolv.conf is fatal at start).
  const dnsDeps = config.dnsProxy ? createDnsDeps(config, state, registry, logs.component('dns')) : undefined;
  const dnsServers: DnsServer[] = [];

  // --- admin servers (bound first so readiness is visible during startup) ----------------------
  const servers: Server[] = [];
  let shutdownPromise: Promise<void> | undefined;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const proxies: WorkloadProxy[] = [];
  let inpod: SharedMode | undefined; // shared mode: the pod proxies (capture.md §6)
  // Gives freed native memory back after start-up and after bursts (platform/memory.ts).
  let trimmer: MemoryTrimmer | undefined;
  const beforeStop: Array<() => Promise<void>> = []; // e.g. the /quitquitquit answer (ports-and-modes.md §5)
  const shutdown = (): Promise<void> => {
    shutdownPromise ??= (async () => {
      log.info({ deadlineMs: config.drainDeadlineMs }, 'draining');
      for (const d of dnsServers) d.close();
      trimmer?.stop();
      await Promise.allSettled([...proxies.map((p) => p.close(config.drainDeadlineMs)), inpod?.close(config.drainDeadlineMs)]);
      // Records of force-closed connections are written before exit (telemetry.md §3). Aborted
      // ends close within milliseconds, but a loaded node can take over a second to run their
      // 'close' events (seen in CI): wait up to 5 s rather than drop the records.
      await recorder.settled(5_000);
      // Stragglers (their sockets still closing) are written now: every access record precedes
      // "shutdown complete" in the log.
      recorder.finishOpen(new ZtunnelError('DRAINING', 'connection closed at the drain deadline'));
      await local?.close();
      ads?.close();
      secrets.close();
      crl?.close();
      await Promise.allSettled(beforeStop.splice(0).map((f) => f()));
      for (const s of servers) {
        s.close();
        s.closeAllConnections?.();
      }
      log.info('shutdown complete');
      resolveDone();
    })();
    return shutdownPromise;
  };
  const addresses: Record<string, string | undefined> = {};
  const version = { version: readVersionFile(), gitRevision: 'unknown', rustVersion: 'n/a', buildProfile: 'release', buildStatus: 'Clean', istioVersion: config.istioVersion, cryptoProvider: 'openssl' };
  const admin = await startAdminServer(config.listeners.admin, {
    dump: {
      state,
      certificates: () => secrets.states().map((s) => ({ identity: s.identity, state: s.state, ...(s.cert ? { cert: s.cert } : {}) })),
      staticConfig: () => local?.rawText(),
      config,
      version,
      stagedServices: () => state.stagedServices(),
      localConfigErrors: () => (local ? local.lastErrors().map((p) => `${p.file}:${p.line} ${p.path}: ${p.message}`) : []),
      ...(config.proxyMode === 'shared' ? { workloadState: () => ({ ...inpod?.manager.workloadState() }) } : {}),
      dns: () => ({ ...dumpDnsDeps(dnsDeps), listeners: config.proxyMode === 'shared' ? inpod?.manager.dnsListeners() ?? {} : dnsServers.flatMap((d) => d.addresses()) }),
    },
    logs,
    shutdown: (reply) => (beforeStop.push(reply), shutdown()),
    connections: () => [...proxies.flatMap((p) => p.connections()), ...(inpod?.manager.connections() ?? [])],
  }).catch(bindFailed('admin', config.listeners.admin));
  servers.push(admin);
  const statsServer = await startMetricsServer(config.listeners.stats, registry).catch(bindFailed('stats', config.listeners.stats));
  servers.push(statsServer);
  const readyServer = await startReadinessServer(config.listeners.readiness, readiness).catch(bindFailed('readiness', config.listeners.readiness));
  servers.push(readyServer);
  addresses['admin'] = addrOf(admin);
  addresses['stats'] = addrOf(statsServer);
  addresses['readiness'] = addrOf(readyServer);

  // --- data plane ------------------------------------------------------------------------------
  // Local file first, then xDS; readiness "state manager" waits for the first ACK of every
  // watched type (xds.md §2.5).
  const startConfigSources = async () => {
    if (local) await local.start();
    if (ads) {
      ads.start();
      await ads.ready;
    }
  };
  if (config.proxyMode === 'shared') {
    // Shared (in-pod) mode (capture.md §6-§7): each pod enrolled over ZDS gets 15001/15006/15008
    // inside its netns; ztunnel's own netns has only the self-proxy (ports-and-modes.md §1).
    // Loaded only in shared mode (with the ZDS protobuf messages): dedicated mode does not carry it.
    const { checkSharedModeSupport, startSharedMode } = await import('./inpod/shared-mode.js');
    const addon = await checkSharedModeSupport(config); // fatal: addon missing or no CAP_NET_ADMIN/RAW
    const managerTask = 'workload proxy manager';
    readiness.register(managerTask);
    await startConfigSources();
    const selfProxy = await bindSelfProxy({
      config, state, certs: secrets, records: recorder,
      logger: logs.component('proxy'), accessLogger: logs.component('access'), policyLogger: logs.component('policy'),
    });
    if (selfProxy) {
      proxies.push(selfProxy);
      addresses['inbound'] = selfProxy.address('inbound');
    }
    stateReady();
    selfProxy?.startAccepting();
    let exitCode = 0;
    if (config.enableProxy) {
      inpod = startSharedMode({
        addon,
        config,
        state,
        proxyDeps: { config, state, certs: secrets, records: recorder, logger: logs.component('proxy'), accessLogger: logs.component('access'), policyLogger: logs.component('policy') },
        ...(dnsDeps ? { dns: dnsDeps } : {}),
        secrets,
        registry,
        readiness: { pending: () => readiness.setPending(managerTask), complete: () => readiness.complete(managerTask) },
        logger: logs.component('inpod'),
        zdsLogger: logs.component('zds'),
        onFatal: (e) => {
          log.fatal({ err: e.message }, 'ZDS protocol violation; exiting');
          exitCode = 1;
          void shutdown();
        },
      });
      const manager = inpod.manager;
      // Live re-authorization (policy.md §7) across every pod's connections.
      state.onChange((change) => {
        if (!change.policies) return;
        const closed = manager.reauthorize() + (selfProxy?.reauthorize() ?? 0);
        if (closed) log.info({ closed }, 'connections closed due to policy change');
      });
    } else {
      readiness.complete(managerTask);
    }
    proxyReady();
    log.info({ mode: config.proxyMode, node: config.nodeName, inpodUds: config.inpodUds, ...addresses }, 'ztunnel-ts ready');
    trimmer = new MemoryTrimmer({ openConnections: () => recorder.openCount });
    return { readiness, state, addresses, shutdown, done, exitCode: () => exitCode };
  }
  const info = config.proxyWorkloadInfo!;
  const localWorkload = () => state.findLocalWorkload(info.namespace, info.name, info.serviceAccount, '');
  await startConfigSources();
  const served = localWorkload();
  const identity: Identity = served
    ? identityOf(served)
    : { trustDomain: config.trustDomain, namespace: info.namespace, serviceAccount: info.serviceAccount };
  if (!served) log.warn({ workload: `${info.namespace}/${info.name}/${info.serviceAccount}` }, 'PROXY_WORKLOAD_INFO matches no workload yet; outbound traffic fails until one appears');
  const sockets = opts.sockets ?? dedicatedSocketFactory(logs.component('platform'));
  if (config.enableProxy) {
    const proxy = new WorkloadProxy({
      name: `${info.namespace}/${info.name}`,
      config,
      sockets,
      state,
      certs: secrets,
      records: recorder,
      logger: logs.component('proxy'),
      accessLogger: logs.component('access'),
      policyLogger: logs.component('policy'),
      listeners: {
        inbound: config.listeners.inbound,
        inboundPlaintext: config.listeners.inboundPlaintext,
        outbound: config.listeners.outbound,
        ...(config.enableSocks5 ? { socks5: config.listeners.socks5 } : {}),
      },
      reusePort: false,
      // Istio's rule in every mode: unset = spoof the client's address when IP_TRANSPARENT can be set.
      transparent: transparentMode(config.enableOrigSrc),
      localWorkload,
      identity,
    });
    await proxy.bind();
    proxies.push(proxy);
    for (const k of ['inbound', 'inboundPlaintext', 'outbound', 'socks5'] as const) addresses[k] = proxy.address(k);
    // Live re-authorization (policy.md §7): every policy-store change re-runs every decision.
    state.onChange((change) => {
      if (!change.policies) return;
      const closed = proxies.reduce((n, p) => n + p.reauthorize(), 0);
      if (closed) log.info({ closed }, 'connections closed due to policy change');
    });
    // Warm the certificate so the first connection does not wait for issuance.
    secrets.prefetch?.(identity);
  }
  if (dnsDeps) {
    const dns = await startDnsProxy({
      deps: dnsDeps,
      sockets,
      addresses: [config.listeners.dns],
      client: localWorkload,
      perPodSearch: false,
      ...(config.packetMark !== undefined ? { mark: config.packetMark } : {}),
    });
    dnsServers.push(dns);
    addresses['dns'] = dns.addresses()[0];
  }
  stateReady();
  for (const p of proxies) p.startAccepting();
  proxyReady();
  log.info({ mode: config.proxyMode, identity: formatIdentity(identity), ...addresses }, 'ztunnel-ts ready');
  trimmer = new MemoryTrimmer({ openConnections: () => recorder.openCount });
  return { readiness, state, addresses, shutdown, done };
}

/**
 * Dedicated mode: the Linux factory when the addon loads (SO_ORIGINAL_DST for node-level
 * redirects, marks, transparent listeners), else node:net only (capture.md §3 step 3).
 */
function dedicatedSocketFactory(log: Logger): SocketFactory {
  const addon = loadNativeAddon();
  if (addon.ok) return new LinuxSocketFactory(addon.value, { onWarning: (m) => log.warn(m) });
  log.info({ reason: addon.error.message }, 'native addon unavailable; using plain sockets');
  return new PlainSocketFactory();
}

function addrOf(s: Server): string | undefined {
  const a = s.address();
  return a && typeof a === 'object' ? `${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}` : undefined;
}

/**
 * CRL_PATH (tls/crl.ts): loaded before any listener, watched, and applied to every handshake;
 * `istio_crl_policy_rejections_total{reporter}` counts the connections it refused.
 */
async function openCrl(path: string, registry: Registry, log: Logger): Promise<RevocationList> {
  const rejections = new Counter({
    name: 'istio_crl_policy_rejections',
    help: 'The total number of connections rejected due to CRL certificate revocation (unstable).',
    labelNames: ['reporter'],
    registers: [registry],
  });
  const list = await RevocationList.open(path, {
    loaded: (crls, revoked) => log.info({ path, crls, revoked }, 'crl loaded'),
    failed: (message) => log.warn({ path, err: message }, 'crl not (re)loaded; the last good list stays'),
  });
  list.watch();
  setRevocationList(list, (reporter) => rejections.inc({ reporter }));
  return list;
}

function createReloadFailureCounter(registry: Registry) {
  // ztunnel-ts only (config.md "Beyond" a): failed reloads of the watched local file.
  return new Counter({ name: 'ztunnel_ts_local_config_reload_failures_total', help: 'Rejected reloads of the local config file (the last good config stayed in force)', registers: [registry] });
}

/** The package version (package.json), reported in /config_dump `version`. */
export function readVersionFile(): string {
  try {
    return (JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return VERSION;
  }
}

/** A bind failure of an admin-side listener, rethrown naming the listener and its setting. */
function bindFailed(kind: ListenerKind, addr: BindAddr): (e: unknown) => never {
  return (e) => {
    throw listenerError(kind, `${addr.host}:${addr.port}`, e);
  };
}
