// Returning freed native memory to the kernel (issue 12 idle RSS, issue 16 item 5). glibc keeps
// pages that Node, OpenSSL and V8 freed inside its malloc arenas; after start-up (module loading,
// the first certificate) and after a burst of connections that closed again, RSS stays at the
// high-water mark until malloc_trim(0) hands the free pages back. Nothing here changes behaviour:
// without the native addon (or on a non-glibc libc) every function is a no-op.
import { readFileSync, realpathSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import { loadNativeAddon } from './native-addon.js';

/**
 * glibc's default is 8 arenas per core, each keeping its own free pages; the daemon's threads
 * (libuv pool, V8 platform workers, data-plane workers) share ARENA_MAX so freed memory is
 * concentrated where a trim can return it.
 */
export const MALLOC_ARENA_MAX = 2;

/** Seconds after ready before the start-up trim: the first certificate is issued by then. */
export const STARTUP_TRIM_DELAY_MS = 5_000;
/** How often the idle trimmer looks at the connection count. */
export const IDLE_TRIM_INTERVAL_MS = 30_000;
/** An idle trim is considered when RSS grew at least this much since the last trim. */
export const IDLE_TRIM_MIN_GROWTH_BYTES = 32 * 1024 * 1024;

/** Caps glibc malloc arenas (call before threads start); false when the addon is unavailable. */
export function limitMallocArenas(max = MALLOC_ARENA_MAX): boolean {
  const addon = loadNativeAddon();
  return addon.ok && addon.value.mallocArenaMax(max) === 0;
}

/** malloc_trim(0); true when memory was released to the kernel. */
export function trimMalloc(): boolean {
  const addon = loadNativeAddon();
  return addon.ok && addon.value.mallocTrim();
}

export interface MemoryTrimmerOptions {
  /** Connections open now (the connection records). */
  readonly openConnections: () => number;
  readonly startupDelayMs?: number;
  readonly intervalMs?: number;
  readonly minGrowthBytes?: number;
  /** Called after each trim with RSS before and after (tests, debug logs). */
  readonly onTrim?: (reason: 'startup' | 'idle', rssBefore: number, rssAfter: number) => void;
  /** Defaults to trimMalloc. */
  readonly trim?: () => boolean;
  /** Defaults to process.memoryUsage.rss. */
  readonly rss?: () => number;
}

/**
 * Trims once shortly after start-up, then at a quiet moment after growth: when RSS is at least
 * `minGrowthBytes` above what it was right after the last trim and the open-connection count is
 * not rising (no more than at the previous look). Bursts of connections that never become records
 * (unauthenticated handshakes, issue 16 item 5) count too, since the signal is RSS. The timers
 * are unref'd: they never keep the process alive. stop() clears them.
 */
export class MemoryTrimmer {
  private baseline = Number.POSITIVE_INFINITY;
  private lastOpen = Number.POSITIVE_INFINITY;
  private readonly startup: NodeJS.Timeout;
  private readonly interval: NodeJS.Timeout;
  private readonly trim: () => boolean;
  private readonly rss: () => number;

  constructor(private readonly opts: MemoryTrimmerOptions) {
    this.trim = opts.trim ?? trimMalloc;
    const read = opts.rss ?? (() => process.memoryUsage.rss());
    // Reading RSS opens /proc/self/stat: with the fds used up it throws EMFILE, and a throw in this
    // timer would end the process. Unknown (NaN) means "do not trim now".
    this.rss = () => {
      try {
        return read();
      } catch {
        return Number.NaN;
      }
    };
    this.startup = setTimeout(() => this.run('startup'), opts.startupDelayMs ?? STARTUP_TRIM_DELAY_MS).unref();
    this.interval = setInterval(() => this.check(), opts.intervalMs ?? IDLE_TRIM_INTERVAL_MS).unref();
  }

  /** One look (the interval calls it); true when it trimmed. */
  check(): boolean {
    const open = this.opts.openConnections();
    const rising = open > this.lastOpen;
    this.lastOpen = open;
    const grown = this.rss() - this.baseline;
    if (rising || !(grown >= (this.opts.minGrowthBytes ?? IDLE_TRIM_MIN_GROWTH_BYTES))) return false;
    this.run('idle');
    return true;
  }

  stop(): void {
    clearTimeout(this.startup);
    clearInterval(this.interval);
  }

  private run(reason: 'startup' | 'idle'): void {
    this.lastOpen = this.opts.openConnections();
    const before = this.rss();
    this.trim();
    const after = this.rss();
    // Unknown after the trim (EMFILE): the next readable look decides on its own.
    this.baseline = Number.isFinite(after) ? after : 0;
    this.opts.onTrim?.(reason, before, after);
  }
}

// ------------------------------------------------------------------------------------------------
// Reclaim (issue 12 idle RSS, docs/memory.md). Each thread of the daemon (the main thread and every
// data-plane worker) has its own V8 heap, which loading the modules and building the state leave
// full of garbage. At the end of start-up, V8's low-memory notification (full compacting
// collections that also shrink the young generation) and malloc_trim give it back. After traffic
// only malloc_trim runs (see reclaimThreadMemory for why).

/** How often a thread looks whether it is quiet. */
export const RECLAIM_TICK_MS = 250;
/** A tick with at most this event-loop utilization and no new connection is quiet. */
export const RECLAIM_QUIET_UTILIZATION = 0.05;
/**
 * After the first two reclaims, the least time between two: this, doubled for every 'idle'
 * reclaim of the last RECLAIM_IDLE_WINDOW_MS, at most RECLAIM_IDLE_MAX_INTERVAL_MS. Short at first,
 * so a daemon that opened many connections and now holds them idle gives back the young generation
 * it grew for them (else RSS while holding them counts that garbage room too); backing off, so
 * bursty traffic with quiet gaps pays for at most a few reclaims per window (a busy loop is never
 * quiet anyway).
 */
export const RECLAIM_IDLE_MIN_INTERVAL_MS = 2_000;
export const RECLAIM_IDLE_MAX_INTERVAL_MS = 300_000;
export const RECLAIM_IDLE_WINDOW_MS = 600_000;
/**
 * After the first two reclaims, how long a thread must have been quiet (every tick) first: longer
 * than the short pauses between bursts of work, so a reclaim (tens of ms of CPU, then a young
 * generation to grow again) does not land between two bursts.
 */
export const RECLAIM_IDLE_QUIET_MS = 1_000;
/** After the first two reclaims, how much this thread's V8 heap must have grown since the last. */
export const RECLAIM_IDLE_MIN_GROWTH_BYTES = 8 * 1024 * 1024;

export type ReclaimReason = 'startup' | 'first-traffic' | 'idle';

export interface IdleReclaimerOptions {
  /** Connections started in the process so far (the shared connection id counter): a change is traffic. */
  readonly activity: () => number;
  /** What runs on a reclaim; defaults to V8's low-memory notification and malloc_trim. */
  readonly reclaim?: (reason: ReclaimReason) => void;
  /** This thread's V8 heap in bytes (physical); defaults to v8.getHeapStatistics(). */
  readonly heapBytes?: () => number;
  /** Event-loop utilization (0–1) since the previous call; defaults to performance.eventLoopUtilization. */
  readonly utilization?: () => number;
  readonly tickMs?: number;
  readonly minIntervalMs?: number;
  readonly maxIntervalMs?: number;
  readonly idleWindowMs?: number;
  readonly idleQuietMs?: number;
  /** Run the start-up reclaim at once (default), before the thread serves: else at its first quiet tick. */
  readonly startupNow?: boolean;
  readonly minGrowthBytes?: number;
  readonly now?: () => number;
  /** After each reclaim, with this thread's heap before and after (tests, debug logs). */
  readonly onReclaim?: (reason: ReclaimReason, heapBefore: number, heapAfter: number, durationMs: number) => void;
}

/**
 * Reclaims a thread's memory at quiet moments: once start-up has settled ('startup'), once after
 * the first traffic ('first-traffic', e.g. the first connections and certificates), then only
 * when the heap grew by `minGrowthBytes` since the last reclaim and idleInterval() passed
 * ('idle'). Quiet means one tick without a new connection in the process and with the thread's
 * event loop nearly idle (so a long-lived busy connection is never paused). The reclaim pauses
 * this thread for tens of milliseconds; a connection arriving then waits that long. The
 * timer is unref'd; stop() clears it.
 */
export class IdleReclaimer {
  private readonly timer: NodeJS.Timeout;
  private lastActivity: number;
  private startupDone = false;
  private firstTrafficDone = false;
  private trafficSinceReclaim = false;
  private lastReclaimAt = Number.NEGATIVE_INFINITY;
  /** Since when every tick was quiet (undefined: the last tick was not). */
  private quietSince: number | undefined;
  /** When the recent 'idle' reclaims ran (back-off). */
  private idleReclaims: number[] = [];
  private baseline = 0;
  private readonly heap: () => number;
  private readonly utilization: () => number;
  private readonly now: () => number;

  constructor(private readonly o: IdleReclaimerOptions) {
    this.lastActivity = o.activity();
    this.heap = o.heapBytes ?? (() => v8.getHeapStatistics().total_physical_size);
    this.now = o.now ?? Date.now;
    if (o.utilization) this.utilization = o.utilization;
    else {
      let prev = performance.eventLoopUtilization();
      this.utilization = () => {
        const cur = performance.eventLoopUtilization();
        const u = performance.eventLoopUtilization(cur, prev).utilization;
        prev = cur;
        return u;
      };
    }
    this.timer = setInterval(() => this.tick(), o.tickMs ?? RECLAIM_TICK_MS).unref();
    if (o.startupNow ?? true) this.run('startup');
  }

  /** One look (the timer calls it); the reason when it reclaimed. */
  tick(): ReclaimReason | undefined {
    const a = this.o.activity();
    const connected = a !== this.lastActivity;
    this.lastActivity = a;
    const busy = this.utilization() > RECLAIM_QUIET_UTILIZATION;
    if (connected) this.trafficSinceReclaim = true;
    if (connected || busy) {
      this.quietSince = undefined;
      return undefined;
    }
    this.quietSince ??= this.now();
    let reason: ReclaimReason | undefined;
    if (!this.startupDone) reason = 'startup';
    else if (this.trafficSinceReclaim && !this.firstTrafficDone) reason = 'first-traffic';
    else if (
      this.firstTrafficDone &&
      this.now() - this.quietSince >= (this.o.idleQuietMs ?? RECLAIM_IDLE_QUIET_MS) &&
      this.now() - this.lastReclaimAt >= this.idleInterval() &&
      this.heap() - this.baseline >= (this.o.minGrowthBytes ?? RECLAIM_IDLE_MIN_GROWTH_BYTES)
    ) reason = 'idle';
    if (!reason) return undefined;
    this.run(reason);
    return reason;
  }

  private run(reason: ReclaimReason): void {
    if (reason === 'startup') this.startupDone = true;
    else this.firstTrafficDone = true;
    this.trafficSinceReclaim = false;
    const before = this.heap();
    const started = performance.now();
    (this.o.reclaim ?? reclaimThreadMemory)(reason);
    const durationMs = performance.now() - started;
    this.baseline = this.heap();
    this.lastReclaimAt = this.now();
    if (reason === 'idle') this.idleReclaims.push(this.lastReclaimAt);
    // The reclaim's own pause is not traffic.
    this.utilization();
    this.o.onReclaim?.(reason, before, this.baseline, durationMs);
  }

  /** The least time after the last reclaim before an 'idle' one (backs off, see RECLAIM_IDLE_MIN_INTERVAL_MS). */
  idleInterval(): number {
    const now = this.now();
    this.idleReclaims = this.idleReclaims.filter((t) => now - t < (this.o.idleWindowMs ?? RECLAIM_IDLE_WINDOW_MS));
    const min = this.o.minIntervalMs ?? RECLAIM_IDLE_MIN_INTERVAL_MS;
    return Math.min(min * 2 ** this.idleReclaims.length, this.o.maxIntervalMs ?? RECLAIM_IDLE_MAX_INTERVAL_MS);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/**
 * V8's low-memory notification for this thread's isolate; false without the addon (or with an
 * addon built before it had the call: `npm run build` does not rebuild native/).
 */
export function lowMemoryNotification(): boolean {
  const addon = loadNativeAddon();
  return addon.ok && typeof addon.value.lowMemoryNotification === 'function' && addon.value.lowMemoryNotification();
}

/** The default reclaim of a thread: its V8 heap compacted and shrunk, then malloc_trim. */
export function reclaimThreadMemory(reason: ReclaimReason = 'startup'): void {
  // Only before traffic: after it, a memory-reducing collection leaves V8 with a small young
  // generation and tight heap limits that it grows back only slowly, and the daemon then spends
  // measurably more CPU per connection and per byte (bench --vs-istio: +15–25 % CPU per GB) for
  // as long as it stays busy. A start-up reclaim leaves the heap as a fresh process has it.
  if (reason === 'startup') lowMemoryNotification();
  trimMalloc();
}

// ------------------------------------------------------------------------------------------------
// Start-up pages of the node binary (docs/memory.md). About 55 MB of an idle daemon's RSS are
// pages of the node executable itself — its code and read-only data (the start-up snapshot, the
// JavaScript of Node's own modules, ICU tables) — mostly touched once while Node starts. They are
// clean copies of the file: MADV_DONTNEED drops them from this process's page tables, and a page
// used again later is mapped back from the page cache (a minor fault; from disk only if the kernel
// evicted it meanwhile). MADV_PAGEOUT would evict them from memory altogether but skips every page
// another process maps too, which on a node running other Node processes (or two daemons) is most
// of them: it released nothing measurable there.

/** linux/mman-common.h */
export const MADV_DONTNEED = 4;

export interface PageRelease {
  /** Mappings released. */
  readonly regions: number;
  /** Their resident bytes just before. */
  readonly bytes: number;
  /** Why nothing was released (no addon, /proc unreadable, madvise failed), when so. */
  readonly unsupported?: string;
}

interface Mapping {
  readonly start: bigint;
  readonly end: bigint;
  readonly rss: number;
}

/**
 * The read-only mappings of `file` in a /proc/<pid>/smaps text that hold no private (anonymous)
 * page: only those are released, since MADV_DONTNEED on a private file mapping would also throw
 * away a page the process had modified (relocated data), not only clean copies of the file.
 */
export function cleanFileMappings(smaps: string, file: string): Mapping[] {
  const out: Mapping[] = [];
  let cur: { start: bigint; end: bigint; rss: number; ok: boolean } | null = null;
  const flush = () => {
    if (cur?.ok) out.push({ start: cur.start, end: cur.end, rss: cur.rss });
  };
  for (const line of smaps.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      flush();
      const perms = head[3]!;
      cur = { start: BigInt(`0x${head[1]}`), end: BigInt(`0x${head[2]}`), rss: 0, ok: head[4] === file && perms[0] === 'r' && perms[1] === '-' && perms[3] === 'p' };
      continue;
    }
    if (!cur) continue;
    const field = /^(\w+):\s+(\d+) kB/.exec(line);
    if (!field) continue;
    if (field[1] === 'Rss') cur.rss = Number(field[2]) * 1024;
    else if ((field[1] === 'Anonymous' || field[1] === 'Private_Dirty' || field[1] === 'Locked') && field[2] !== '0') cur.ok = false;
  }
  flush();
  return out;
}

/** Drops this process's resident clean pages of the node binary (see above). */
export function releaseExecutablePages(): PageRelease {
  const addon = loadNativeAddon();
  if (!addon.ok) return { regions: 0, bytes: 0, unsupported: 'native addon unavailable' };
  if (typeof addon.value.madvise !== 'function') return { regions: 0, bytes: 0, unsupported: 'native addon built without madvise (rebuild: npm run build:native)' };
  let mappings: Mapping[];
  try {
    mappings = cleanFileMappings(readFileSync('/proc/self/smaps', 'utf8'), realpathSync(process.execPath));
  } catch (e) {
    return { regions: 0, bytes: 0, unsupported: `cannot read /proc/self/smaps: ${(e as Error).message}` };
  }
  let regions = 0;
  let bytes = 0;
  for (const m of mappings) {
    const r = addon.value.madvise(m.start, m.end - m.start, MADV_DONTNEED);
    if (r !== 0) return { regions, bytes, unsupported: `madvise(MADV_DONTNEED) failed: errno ${-r}` };
    regions++;
    bytes += m.rss;
  }
  return { regions, bytes };
}
