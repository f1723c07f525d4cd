// The control plane (docs/design.md §2 "Across threads", docs/workers.md): what exists once per node and
// runs on the main thread. State and its config sources (local file, xDS), the CA client and the
// secret manager, the admin / metrics / readiness servers. It reaches the data plane only through
// the narrow views it is handed (a state listener, DataPlaneHandle, gatherers for the admin).
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Counter, Registry } from 'prom-client';
import { startAdminServer } from './admin/admin-server.js';
import { mergedMetrics, type MetricsJson } from './admin/metrics-merge.js';
import { startMetricsServer } from './admin/metrics-server.js';
import { startReadinessServer } from './admin/readiness-server.js';
import type { Readiness } from './admin/readiness.js';
import type { Config } from './config/config.js';
import type { CaClient } from './identity/ca-client.js';
import { LocalCa } from './identity/local-ca.js';
import { SecretManager } from './identity/secret-manager.js';
import type { StateBatch, StateSink } from './state/batch.js';
import { CertPrefetchSink, type CertWarmer } from './state/cert-prefetch.js';
import { State } from './state/state.js';
import type { BindAddr } from './config/config.js';
import { listenerError, type ListenerKind } from './config/listener-error.js';
import { openCrl } from './crl-setup.js';
import type { RevocationList } from './tls/crl.js';
import type { LiveConnection } from './telemetry/connection-record.js';
import { LogControl } from './telemetry/log-control.js';
import type { Logger } from './telemetry/logger.js';
import { createTrafficMetrics } from './telemetry/traffic-metrics.js';
import type { TrafficMetricsSink } from './telemetry/connection-record.js';
import { createXdsMetrics } from './telemetry/xds-metrics.js';
import { checkTlsTuning } from './tls/secure-context.js';
import type { AdsClient } from './xds/ads-client.js';
import { istioTransform } from './xds/istio-transform.js';
import { INLINE_CONFIG_NAME, LocalConfigSource } from './xds/local-source.js';

export const VERSION = '0.1.0';

export interface ControlPlaneOptions {
  readonly config: Config;
  readonly logger: Logger;
}

/** What the admin servers read from the data plane (gathered from every worker when asked). */
export interface DataPlaneViews {
  readonly connections: () => Promise<LiveConnection[]>;
  readonly metrics: () => Promise<MetricsJson[]>;
  readonly workloadState?: (connections: readonly LiveConnection[]) => Record<string, unknown>;
  readonly shutdown: (reply: () => Promise<void>) => Promise<void>;
  readonly crashWorker?: (worker: number) => boolean;
  /** The DNS proxy section of /config_dump. */
  readonly dns?: () => Record<string, unknown>;
}

/** The embedded default local config (examples/embedded-default.yaml), read at start. */
export function embeddedDefaultConfigPath(): string {
  const here = dirname(fileURLToPath(import.meta.url)); // dist/src
  return join(here, '..', '..', 'examples', 'embedded-default.yaml');
}

export class ControlPlane {
  readonly config: Config;
  readonly logs: LogControl;
  readonly log: Logger;
  /** Always the OpenMetrics encoding (telemetry.md §1). */
  readonly registry: Registry;
  readonly state: State;
  readonly secrets: SecretManager;
  readonly addresses: Record<string, string | undefined> = {};
  private readonly servers: Server[] = [];
  private readonly stateListeners: Array<(batch: StateBatch) => void> = [];

  private constructor(
    o: ControlPlaneOptions,
    logs: LogControl,
    registry: Registry,
    state: State,
    private readonly local: LocalConfigSource | undefined,
    private readonly ads: AdsClient | undefined,
    secrets: SecretManager,
    /** The traffic counters of this thread (the shared-mode self-proxy records here). */
    readonly traffic: TrafficMetricsSink,
    private readonly crl: RevocationList | undefined,
  ) {
    this.config = o.config;
    this.logs = logs;
    this.log = logs.component('ztunnel');
    this.registry = registry;
    this.state = state;
    this.secrets = secrets;
  }

  /** Builds state, config sources and certificates (nothing listens or connects yet). */
  static async create(o: ControlPlaneOptions): Promise<ControlPlane> {
    const config = o.config;
    const logs = new LogControl(o.logger, config.logLevel);
    // prom-client's typings omit the constructor argument its runtime takes.
    const registry = new (Registry as unknown as new (t: string) => Registry)(Registry.OPENMETRICS_CONTENT_TYPE);
    const state = new State({ warn: (m) => logs.component('state').warn(m) });
    // Shared mode warms the certificate of every HBONE workload of this node as it arrives, as
    // Istio's ztunnel does (state/cert-prefetch.ts); the cache is attached once it exists.
    let certWarmer: CertWarmer | undefined;
    const applyHere: StateSink = config.proxyMode === 'shared' ? new CertPrefetchSink({ state, node: config.nodeName, certs: () => certWarmer }) : state;
    // Every batch a source applies reaches the data plane too, in the same order (docs/workers.md).
    let self: ControlPlane | undefined;
    const sink: StateSink = {
      apply: (batch) => {
        applyHere.apply(batch);
        for (const l of self?.stateListeners ?? []) l(batch);
      },
    };
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
    // The traffic metric families and istio_build; the counts come from the workers at scrape
    // time (and from the self-proxy, the one proxy on this thread).
    const traffic = createTrafficMetrics(registry, { istioVersion: config.istioVersion });
    const crl = config.crlPath !== undefined ? await openCrl(config.crlPath, registry, logs.component('tls')) : undefined;
    self = new ControlPlane(o, logs, registry, state, local, ads, secrets, traffic, crl);
    return self;
  }

  /** Hears every state batch after the control plane applied it. */
  onStateBatch(cb: (batch: StateBatch) => void): void {
    this.stateListeners.push(cb);
  }

  /** The whole state as one batch (for a data-plane worker that starts late). */
  snapshot(): StateBatch {
    const s = this.state;
    return {
      workloads: { upsert: [...s.workloads()], remove: [] },
      services: { upsert: [...s.services()], remove: [] },
      policies: { upsert: [...s.policies()], remove: [] },
    };
  }

  /** Admin (localhost), metrics and readiness servers; bound first so readiness shows during startup. */
  async startServers(readiness: Readiness, views: DataPlaneViews): Promise<void> {
    const config = this.config;
    const version = { version: readVersionFile(), gitRevision: 'unknown', rustVersion: 'n/a', buildProfile: 'release', buildStatus: 'Clean', istioVersion: config.istioVersion, cryptoProvider: 'openssl' };
    const { state, secrets, local } = this;
    const admin = await startAdminServer(config.listeners.admin, {
      dump: {
        state,
        certificates: () => secrets.states().map((s) => ({ identity: s.identity, state: s.state, ...(s.cert ? { cert: s.cert } : {}) })),
        staticConfig: () => local?.rawText(),
        config,
        version,
        stagedServices: () => state.stagedServices(),
        localConfigErrors: () => (local ? local.lastErrors().map((p) => `${p.file}:${p.line} ${p.path}: ${p.message}`) : []),
        ...(views.workloadState ? { workloadState: views.workloadState } : {}),
        ...(views.dns ? { dns: views.dns } : {}),
      },
      logs: this.logs,
      shutdown: views.shutdown,
      connections: views.connections,
      ...(views.crashWorker ? { crashWorker: views.crashWorker } : {}),
    }).catch(bindFailed('admin', config.listeners.admin));
    this.servers.push(admin);
    const statsServer = await startMetricsServer(config.listeners.stats, async () => mergedMetrics(this.registry, await views.metrics())).catch(bindFailed('stats', config.listeners.stats));
    this.servers.push(statsServer);
    const readyServer = await startReadinessServer(config.listeners.readiness, readiness).catch(bindFailed('readiness', config.listeners.readiness));
    this.servers.push(readyServer);
    this.addresses['admin'] = addrOf(admin);
    this.addresses['stats'] = addrOf(statsServer);
    this.addresses['readiness'] = addrOf(readyServer);
  }

  /** Local file first, then xDS; resolves at the first ACK of every watched type (xds.md §2.5). */
  async startConfigSources(): Promise<void> {
    if (this.local) await this.local.start();
    if (this.ads) {
      this.ads.start();
      await this.ads.ready;
    }
  }

  /** After the drain: sources and certificates stop. */
  async stop(): Promise<void> {
    await this.local?.close();
    this.ads?.close();
    this.secrets.close();
    this.crl?.close();
  }

  /** Last: the servers close (after the /quitquitquit answer). */
  closeServers(): void {
    for (const s of this.servers) {
      s.close();
      s.closeAllConnections?.();
    }
  }
}

function addrOf(s: Server): string | undefined {
  const a = s.address();
  return a && typeof a === 'object' ? `${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}` : undefined;
}

/** A bind failure of an admin-side listener, rethrown naming the listener and its setting. */
function bindFailed(kind: ListenerKind, addr: BindAddr): (e: unknown) => never {
  return (e) => {
    throw listenerError(kind, `${addr.host}:${addr.port}`, e);
  };
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
