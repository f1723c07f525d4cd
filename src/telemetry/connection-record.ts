// The record phase of every connection (docs/design.md §1): one place moves the traffic metrics and
// writes the access log (telemetry.md §3–§4). Proxies describe peers with plain values so this
// layer depends on core only.
import { isZtunnelError, type ResponseFlag } from '../core/errors.js';
import { formatAddr, type SocketAddr } from '../core/net.js';
import { formatIdentity, type Identity } from '../core/spiffe.js';
import { logFields, type Logger } from './logger.js';

/** What telemetry needs to know about a workload (source or destination). */
export interface PeerInfo {
  readonly podName: string;
  readonly workloadName: string;
  readonly namespace: string;
  readonly canonicalName: string;
  readonly canonicalRevision: string;
  readonly clusterId: string;
  readonly region: string;
  readonly zone: string;
  /**
   * `*_app` when it differs from the canonical name: a source derived from baggage reports its
   * workload name as app (telemetry.md §3 "from baggage"). Absent: the canonical name.
   */
  readonly app?: string;
  /** The workload's SPIFFE identity (destination_principal). */
  readonly identity?: Identity;
}

export interface ServiceInfo {
  readonly hostname: string;
  readonly name: string;
  readonly namespace: string;
}

export interface ConnectionDescription {
  readonly direction: 'inbound' | 'outbound';
  readonly srcAddr: SocketAddr;
  readonly source?: PeerInfo;
  /** Only a real mTLS identity (telemetry.md §3 source_principal). */
  readonly srcIdentity?: Identity;
  /** The actual next hop (outbound) or the local address (inbound). */
  readonly dstAddr: SocketAddr;
  /** Outbound: the address the app connected to (before routing). */
  readonly originalDst?: SocketAddr;
  readonly hboneAddr?: string;
  readonly service?: ServiceInfo;
  readonly destination?: PeerInfo;
  readonly dstIdentity?: Identity;
  readonly mtls: boolean;
  /** Owning pod uid (shared mode) or workload uid. */
  readonly ownerUid?: string;
}

/** The metric side, implemented with prom-client (telemetry/traffic-metrics.ts). */
export interface TrafficMetricsSink {
  opened(d: ConnectionDescription): void;
  bytes(d: ConnectionDescription, direction: 'clientToServer' | 'serverToClient', n: number): void;
  closed(d: ConnectionDescription, flag: ResponseFlag): void;
  socketsOpen(reporter: 'source' | 'destination', delta: number): void;
}

export interface LiveConnection {
  readonly id: number;
  readonly description: ConnectionDescription;
  readonly startedAtMs: number;
  readonly clientToServerBytes: number;
  readonly serverToClientBytes: number;
  /** `<ns>/<name>` + rule index, or `no allow policies` (inbound). */
  allowedBy?: string;
  /** The data-plane worker holding it (set on the snapshots a worker reports). */
  readonly worker?: number;
  /** The key of the proxy (ProxySpec) holding it (set on the snapshots a worker reports). */
  readonly proxy?: string;
}

let localNextId = 1;
let nextId: () => number = () => localNextId++;

/**
 * Where connection ids come from. Data-plane workers share one counter (an atomic add on shared
 * memory, no message), so ids stay unique across threads (docs/workers.md).
 */
export function setConnectionIdSource(next: () => number): void {
  nextId = next;
}

/** A plain copy of a live connection, to send to another thread. */
export function snapshotConnection(c: LiveConnection, worker: number, proxy: string): LiveConnection {
  return {
    id: c.id,
    description: c.description,
    startedAtMs: c.startedAtMs,
    clientToServerBytes: c.clientToServerBytes,
    serverToClientBytes: c.serverToClientBytes,
    ...(c.allowedBy !== undefined ? { allowedBy: c.allowedBy } : {}),
    worker,
    proxy,
  };
}

export class ConnectionRecord implements LiveConnection {
  readonly id = nextId();
  readonly startedAtMs = Date.now();
  clientToServerBytes = 0;
  serverToClientBytes = 0;
  allowedBy?: string;
  private done = false;

  constructor(
    readonly description: ConnectionDescription,
    private readonly logger: Logger,
    private readonly metrics: TrafficMetricsSink | undefined,
    private readonly onDone: (r: ConnectionRecord) => void,
  ) {
    metrics?.opened(description);
    metrics?.socketsOpen(reporterOf(description), 1);
    if (logger.isLevelEnabled('debug')) logger.debug(accessFields(this, false), 'connection opened');
  }

  /** Bytes client → server (downstream → upstream), counted as copied. */
  addClientToServer(n: number): void {
    this.clientToServerBytes += n;
    this.metrics?.bytes(this.description, 'clientToServer', n);
  }

  addServerToClient(n: number): void {
    this.serverToClientBytes += n;
    this.metrics?.bytes(this.description, 'serverToClient', n);
  }

  /** Exactly once per record: closed counter + access log line. */
  finish(error?: unknown): void {
    if (this.done) return;
    this.done = true;
    const flag: ResponseFlag = error === undefined ? '-' : isZtunnelError(error) ? error.flag : 'CONNECT';
    this.metrics?.closed(this.description, flag);
    this.metrics?.socketsOpen(reporterOf(this.description), -1);
    // The access line is built only when its level is on (RUST_LOG=access=warn turns it off; the
    // fields cost ~3% of a short connection's CPU, issue 7).
    if (error === undefined) {
      if (this.logger.isLevelEnabled('info')) logFields(this.logger, 'info', accessFields(this, true), 'connection complete');
    } else if (this.logger.isLevelEnabled('error')) {
      const fields = accessFields(this, true);
      fields['error'] = error instanceof Error ? error.message : String(error);
      logFields(this.logger, 'error', fields, 'connection complete');
    }
    this.onDone(this);
  }
}

export function reporterOf(d: ConnectionDescription): 'source' | 'destination' {
  return d.direction === 'outbound' ? 'source' : 'destination';
}

/** telemetry.md §4 field order; absent values omitted; bytes from the reporter's viewpoint. */
function accessFields(r: ConnectionRecord, withTotals: boolean): Record<string, unknown> {
  const d = r.description;
  const f: Record<string, unknown> = { 'src.addr': formatAddr(d.srcAddr) };
  const srcWorkload = d.source ? d.source.podName || d.source.canonicalName : undefined;
  if (srcWorkload) f['src.workload'] = srcWorkload;
  if (d.source?.namespace) f['src.namespace'] = d.source.namespace;
  if (d.srcIdentity) f['src.identity'] = formatIdentity(d.srcIdentity);
  if (d.source?.clusterId) f['src.cluster'] = d.source.clusterId;
  f['dst.addr'] = formatAddr(d.dstAddr);
  if (d.hboneAddr) f['dst.hbone_addr'] = d.hboneAddr;
  if (d.service) f['dst.service'] = d.service.hostname;
  const dstWorkload = d.destination ? d.destination.podName || d.destination.canonicalName : undefined;
  if (dstWorkload) f['dst.workload'] = dstWorkload;
  if (d.destination?.namespace) f['dst.namespace'] = d.destination.namespace;
  if (d.mtls && d.dstIdentity) f['dst.identity'] = formatIdentity(d.dstIdentity);
  if (d.destination?.clusterId) f['dst.cluster'] = d.destination.clusterId;
  f['direction'] = d.direction;
  if (r.allowedBy) f['policy'] = r.allowedBy;
  if (withTotals) {
    // outbound bytes_sent = client → server; inbound bytes_sent = server → client
    f['bytes_sent'] = d.direction === 'outbound' ? r.clientToServerBytes : r.serverToClientBytes;
    f['bytes_recv'] = d.direction === 'outbound' ? r.serverToClientBytes : r.clientToServerBytes;
    f['duration'] = `${Date.now() - r.startedAtMs}ms`;
  }
  return f;
}

/** WARN `connection failed` for failures before a context exists (no metrics). */
export function logConnectionFailed(logger: Logger, src: SocketAddr, dst: SocketAddr, direction: 'inbound' | 'outbound', error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  logger.warn({ 'src.addr': formatAddr(src), 'dst.addr': formatAddr(dst), direction, error: message }, 'connection failed');
}

/** Starts records; the proxy's handle on the record phase. */
export class ConnectionRecorder {
  private readonly open = new Set<ConnectionRecord>();
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly logger: Logger, private readonly metrics?: TrafficMetricsSink) {}

  start(description: ConnectionDescription): ConnectionRecord {
    const record = new ConnectionRecord(description, this.logger, this.metrics, this.finished);
    this.open.add(record);
    return record;
  }

  /** One callback for every record (not a closure per connection, issue 7). */
  private readonly finished = (r: ConnectionRecord): void => {
    this.open.delete(r);
    if (this.open.size === 0) for (const w of this.idleWaiters.splice(0)) w();
  };

  /** Records started and not yet finished. */
  get openCount(): number {
    return this.open.size;
  }

  /**
   * Finishes every record still open with `reason` (their access lines and closed counts are
   * written now; a later finish() of the same record does nothing). Shutdown calls it after
   * settled() so no record can be written after "shutdown complete". Returns how many it finished.
   */
  finishOpen(reason: Error): number {
    const open = [...this.open];
    for (const r of open) r.finish(reason);
    return open.length;
  }

  /**
   * Resolves once every started record has finished, or after `timeoutMs`. Shutdown waits on it
   * after the drain deadline aborted the last connections, so each of them still gets its closed
   * count and access-log line before the process exits (telemetry.md §3: closed once per opened,
   * including connections dropped during drain).
   */
  settled(timeoutMs: number): Promise<void> {
    if (this.open.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.idleWaiters = this.idleWaiters.filter((w) => w !== done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.idleWaiters.push(done);
    });
  }
}
