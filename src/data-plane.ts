// The data plane (docs/design.md §2 "Across threads", docs/workers.md): what one data-plane worker
// runs. It holds the workload proxies (accept loops, HBONE pool and server, relays) and their
// connection records, and sees the control plane only through what it is handed: a state view
// kept up to date by the control plane, a certificate provider, loggers and a metrics registry
// of its own. It never reaches for a control-plane object; data-plane-worker.ts connects it to
// the main thread with messages.
import type { Registry } from 'prom-client';
import type { Config } from './config/config.js';
import { ZtunnelError } from './core/errors.js';
import type { SocketFactory } from './platform/socket-factory.js';
import type { DataPlaneHandle, ProxyAddresses, ProxySpec } from './proxy/proxy-spec.js';
import { WorkloadProxy, type ListenerKind } from './proxy/workload-proxy.js';
import type { StateChange } from './state/state.js';
import type { StateView } from './state/view.js';
import type { CertificateProvider } from './tls/certificate.js';
import { ConnectionRecorder, snapshotConnection, type LiveConnection } from './telemetry/connection-record.js';
import type { LogControl } from './telemetry/log-control.js';
import { createTrafficMetrics } from './telemetry/traffic-metrics.js';

export interface DataPlaneOptions {
  readonly config: Config;
  /** This worker's number (0-based), shown in /debug/connections and on its log lines. */
  readonly workerId: number;
  readonly state: StateView & { onChange(cb: (change: StateChange) => void): () => void };
  readonly certs: CertificateProvider;
  readonly logs: LogControl;
  /** Receives the traffic metrics of this data plane (summed with the others' at scrape time). */
  readonly registry: Registry;
  /** The socket factory for a netns (undefined: this process's own). */
  readonly sockets: (netnsFd: number | undefined) => SocketFactory;
}

/** Records still writing their last line get this long at shutdown (telemetry.md §3). */
const RECORDS_SETTLE_MS = 5_000;

export type { ProxyAddresses, ProxySpec };

export class DataPlane implements DataPlaneHandle {
  private readonly proxies = new Map<string, WorkloadProxy>();
  /** Proxies removed from `proxies` that are still draining (their connections still count). */
  private readonly draining = new Set<WorkloadProxy>();
  private readonly recorder: ConnectionRecorder;
  private readonly unsubscribe: () => void;
  private closing: Promise<void> | undefined;

  constructor(private readonly o: DataPlaneOptions) {
    const metrics = createTrafficMetrics(o.registry, { istioVersion: o.config.istioVersion, processMetrics: false, build: false });
    this.recorder = new ConnectionRecorder(o.logs.component('access'), metrics);
    // Live re-authorization (policy.md §7): every policy change re-runs the decision of every
    // connection this worker holds; each worker does it for its own (docs/workers.md).
    this.unsubscribe = o.state.onChange((change) => {
      if (!change.policies) return;
      const closed = this.all().reduce((n, p) => n + p.reauthorize(), 0);
      if (closed) o.logs.component('ztunnel').info({ closed, worker: o.workerId }, 'connections closed due to policy change');
    });
  }

  /** Binds (or adopts) the proxy's listeners; connections wait until startAccepting(key). */
  async addProxy(spec: ProxySpec): Promise<ProxyAddresses> {
    if (this.closing) throw new ZtunnelError('DRAINING', 'the data plane is shutting down');
    if (this.proxies.has(spec.key)) throw new ZtunnelError('INPOD_PROXY_START', `proxy ${spec.key} exists already`);
    const logs = this.o.logs;
    const ctx = { ...spec.logContext };
    const { namespace, name, serviceAccount, node } = spec.localWorkload;
    const proxy = new WorkloadProxy({
      name: spec.name,
      config: this.o.config,
      sockets: this.o.sockets(spec.netnsFd),
      state: this.o.state,
      certs: this.o.certs,
      records: this.recorder,
      logger: Object.keys(ctx).length ? logs.component('proxy').child(ctx) : logs.component('proxy'),
      accessLogger: logs.component('access'),
      policyLogger: logs.component('policy'),
      listeners: spec.listeners,
      reusePort: spec.reusePort,
      transparent: spec.transparent,
      localWorkload: () => this.o.state.findLocalWorkload(namespace, name, serviceAccount, node),
      identity: spec.identity,
    });
    this.proxies.set(spec.key, proxy);
    try {
      await proxy.bind();
    } catch (e) {
      this.proxies.delete(spec.key);
      await proxy.close(0).catch(() => {});
      throw e;
    }
    const out: ProxyAddresses = {};
    for (const k of Object.keys(spec.listeners) as ListenerKind[]) {
      const a = proxy.address(k);
      if (a) out[k] = a;
    }
    return out;
  }

  startAccepting(key: string): void {
    this.proxies.get(key)?.startAccepting();
  }

  /** Drains one proxy (ports-and-modes.md §5): stops accepting, waits up to the deadline, force-closes. */
  async removeProxy(key: string, deadlineMs: number): Promise<void> {
    const proxy = this.proxies.get(key);
    if (!proxy) return;
    this.proxies.delete(key);
    this.draining.add(proxy);
    try {
      await proxy.close(deadlineMs);
    } finally {
      this.draining.delete(proxy);
    }
  }

  /** Plain copies of every live connection, tagged with this worker's number. */
  connections(): LiveConnection[] {
    const out: LiveConnection[] = [];
    for (const [key, p] of this.proxies) for (const c of p.connections()) out.push(snapshotConnection(c, this.o.workerId, key));
    for (const p of this.draining) for (const c of p.connections()) out.push(snapshotConnection(c, this.o.workerId, ''));
    return out;
  }

  /** Connections open right now on this worker. */
  get openConnections(): number {
    return this.recorder.openCount;
  }

  /** Graceful drain of every proxy, then waits for the last records to be written. Idempotent. */
  close(deadlineMs: number): Promise<void> {
    this.closing ??= (async () => {
      this.unsubscribe();
      const keys = [...this.proxies.keys()];
      await Promise.allSettled([...keys.map((k) => this.removeProxy(k, deadlineMs)), ...[...this.draining].map((p) => p.close(deadlineMs))]);
      await this.recorder.settled(RECORDS_SETTLE_MS);
      // Stragglers (their sockets still closing) are written now: every access record precedes
      // "shutdown complete" in the log.
      this.recorder.finishOpen(new ZtunnelError('DRAINING', 'connection closed at the drain deadline'));
    })();
    return this.closing;
  }

  /**
   * This worker failed (docs/workers.md): reset every connection it holds (each still gets its
   * closed count and access-log line) and stop accepting. Resolves once the records are written,
   * or after `settleMs`.
   */
  async fail(reason: Error, settleMs: number): Promise<void> {
    for (const p of this.all()) p.abortAll(reason);
    for (const p of this.all()) void p.close(0).catch(() => {});
    await this.recorder.settled(settleMs);
  }

  private all(): WorkloadProxy[] {
    return [...this.proxies.values(), ...this.draining];
  }
}
