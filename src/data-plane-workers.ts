// The control plane's handle on the data plane (docs/workers.md): N worker threads, each running
// data-plane-worker.ts. Everything the workers must know is sent to all of them (state batches,
// rotated certificates, log levels, the proxies to run); what users read is gathered from all of
// them when it is read (connections, metrics). A worker that fails is replaced: the new one gets
// the current state, every proxy, and takes its place; the others are not touched.
import { Worker } from 'node:worker_threads';
import type { Config } from './config/config.js';
import { isZtunnelError } from './core/errors.js';
import type { DataPlaneHandle, ProxyAddresses, ProxySpec } from './proxy/proxy-spec.js';
import type { CallName, FromWorker, MetricsJson, ToWorker, WorkerCalls, WorkerInit } from './data-plane-protocol.js';
import type { StateBatch } from './state/batch.js';
import type { CertificateProvider, WorkloadCertificate } from './tls/certificate.js';
import type { LiveConnection } from './telemetry/connection-record.js';
import type { Logger } from './telemetry/logger.js';

/** How long a call on a worker may take beyond its own deadline before it counts as failed. */
const CALL_TIMEOUT_MS = 10_000;
/** Delay before restarting a worker that failed before it was ever up. */
const RESPAWN_DELAY_MS = 1_000;

export interface DataPlaneWorkersOptions {
  readonly config: Config;
  readonly count: number;
  readonly logger: Logger;
  /** The current log spec, and a way to hear of changes. */
  readonly logSpec: () => string;
  readonly certs: CertificateProvider;
  /** The whole current state as one batch, for a worker that starts late (a replacement). */
  readonly snapshot: () => StateBatch;
  /** Told when all workers are up (true) or one is being replaced (false). */
  readonly onReadyChange: (allUp: boolean) => void;
}

interface Pending {
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

interface Slot {
  readonly id: number;
  worker: Worker;
  up: boolean;
  /** It came up once (a worker failing at boot is restarted after a delay). */
  everUp: boolean;
  ready: Promise<void>;
  readonly calls: Map<number, Pending>;
  /** The metrics the worker reported last (kept if it dies without reporting). */
  lastMetrics: MetricsJson;
  failedMetrics?: MetricsJson;
}

export class DataPlaneWorkers implements DataPlaneHandle {
  private readonly slots: Slot[] = [];
  private readonly specs = new Map<string, { spec: ProxySpec; accepting: boolean }>();
  /** Counters of failed workers, so the sums never go down (docs/workers.md). */
  private readonly retired: MetricsJson[] = [];
  private readonly connectionIds = new SharedArrayBuffer(4);
  /** One Int32 per worker: its open connections, stored by the worker once a second. */
  private readonly openCounts: SharedArrayBuffer;
  private nextCall = 1;
  private closing = false;
  private started = false;
  /** Resolves once start() created the workers: proxies added earlier wait for it. */
  private readonly spawned: Promise<void>;
  private markSpawned!: () => void;

  constructor(private readonly o: DataPlaneWorkersOptions) {
    new Int32Array(this.connectionIds)[0] = 1;
    this.openCounts = new SharedArrayBuffer(4 * Math.max(1, o.count));
    this.spawned = new Promise<void>((r) => (this.markSpawned = r));
  }

  get count(): number {
    return this.o.count;
  }

  /** Connections started by every worker so far (the shared id counter): moves with traffic. */
  connectionsStarted(): number {
    return Atomics.load(new Int32Array(this.connectionIds), 0);
  }

  /** Starts every worker; resolves when all are up, rejects when one ends before it is. */
  async start(): Promise<void> {
    for (let id = 0; id < this.o.count; id++) this.slots.push(this.spawn(id));
    this.markSpawned();
    await Promise.all(this.slots.map((s) => s.ready));
    this.started = true;
    for (const s of this.slots) s.everUp = true;
    this.o.onReadyChange(true);
  }

  /** Every state batch the control plane applies, in order, to every worker. */
  applyState(batch: StateBatch): void {
    this.broadcast({ t: 'state', batch });
  }

  certificateRotated(cert: WorkloadCertificate): void {
    this.broadcast({ t: 'cert', cert });
  }

  logSpecChanged(spec: string): void {
    this.broadcast({ t: 'logSpec', spec });
  }

  /**
   * Runs the proxy on every worker (each adopts its own duplicate of the listener fds); the
   * addresses are the first worker's. When a worker refuses, the others drop it again.
   */
  async addProxy(spec: ProxySpec): Promise<ProxyAddresses> {
    this.specs.set(spec.key, { spec, accepting: false });
    await this.spawned;
    const results = await Promise.allSettled(this.slots.map((s) => this.call(s, 'addProxy', spec)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      this.specs.delete(spec.key);
      await Promise.allSettled(this.slots.map((s) => this.call(s, 'removeProxy', { key: spec.key, deadlineMs: 0 })));
      throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
    }
    return (results[0] as PromiseFulfilledResult<ProxyAddresses>).value;
  }

  startAccepting(key: string): void {
    const entry = this.specs.get(key);
    if (!entry) return;
    entry.accepting = true;
    for (const s of this.slots) void this.call(s, 'startAccepting', key).catch(() => {});
    // Workers not created yet get it with the proxy (restore() on start).
  }

  /** Drains the proxy on every worker; resolves when all are done (the listener fds may then be closed). */
  async removeProxy(key: string, deadlineMs: number): Promise<void> {
    this.specs.delete(key);
    await this.spawned;
    await Promise.allSettled(this.slots.map((s) => this.call(s, 'removeProxy', { key, deadlineMs }, deadlineMs)));
  }

  /** Open connections over every worker, as they stored them last (at most a second old). */
  openConnections(): number {
    return new Int32Array(this.openCounts).reduce((n, x) => n + x, 0);
  }

  /** Live connections of every worker, each tagged with its worker. */
  async connections(): Promise<LiveConnection[]> {
    const lists = await Promise.allSettled(this.slots.map((s) => this.call(s, 'connections', undefined)));
    return lists.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
  }

  /** Each worker's metrics as read now, plus the counters of failed workers. */
  async metrics(): Promise<MetricsJson[]> {
    const got = await Promise.all(
      this.slots.map((s) =>
        this.call(s, 'metrics', undefined).then(
          (m) => (s.lastMetrics = m),
          () => s.lastMetrics,
        ),
      ),
    );
    return [...got, ...this.retired];
  }

  /** Test-only hook (docs/workers.md): worker `n` fails with an uncaught error. */
  crash(n: number): boolean {
    const s = this.slots[n];
    if (!s || !s.up) return false;
    s.worker.postMessage({ t: 'crash' } satisfies ToWorker);
    return true;
  }

  /** Drains every worker (at most `deadlineMs`), keeps their final counts, then stops them. */
  async close(deadlineMs: number): Promise<void> {
    this.closing = true;
    this.markSpawned(); // nothing waits for workers that will never start
    await Promise.allSettled(
      this.slots.map(async (s) => {
        try {
          s.lastMetrics = await this.call(s, 'close', { deadlineMs }, deadlineMs + 5_000);
        } catch {
          /* a worker that does not answer is stopped below */
        }
      }),
    );
    await Promise.allSettled(this.slots.map((s) => s.worker.terminate()));
  }

  /** Final counts, after close(): what the workers reported last. */
  finalMetrics(): MetricsJson[] {
    return [...this.slots.map((s) => s.lastMetrics), ...this.retired];
  }

  // --- internals -------------------------------------------------------------------------------

  private spawn(id: number): Slot {
    Atomics.store(new Int32Array(this.openCounts), id, 0);
    const init: WorkerInit = { config: this.o.config, workerId: id, connectionIds: this.connectionIds, openCounts: this.openCounts, logSpec: this.o.logSpec() };
    // The name is also the OS thread name (`top -H`, /proc/<pid>/task/*/comm), as Istio's Tokio
    // workers are `ztunnel-N`: the benchmark reads each worker's CPU by it.
    const worker = new Worker(new URL('./data-plane-worker.js', import.meta.url), { workerData: init, name: `ztunnel-dp-${id}` });
    let markReady!: () => void;
    let fail!: (e: Error) => void;
    const ready = new Promise<void>((resolve, reject) => ((markReady = resolve), (fail = reject)));
    const slot: Slot = { id, worker, up: false, everUp: false, ready, calls: new Map(), lastMetrics: [] };
    // Queued before anything else this worker hears: the state as it is now.
    worker.postMessage({ t: 'state', batch: this.o.snapshot() } satisfies ToWorker);
    worker.on('message', (m: FromWorker) => this.onMessage(slot, m, markReady));
    worker.on('error', (e) => {
      this.o.logger.error({ worker: id, err: e.message }, 'data-plane worker error');
      fail(e);
    });
    worker.on('exit', (code) => {
      fail(new Error(`data-plane worker ${id} exited with ${code} before it was up`));
      this.onExit(slot, code);
    });
    return slot;
  }

  private onMessage(slot: Slot, m: FromWorker, markReady: () => void): void {
    switch (m.t) {
      case 'ready':
        slot.up = true;
        markReady();
        return;
      case 'reply': {
        const p = slot.calls.get(m.id);
        if (!p) return;
        slot.calls.delete(m.id);
        clearTimeout(p.timer);
        if (m.error !== undefined) p.reject(new Error(m.error));
        else p.resolve(m.value);
        return;
      }
      case 'certRequest':
        this.o.certs.getCertificate(m.identity).then(
          (cert) => this.post(slot, { t: 'certReply', id: m.id, cert }),
          (e: unknown) =>
            this.post(slot, {
              t: 'certReply',
              id: m.id,
              error: { code: isZtunnelError(e) ? e.code : 'IDENTITY_UNAVAILABLE', message: e instanceof Error ? e.message : String(e) },
            }),
        );
        return;
      case 'failed':
        slot.failedMetrics = m.metrics;
        return;
    }
  }

  private onExit(slot: Slot, code: number): void {
    slot.up = false;
    for (const [, p] of slot.calls) {
      clearTimeout(p.timer);
      p.reject(new Error(`data-plane worker ${slot.id} exited`));
    }
    slot.calls.clear();
    // Before the first start completed, a failing worker fails the start (no replacement loop).
    if (this.closing || !this.started) return;
    // Its connections are gone; its counts stay in the sums (gauges of open sockets do not).
    this.retired.push((slot.failedMetrics ?? slot.lastMetrics).filter((f) => String(f.type) === 'counter'));
    slot.lastMetrics = []; // now counted in `retired`
    delete slot.failedMetrics;
    this.o.logger.error({ worker: slot.id, exitCode: code }, 'data-plane worker exited; starting a replacement');
    this.o.onReadyChange(false);
    // A worker that never came up is not restarted in a tight loop.
    const delayMs = slot.everUp ? 0 : RESPAWN_DELAY_MS;
    setTimeout(() => {
      if (this.closing) return;
      const next = this.spawn(slot.id);
      this.slots[slot.id] = next;
      void this.restore(next);
    }, delayMs).unref();
  }

  /** A replacement worker gets every proxy the others run, then counts as up. */
  private async restore(next: Slot): Promise<void> {
    try {
      await next.ready;
    } catch {
      return; // its exit handler starts another
    }
    next.everUp = true;
    for (const { spec, accepting } of [...this.specs.values()]) {
      try {
        await this.call(next, 'addProxy', spec);
        if (accepting) await this.call(next, 'startAccepting', spec.key);
      } catch (e) {
        this.o.logger.error({ worker: next.id, proxy: spec.name, err: e instanceof Error ? e.message : String(e) }, 'replacement worker could not start a proxy');
      }
    }
    if (this.closing || this.slots[next.id] !== next || !next.up) return;
    this.o.logger.info({ worker: next.id }, 'data-plane worker replaced');
    if (this.slots.every((s) => s.up)) this.o.onReadyChange(true);
  }

  private call<K extends CallName>(slot: Slot, name: K, args: WorkerCalls[K]['args'], extraMs = 0): Promise<WorkerCalls[K]['result']> {
    if (!slot.up && name !== 'addProxy' && name !== 'startAccepting') {
      // A worker being replaced has nothing to report yet.
      if (name === 'connections') return Promise.resolve([] as LiveConnection[] as WorkerCalls[K]['result']);
      if (name === 'metrics') return Promise.reject(new Error('worker not up'));
    }
    return new Promise((resolve, reject) => {
      const id = this.nextCall++;
      const timer = setTimeout(() => {
        slot.calls.delete(id);
        reject(new Error(`data-plane worker ${slot.id} did not answer ${name}`));
      }, CALL_TIMEOUT_MS + extraMs);
      slot.calls.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      slot.worker.postMessage({ t: 'call', id, name, args } satisfies ToWorker);
    });
  }

  private post(slot: Slot, m: ToWorker): void {
    if (this.slots[slot.id] === slot) slot.worker.postMessage(m);
  }

  private broadcast(m: ToWorker): void {
    for (const s of this.slots) s.worker.postMessage(m);
  }
}
