// Shared (in-pod) mode: one WorkloadProxy per pod enrolled over ZDS (capture.md §6-§7,
// ports-and-modes.md §1-§2, §4-§5). This is the ZDS handler: it opens the pod's listeners inside
// the netns it was handed, keeps failed pods pending and retries them, reconciles the snapshot,
// drains deleted pods, and drives the `workload proxy manager` readiness task.
//
// Invariants:
// - `pods` holds at most one entry per uid; an entry owns its netns fd until it is stopped, and the
//   fd is closed only after that pod's proxy has drained (a draining pool may still dial from it);
// - ZdsClient calls the handler one request at a time, but pending retries run from timers: every
//   start attempt re-checks `removed` after each await so a pod stopped meanwhile never comes back;
// - readiness is complete only when the current connection's snapshot was processed and no pod is
//   pending (ports-and-modes.md §4 step 5).
import { Counter, Gauge, type Registry } from 'prom-client';
import { ZtunnelError } from '../core/errors.js';
import { formatIdentity, identityEquals, type Identity } from '../core/spiffe.js';
import type { BindAddr, Config } from '../config/config.js';
import type { NativeAddon } from '../platform/native-addon.js';
import { LinuxSocketFactory } from '../platform/linux-socket-factory.js';
import { transparentMode } from '../platform/socket-factory.js';
import { dumpConnections } from '../proxy/connection-manager.js';
import type { DataPlaneHandle, ProxySpec } from '../proxy/proxy-spec.js';
import { listenerError } from '../config/listener-error.js';
import type { ListenerKind, ListenerSpec } from '../proxy/workload-proxy.js';
import type { LiveConnection } from '../telemetry/connection-record.js';
import type { Workload } from '../state/model.js';
import type { StateView } from '../state/view.js';
import { identityOf } from '../state/workload-identity.js';
import type { Logger } from '../telemetry/logger.js';
import type { ZdsHandler } from './zds-client.js';
import { startDnsProxy, type DnsProxyDeps } from '../dns/dns-proxy.js';
import type { DnsServer } from '../dns/dns-server.js';
import type { WorkloadInfo } from './zds-messages.js';

/** capture.md §7: how long an Add waits for its workload to appear in the state. */
export const LOCAL_WORKLOAD_WAIT_MS = 5_000;
/** capture.md §6: a pod whose proxy failed to start is retried this often. */
export const PENDING_RETRY_MS = 5_000;
const MATCH_POLL_MS = 50;

/** The in-pod ports (ports-and-modes.md §1): fixed, no override. */
export const INPOD_PORTS = { outbound: 15001, inboundPlaintext: 15006, inbound: 15008, socks5: 15080, dns: 15053 } as const;

/** The readiness task `workload proxy manager`, as the app registered it. */
export interface ReadinessTask {
  pending(): void;
  complete(): void;
}

export interface WorkloadProxyManagerOptions {
  readonly addon: NativeAddon;
  /** nodeName, ipv6Enabled, inpodPortReuse, enableOrigSrc, enableSocks5. */
  readonly config: Config;
  readonly state: StateView;
  /**
   * Runs each pod's proxy on every data-plane worker (docs/workers.md). The manager binds the
   * pod's listeners inside its netns here, on the main thread, and hands the fds over.
   */
  readonly dataPlane: DataPlaneHandle;
  /**
   * DNS proxy on: each pod also gets UDP+TCP 15053 on its loopback (docs/dns.md). DNS runs on
   * the main thread, beside the state it answers from (docs/workers.md).
   */
  readonly dns?: DnsProxyDeps;
  /** Certificates of local identities: warmed when a pod starts, dropped with the last pod using them. */
  readonly secrets: { prefetch?(id: Identity): void; forget?(id: Identity): void };
  readonly registry: Registry;
  readonly readiness: ReadinessTask;
  readonly logger: Logger;
  /** Drain deadline for Del / snapshot removals (ports-and-modes.md §5). */
  readonly drainDeadlineMs: number;
  readonly localWorkloadWaitMs?: number;
  readonly retryIntervalMs?: number;
}

export type WorkloadStatus = 'Pending' | 'Up';

/** One `/config_dump` `workloadState` entry. */
export interface WorkloadStateEntry {
  readonly state: WorkloadStatus;
  /** Up pods: their live connections (Istio's ztunnel shape). */
  readonly connections?: ReturnType<typeof dumpConnections>;
  readonly info: { readonly name: string; readonly namespace: string; readonly serviceAccount: string };
}

interface Pod {
  readonly uid: string;
  readonly info: WorkloadInfo;
  readonly netnsFd: number;
  readonly inode: number;
  status: WorkloadStatus;
  /** The data-plane proxy key while it runs, and the listener fds this thread keeps for it. */
  proxy?: { readonly key: string; readonly fds: number[] };
  dns?: DnsServer;
  identity?: Identity;
  retry?: NodeJS.Timeout;
  /** The start attempt in progress (an Add waits for it rather than starting a second one). */
  starting?: Promise<void>;
  lastError?: string;
  removed: boolean;
}

export class WorkloadProxyManager implements ZdsHandler {
  private readonly pods = new Map<string, Pod>();
  private readonly drains = new Set<Promise<void>>();
  /** uids named by an Add or Keep since the current ZDS connection began (capture.md §6 step 3). */
  private seen = new Set<string>();
  private snapshotProcessed = false;
  private closed = false;
  private readonly log: Logger;
  private readonly metrics: {
    active: Gauge;
    pending: Gauge;
    started: Counter;
    stopped: Counter;
  };

  constructor(private readonly o: WorkloadProxyManagerOptions) {
    this.log = o.logger;
    const registers = [o.registry];
    this.metrics = {
      active: new Gauge({ name: 'workload_manager_active_proxy_count', help: 'The total number current workloads with active proxies (unstable).', registers }),
      pending: new Gauge({ name: 'workload_manager_pending_proxy_count', help: 'The total number current workloads with pending proxies (unstable).', registers }),
      started: new Counter({ name: 'workload_manager_proxies_started', help: 'The total number of proxies that were started (unstable).', registers }),
      stopped: new Counter({ name: 'workload_manager_proxies_stopped', help: 'The total number of proxies that were stopped (unstable).', registers }),
    };
    o.readiness.pending();
  }

  // --- ZDS connection events (ZdsClient onConnected / onDisconnected) ----------------------------

  /** A new ZDS connection: its snapshot starts now. */
  connected(): void {
    this.seen = new Set();
    this.snapshotProcessed = false;
    this.updateReadiness();
  }

  /** The stream ended: readiness pending again; proxies keep running until the next snapshot. */
  disconnected(): void {
    this.snapshotProcessed = false;
    this.updateReadiness();
  }

  // --- ZdsHandler ---------------------------------------------------------------------------------

  async add(uid: string, info: WorkloadInfo, netnsFd: number): Promise<void> {
    if (this.closed) {
      this.o.addon.closeFd(netnsFd);
      throw new ZtunnelError('INPOD_PROXY_START', 'ztunnel is shutting down');
    }
    const inode = this.o.addon.netnsInode(netnsFd);
    if (inode < 0) {
      this.o.addon.closeFd(netnsFd);
      throw new ZtunnelError('INPOD_PROXY_START', `cannot identify the network namespace of ${uid} (errno ${-inode})`);
    }
    this.seen.add(uid);
    const current = this.pods.get(uid);
    if (current && current.inode === inode) {
      // The same pod again (e.g. a new connection's snapshot): idempotent.
      this.o.addon.closeFd(netnsFd);
      if (current.status === 'Up') return;
      return this.start(current);
    }
    if (current) {
      // Same uid, new netns (capture.md §6): drain the old proxy, start a new one.
      this.log.info({ uid, oldInode: current.inode, inode }, 'pod network namespace changed; replacing its proxy');
      this.stop(current, 'replaced');
    }
    const pod: Pod = { uid, info, netnsFd, inode, status: 'Pending', removed: false };
    this.pods.set(uid, pod);
    this.updateGauges();
    return this.start(pod);
  }

  async keep(uid: string): Promise<void> {
    // The agent no longer holds this pod's netns (agent restart); the proxy we have stays.
    this.seen.add(uid);
    if (!this.pods.has(uid)) this.log.warn({ uid }, 'KeepWorkload for a pod this ztunnel does not know');
  }

  async del(uid: string): Promise<void> {
    const pod = this.pods.get(uid);
    if (!pod) {
      this.log.info({ uid }, 'DelWorkload for an unknown pod; nothing to do');
      return;
    }
    this.log.info({ uid, workload: describe(pod.info) }, 'pod deleted; draining its proxy');
    // ACK at once; the drain (up to the deadline) runs in the background.
    this.stop(pod, 'deleted');
  }

  async snapshotSent(): Promise<void> {
    for (const pod of [...this.pods.values()]) {
      if (!this.seen.has(pod.uid)) {
        this.log.info({ uid: pod.uid, workload: describe(pod.info) }, 'pod not in the ZDS snapshot; stopping its proxy');
        this.stop(pod, 'not in snapshot');
      }
    }
    this.snapshotProcessed = true;
    this.updateReadiness();
  }

  // --- views for admin and policy ------------------------------------------------------------------

  /** `/config_dump` `dns.listeners`: uid → the pod's DNS listener addresses. */
  dnsListeners(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const pod of this.pods.values()) if (pod.dns) out[pod.uid] = pod.dns.addresses();
    return out;
  }

  /**
   * `/config_dump` `workloadState`: uid → state and WorkloadInfo, and for an Up pod its live
   * connections among `connections` (gathered from every data-plane worker).
   */
  workloadState(connections: readonly LiveConnection[] = []): Record<string, WorkloadStateEntry> {
    const out: Record<string, WorkloadStateEntry> = {};
    for (const pod of this.pods.values()) {
      out[pod.uid] = {
        state: pod.status,
        ...(pod.status === 'Up' && pod.proxy ? { connections: dumpConnections(connections.filter((c) => c.proxy === pod.proxy!.key)) } : {}),
        info: { name: pod.info.name, namespace: pod.info.namespace, serviceAccount: pod.info.serviceAccount },
      };
    }
    return out;
  }

  /** Shutdown: every pod proxy drains (deadline), then every netns fd is closed. Idempotent. */
  async close(deadlineMs: number): Promise<void> {
    this.closed = true;
    for (const pod of [...this.pods.values()]) this.stop(pod, 'shutdown', deadlineMs);
    while (this.drains.size > 0) await Promise.allSettled([...this.drains]);
  }

  // --- internals -------------------------------------------------------------------------------------

  /** One start attempt; rejects (→ NACK) and schedules a retry when the proxy cannot start. */
  private start(pod: Pod): Promise<void> {
    if (pod.retry) {
      clearTimeout(pod.retry);
      delete pod.retry;
    }
    pod.starting ??= this.attempt(pod).finally(() => {
      delete pod.starting;
    });
    return pod.starting;
  }

  private async attempt(pod: Pod): Promise<void> {
    const log = this.log.child({ uid: pod.uid, workload: describe(pod.info) });
    const key = `${pod.uid}/${pod.inode}`;
    const fds: number[] = [];
    let added = false;
    let dns: DnsServer | undefined;
    try {
      const workload = await this.matchWorkload(pod);
      const identity = identityOf(workload);
      const c = this.o.config;
      const sockets = new LinuxSocketFactory(this.o.addon, { netnsFd: pod.netnsFd, onWarning: (m) => log.warn(m) });
      const wildcard = await this.wildcardFor(pod);
      const mode = transparentMode(c.enableOrigSrc);
      const addrs: Partial<Record<ListenerKind, BindAddr>> = {
        outbound: { host: wildcard, port: INPOD_PORTS.outbound },
        inboundPlaintext: { host: wildcard, port: INPOD_PORTS.inboundPlaintext },
        inbound: { host: wildcard, port: INPOD_PORTS.inbound },
        // ports-and-modes.md §1: IPv4 loopback only.
        ...(c.enableSocks5 ? { socks5: { host: '127.0.0.1', port: INPOD_PORTS.socks5 } } : {}),
      };
      // Bound here, in the pod's netns; every data-plane worker serves a duplicate (docs/workers.md).
      const listeners: Partial<Record<ListenerKind, ListenerSpec>> = {};
      for (const [kind, addr] of Object.entries(addrs) as [ListenerKind, BindAddr][]) {
        const { fd, transparent } = await sockets.bindListener({ ...addr, reusePort: c.inpodPortReuse, transparent: kind === 'socks5' ? 'off' : mode }).catch((e: unknown) => {
          throw listenerError(kind, `${addr.host}:${addr.port}`, e, false); // fixed in-pod ports: no setting moves them
        });
        fds.push(fd);
        listeners[kind] = { ...addr, fd, transparent };
      }
      const { namespace, name, serviceAccount } = pod.info;
      const spec: ProxySpec = {
        key,
        name: `${namespace}/${name}`,
        logContext: { uid: pod.uid },
        netnsFd: pod.netnsFd,
        listeners,
        reusePort: c.inpodPortReuse,
        transparent: mode,
        localWorkload: { namespace, name, serviceAccount, node: c.nodeName },
        identity,
      };
      await this.o.dataPlane.addProxy(spec);
      added = true;
      if (this.o.dns) dns = await this.startDns(pod, sockets, wildcard === '::');
      if (pod.removed) throw new ZtunnelError('INPOD_PROXY_START', 'pod removed while its proxy was starting');
      this.o.dataPlane.startAccepting(key);
      pod.proxy = { key, fds };
      if (dns) pod.dns = dns;
      pod.identity = identity;
      pod.status = 'Up';
      delete pod.lastError;
      this.metrics.started.inc();
      this.o.secrets.prefetch?.(identity);
      log.info({ identity: formatIdentity(identity), inode: pod.inode }, 'pod enrolled; in-pod listeners started');
    } catch (e) {
      dns?.close();
      if (added) await this.o.dataPlane.removeProxy(key, 0).catch(() => {});
      for (const fd of fds) this.o.addon.closeFd(fd);
      const error = e instanceof ZtunnelError ? e : new ZtunnelError('INPOD_PROXY_START', `failed to start the proxy for ${describe(pod.info)}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      pod.lastError = error.message;
      if (!pod.removed && !this.closed) {
        pod.status = 'Pending';
        log.warn({ err: error.message, retryMs: this.retryMs }, 'pod proxy failed to start; pending, will retry');
        pod.retry = setTimeout(() => {
          delete pod.retry;
          if (!pod.removed && !this.closed) this.start(pod).catch(() => {});
        }, this.retryMs);
        pod.retry.unref();
      }
      throw error;
    } finally {
      this.updateGauges();
      this.updateReadiness();
    }
  }

  /**
   * The pod's DNS listeners on 127.0.0.1:15053 and, when the pod has IPv6, [::1]:15053 (Istio binds
   * both when IPv6 localhost works in the pod). Upstream queries leave from the pod's netns with the
   * ztunnel mark, so istio-cni's rules let them out instead of capturing them again.
   */
  private async startDns(pod: Pod, sockets: LinuxSocketFactory, ipv6: boolean): Promise<DnsServer> {
    const { namespace, name, serviceAccount } = pod.info;
    const node = this.o.config.nodeName;
    const mark = this.o.config.packetMark;
    const start = (addresses: BindAddr[]) =>
      startDnsProxy({
        deps: this.o.dns!,
        sockets,
        addresses,
        client: () => this.o.state.findLocalWorkload(namespace, name, serviceAccount, node),
        perPodSearch: true,
        ...(mark !== undefined ? { mark } : {}),
      });
    const v4: BindAddr = { host: '127.0.0.1', port: INPOD_PORTS.dns };
    if (!ipv6) return start([v4]);
    try {
      return await start([v4, { host: '::1', port: INPOD_PORTS.dns }]);
    } catch {
      // No IPv6 loopback in this pod (e.g. disabled by sysctl): IPv4 only, as Istio downgrades.
      return start([v4]);
    }
  }

  /** capture.md §7: WorkloadInfo ↔ a state workload on this node, waiting up to 5 s for it. */
  private async matchWorkload(pod: Pod): Promise<Workload> {
    const { namespace, name, serviceAccount } = pod.info;
    const node = this.o.config.nodeName;
    const deadline = Date.now() + (this.o.localWorkloadWaitMs ?? LOCAL_WORKLOAD_WAIT_MS);
    for (;;) {
      const w = this.o.state.findLocalWorkload(namespace, name, serviceAccount, node);
      if (w) return w;
      if (pod.removed || this.closed) throw new ZtunnelError('UNKNOWN_SOURCE', 'pod removed while waiting for its workload');
      if (Date.now() >= deadline) {
        throw new ZtunnelError('UNKNOWN_SOURCE', `failed to fetch information about local workload ${namespace}/${name} (service account ${serviceAccount}, node ${node || '<any>'})`);
      }
      await new Promise((r) => setTimeout(r, MATCH_POLL_MS));
    }
  }

  /**
   * `[::]` when IPv6 is enabled and the pod netns can create IPv6 sockets (a kernel booted with
   * ipv6.disable=1 cannot), else `0.0.0.0` (ports-and-modes.md §1).
   */
  private async wildcardFor(pod: Pod): Promise<string> {
    if (!this.o.config.ipv6Enabled) return '0.0.0.0';
    try {
      const fd = await this.o.addon.socketInNetns(pod.netnsFd, 6);
      this.o.addon.closeFd(fd);
      return '::';
    } catch {
      return '0.0.0.0';
    }
  }

  /** Removes the pod now; its proxy drains in the background, then its netns fd is closed. */
  private stop(pod: Pod, reason: string, deadlineMs = this.o.drainDeadlineMs): void {
    if (pod.removed) return;
    pod.removed = true;
    if (pod.retry) clearTimeout(pod.retry);
    if (this.pods.get(pod.uid) === pod) this.pods.delete(pod.uid);
    const proxy = pod.proxy;
    const wasUp = pod.status === 'Up';
    delete pod.proxy;
    // The DNS listeners close with the pod's other listeners (in-flight lookups are dropped).
    pod.dns?.close();
    delete pod.dns;
    this.forgetIdentity(pod);
    const done = (async () => {
      // A start attempt in flight sees `removed` and closes what it bound.
      await pod.starting?.catch(() => {});
      if (proxy) {
        await this.o.dataPlane.removeProxy(proxy.key, deadlineMs).catch((e: unknown) => this.log.warn({ uid: pod.uid, err: String(e) }, 'error while draining a pod proxy'));
        // Every worker closed its duplicate: the listening sockets go away with these.
        for (const fd of proxy.fds) this.o.addon.closeFd(fd);
      }
      this.o.addon.closeFd(pod.netnsFd);
      if (wasUp) this.metrics.stopped.inc();
      this.log.info({ uid: pod.uid, workload: describe(pod.info), reason }, 'pod proxy stopped');
    })();
    this.drains.add(done);
    void done.finally(() => this.drains.delete(done));
    this.updateGauges();
    this.updateReadiness();
  }

  /** Drops the certificate when no remaining pod uses that identity. */
  private forgetIdentity(pod: Pod): void {
    const id = pod.identity;
    if (!id) return;
    for (const other of this.pods.values()) if (other.identity && identityEquals(other.identity, id)) return;
    this.o.secrets.forget?.(id);
  }

  private get retryMs(): number {
    return this.o.retryIntervalMs ?? PENDING_RETRY_MS;
  }

  private updateGauges(): void {
    let up = 0;
    let pending = 0;
    for (const p of this.pods.values()) p.status === 'Up' ? up++ : pending++;
    this.metrics.active.set(up);
    this.metrics.pending.set(pending);
  }

  private updateReadiness(): void {
    const anyPending = [...this.pods.values()].some((p) => p.status === 'Pending');
    if (this.snapshotProcessed && !anyPending) this.o.readiness.complete();
    else this.o.readiness.pending();
  }
}

function describe(info: WorkloadInfo): string {
  return `${info.namespace}/${info.name}`;
}
