// Workload certificate cache (xds.md §7): fetch on demand or prefetch, refresh at half-life,
// per-identity exponential backoff on failure while a still-valid certificate keeps being
// served, at most `maxInFlight` CA calls at a time, queued by priority.
//
// Invariants:
// - at most one fetch (queued or in flight) per identity; every caller shares its promise;
// - an identity has at most one timer (refresh or retry);
// - a forgotten identity's in-flight fetch still answers its waiters but stores nothing;
// - every timer is unref'd and cleared by forget()/close().
import { ZtunnelError, asZtunnelError } from '../core/errors.js';
import { formatIdentity, identityEquals, type Identity } from '../core/spiffe.js';
import type { CertificateProvider, WorkloadCertificate } from '../tls/certificate.js';
import type { Logger } from '../telemetry/logger.js';
import type { CaClient } from './ca-client.js';

/** RealTime: a connection is waiting; Warmup: prefetch; Background: refresh or retry. */
export type FetchPriority = 'RealTime' | 'Warmup' | 'Background';
const PRIORITIES: readonly FetchPriority[] = ['RealTime', 'Warmup', 'Background'];
const RANK: Readonly<Record<FetchPriority, number>> = { RealTime: 0, Warmup: 1, Background: 2 };

export type CertState = 'Available' | 'Initializing' | `Unavailable: ${string}`;

export interface CertStateEntry {
  identity: string;
  state: CertState;
  cert?: WorkloadCertificate;
}

export type TimerHandle = unknown;

export interface SecretManagerOptions {
  ca: CaClient;
  logger: Logger;
  /** Clock in epoch ms (tests inject one). */
  now?: () => number;
  /** [0, 1) source for backoff jitter. */
  random?: () => number;
  /** At most this many CA calls at once (xds.md §7: 8). */
  maxInFlight?: number;
  setTimer?: (fn: () => void, delayMs: number) => TimerHandle;
  clearTimer?: (handle: TimerHandle) => void;
}

export type RotateListener = (id: Identity, cert: WorkloadCertificate, previous: WorkloadCertificate) => void;

export const INITIAL_BACKOFF_MS = 1_000;
export const MAX_BACKOFF_MS = 150_000;
export const BACKOFF_JITTER = 0.2;
/** Node fires longer timeouts at once; longer waits are re-armed in steps of this. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Fetch {
  readonly promise: Promise<WorkloadCertificate>;
  resolve(c: WorkloadCertificate): void;
  reject(e: ZtunnelError): void;
  priority: FetchPriority;
  started: boolean;
  cancelled: boolean;
}

interface Entry {
  readonly id: Identity;
  readonly key: string;
  cert?: WorkloadCertificate;
  /** Last failure, cleared by a success. */
  error?: ZtunnelError;
  fetch?: Fetch;
  timer?: TimerHandle;
  /** Backoff base for the next failure. */
  backoffMs: number;
}

function defaultSetTimer(fn: () => void, delayMs: number): TimerHandle {
  const t = setTimeout(fn, delayMs);
  t.unref();
  return t;
}

export class SecretManager implements CertificateProvider {
  readonly #ca: CaClient;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #maxInFlight: number;
  readonly #setTimer: (fn: () => void, delayMs: number) => TimerHandle;
  readonly #clearTimer: (handle: TimerHandle) => void;
  readonly #entries = new Map<string, Entry>();
  /** One FIFO per priority; an upgraded fetch is pushed again and skipped at its old place. */
  readonly #queues: Record<FetchPriority, Array<{ entry: Entry; fetch: Fetch }>> = { RealTime: [], Warmup: [], Background: [] };
  readonly #rotateListeners: RotateListener[] = [];
  #inFlight = 0;
  #closed = false;

  constructor(opts: SecretManagerOptions) {
    this.#ca = opts.ca;
    this.#log = opts.logger;
    this.#now = opts.now ?? Date.now;
    this.#random = opts.random ?? Math.random;
    this.#maxInFlight = Math.max(1, opts.maxInFlight ?? 8);
    this.#setTimer = opts.setTimer ?? defaultSetTimer;
    this.#clearTimer = opts.clearTimer ?? ((h) => clearTimeout(h as NodeJS.Timeout));
  }

  /**
   * A valid certificate for `id`: the cached one, else the pending fetch, else a new fetch at
   * RealTime priority. While the identity is backing off after a failure and has no valid
   * certificate, rejects at once with the last error (a waiting connection fails fast).
   */
  getCertificate(id: Identity): Promise<WorkloadCertificate> {
    if (this.#closed) return Promise.reject(new ZtunnelError('IDENTITY_UNAVAILABLE', 'secret manager is closed'));
    const entry = this.#entry(id);
    if (entry.cert && this.#valid(entry.cert)) return Promise.resolve(entry.cert);
    if (entry.fetch) {
      this.#raise(entry, entry.fetch, 'RealTime');
      return entry.fetch.promise;
    }
    if (entry.error && entry.timer !== undefined) return Promise.reject(entry.error);
    return this.#request(entry, 'RealTime');
  }

  /** Starts fetching ahead of need (Warmup); no-op when cached, pending or backing off. */
  prefetch(id: Identity): void {
    if (this.#closed) return;
    const entry = this.#entry(id);
    if (entry.fetch) {
      this.#raise(entry, entry.fetch, 'Warmup');
      return;
    }
    if ((entry.cert && this.#valid(entry.cert)) || entry.timer !== undefined) return;
    this.#request(entry, 'Warmup').catch(() => { /* logged in #run; state shows it */ });
  }

  /** Drops the identity: timer cancelled, certificate forgotten, queued fetch rejected. */
  forget(id: Identity): void {
    const key = formatIdentity(id);
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    this.#cancelTimer(entry);
    if (entry.fetch && !entry.fetch.started) {
      entry.fetch.cancelled = true;
      entry.fetch.reject(new ZtunnelError('IDENTITY_UNAVAILABLE', `certificate for ${key} was forgotten`));
    }
    entry.fetch = undefined;
  }

  /** Called with the new and the previous certificate whenever one replaces another. */
  onRotate(cb: RotateListener): () => void {
    this.#rotateListeners.push(cb);
    return () => {
      const i = this.#rotateListeners.indexOf(cb);
      if (i >= 0) this.#rotateListeners.splice(i, 1);
    };
  }

  /** Each identity's state for /config_dump (xds.md §7). */
  states(): CertStateEntry[] {
    const out: CertStateEntry[] = [];
    for (const e of this.#entries.values()) {
      if (e.cert && this.#valid(e.cert)) out.push({ identity: e.key, state: 'Available', cert: e.cert });
      else if (e.error) out.push({ identity: e.key, state: `Unavailable: ${e.error.message}`, ...(e.cert ? { cert: e.cert } : {}) });
      else if (e.cert) out.push({ identity: e.key, state: 'Unavailable: certificate expired', cert: e.cert });
      else out.push({ identity: e.key, state: 'Initializing' });
    }
    return out.sort((a, b) => (a.identity < b.identity ? -1 : a.identity > b.identity ? 1 : 0));
  }

  /** Clears every timer and rejects queued fetches; in-flight CA calls finish but store nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const e of this.#entries.values()) {
      this.#cancelTimer(e);
      if (e.fetch && !e.fetch.started) {
        e.fetch.cancelled = true;
        e.fetch.reject(new ZtunnelError('IDENTITY_UNAVAILABLE', 'secret manager is closed'));
      }
    }
    for (const p of PRIORITIES) this.#queues[p].length = 0;
  }

  // --- internals ------------------------------------------------------------------------------

  #entry(id: Identity): Entry {
    const key = formatIdentity(id);
    let e = this.#entries.get(key);
    if (!e) {
      e = { id: { trustDomain: id.trustDomain, namespace: id.namespace, serviceAccount: id.serviceAccount }, key, backoffMs: INITIAL_BACKOFF_MS };
      this.#entries.set(key, e);
    }
    return e;
  }

  #valid(cert: WorkloadCertificate): boolean {
    return this.#now() < cert.notAfter.getTime();
  }

  #request(entry: Entry, priority: FetchPriority): Promise<WorkloadCertificate> {
    this.#cancelTimer(entry);
    let resolve!: (c: WorkloadCertificate) => void;
    let reject!: (e: ZtunnelError) => void;
    const promise = new Promise<WorkloadCertificate>((res, rej) => { resolve = res; reject = rej; });
    const fetch: Fetch = { promise, resolve, reject, priority, started: false, cancelled: false };
    entry.fetch = fetch;
    this.#queues[priority].push({ entry, fetch });
    this.#pump();
    return promise;
  }

  /** A more urgent caller moves a queued fetch up (it keeps its place among its new peers). */
  #raise(entry: Entry, fetch: Fetch, priority: FetchPriority): void {
    if (fetch.started || RANK[priority] >= RANK[fetch.priority]) return;
    fetch.priority = priority;
    this.#queues[priority].push({ entry, fetch });
    this.#pump();
  }

  #pump(): void {
    while (this.#inFlight < this.#maxInFlight) {
      const next = this.#dequeue();
      if (!next) return;
      this.#inFlight++;
      next.fetch.started = true;
      void this.#run(next.entry, next.fetch);
    }
  }

  #dequeue(): { entry: Entry; fetch: Fetch } | undefined {
    for (const p of PRIORITIES) {
      const q = this.#queues[p];
      while (q.length > 0) {
        const item = q.shift()!;
        // Skip stale places: started/cancelled, or moved to a higher queue.
        if (item.fetch.started || item.fetch.cancelled || item.fetch.priority !== p) continue;
        return item;
      }
    }
    return undefined;
  }

  async #run(entry: Entry, fetch: Fetch): Promise<void> {
    let cert: WorkloadCertificate | undefined;
    let error: ZtunnelError | undefined;
    try {
      cert = await this.#ca.fetchCertificate(entry.id);
      if (!identityEquals(cert.identity, entry.id)) {
        throw new ZtunnelError('IDENTITY_UNAVAILABLE', `CA issued ${formatIdentity(cert.identity)} for ${entry.key}`);
      }
    } catch (e) {
      cert = undefined;
      error = asZtunnelError(e, 'IDENTITY_UNAVAILABLE');
    }
    this.#inFlight--;
    const current = !this.#closed && this.#entries.get(entry.key) === entry && entry.fetch === fetch;
    if (current) {
      entry.fetch = undefined;
      if (cert) this.#succeeded(entry, cert);
      else this.#failed(entry, error!, fetch.priority);
    }
    if (cert) fetch.resolve(cert);
    else if (current && entry.cert && this.#valid(entry.cert)) fetch.resolve(entry.cert); // stale but valid
    else fetch.reject(error!);
    this.#pump();
  }

  #succeeded(entry: Entry, cert: WorkloadCertificate): void {
    const previous = entry.cert;
    entry.cert = cert;
    entry.error = undefined;
    entry.backoffMs = INITIAL_BACKOFF_MS;
    const nb = cert.notBefore.getTime();
    const refreshAt = nb + (cert.notAfter.getTime() - nb) / 2;
    // A certificate already past its half-life on arrival would otherwise be refetched in a loop.
    const delayMs = Math.max(refreshAt - this.#now(), INITIAL_BACKOFF_MS);
    this.#log.debug({ identity: entry.key, serial: cert.serialNumber, refreshInMs: delayMs }, 'workload certificate issued');
    this.#schedule(entry, delayMs);
    if (previous) {
      for (const cb of [...this.#rotateListeners]) {
        try {
          cb(entry.id, cert, previous);
        } catch (e) {
          this.#log.error({ identity: entry.key, err: e }, 'certificate rotation listener failed');
        }
      }
    }
  }

  #failed(entry: Entry, error: ZtunnelError, priority: FetchPriority): void {
    entry.error = error;
    const base = entry.backoffMs;
    entry.backoffMs = Math.min(base * 2, MAX_BACKOFF_MS);
    // ±20 % jitter around the (capped) base, as the `backoff` crate Rust ztunnel uses does.
    const delayMs = Math.round(base * (1 + BACKOFF_JITTER * (2 * this.#random() - 1)));
    const valid = entry.cert !== undefined && this.#valid(entry.cert);
    this.#log.warn({ identity: entry.key, err: error.message, retryInMs: delayMs, servingStale: valid, priority }, 'workload certificate fetch failed');
    this.#schedule(entry, delayMs);
  }

  /** Arms the identity's one timer: a Background fetch after `delayMs`. */
  #schedule(entry: Entry, delayMs: number): void {
    this.#cancelTimer(entry);
    if (this.#closed) return;
    const dueAt = this.#now() + delayMs;
    const arm = (ms: number): void => {
      entry.timer = this.#setTimer(() => {
        entry.timer = undefined;
        if (this.#closed || this.#entries.get(entry.key) !== entry) return;
        const left = dueAt - this.#now();
        if (left > 0) return arm(Math.min(left, MAX_TIMER_MS));
        if (!entry.fetch) this.#request(entry, 'Background').catch(() => { /* state shows it */ });
      }, Math.min(Math.max(ms, 0), MAX_TIMER_MS));
    };
    arm(delayMs);
  }

  #cancelTimer(entry: Entry): void {
    if (entry.timer !== undefined) {
      this.#clearTimer(entry.timer);
      entry.timer = undefined;
    }
  }
}
