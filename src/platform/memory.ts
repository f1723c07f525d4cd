// Returning freed native memory to the kernel (issue 12 idle RSS, issue 16 item 5). glibc keeps
// pages that Node, OpenSSL and V8 freed inside its malloc arenas; after start-up (module loading,
// the first certificate) and after a burst of connections that closed again, RSS stays at the
// high-water mark until malloc_trim(0) hands the free pages back. Nothing here changes behaviour:
// without the native addon (or on a non-glibc libc) every function is a no-op.
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
