// Memory back after a burst of connections that never authenticated (issue 16 item 5). Each such
// connection costs a TLS socket, OpenSSL state and a few KB of short-lived JavaScript objects; a
// burst of thousands grows V8's heap, which V8 keeps (measured: heap total 58 → 88 MB with 39 MB
// used after three bursts of 3,000 stalled handshakes, RSS 91 → 201 MB, and no shrink after 40 s
// idle). Once a burst is over, one full garbage collection gives the free pages back. It runs
// only after at least RECLAIM_MIN_EVENTS such closes, RECLAIM_QUIET_MS after the last one (or
// RECLAIM_MIN_INTERVAL_MS into a burst that goes on), and at most once per RECLAIM_MIN_INTERVAL_MS:
// normal traffic never triggers it, and the pause (tens of milliseconds for a heap this size) is
// paid only during or after an attack or a scan.
import v8 from 'node:v8';
import vm from 'node:vm';
import { trimMalloc } from './memory.js';

export const RECLAIM_MIN_EVENTS = 256;
export const RECLAIM_QUIET_MS = 5_000;
export const RECLAIM_MIN_INTERVAL_MS = 15_000;

let events = 0;
let timer: NodeJS.Timeout | undefined;
/** When the pending collection was first scheduled: a burst that goes on is not waited out for ever. */
let pendingSinceMs = 0;
let lastRunMs = 0;
let collect: (() => void) | null | undefined;

/** A full collection, or null when this runtime does not allow one. Resolved on first use. */
function collector(): (() => void) | null {
  if (collect === undefined) {
    try {
      v8.setFlagsFromString('--expose-gc');
      const fn: unknown = vm.runInNewContext('gc');
      collect = typeof fn === 'function' ? (fn as () => void) : null;
    } catch {
      collect = null;
    }
  }
  return collect;
}

function run(): void {
  timer = undefined;
  const wait = lastRunMs + RECLAIM_MIN_INTERVAL_MS - Date.now();
  if (wait > 0) {
    timer = setTimeout(run, wait);
    timer.unref();
    return;
  }
  events = 0;
  lastRunMs = Date.now();
  collector()?.();
  // What the collection freed in native memory (TLS sockets' buffers, OpenSSL state) sits in
  // glibc's arenas until trimmed (memory.ts).
  trimMalloc();
}

/** Tells that a connection closed before it authenticated (TLS failure, deadline, refused certificate). */
export function noteUnauthenticatedClose(): void {
  if (++events < RECLAIM_MIN_EVENTS) return;
  if (timer) {
    if (Date.now() - pendingSinceMs < RECLAIM_MIN_INTERVAL_MS) timer.refresh();
  } else {
    pendingSinceMs = Date.now();
    timer = setTimeout(run, RECLAIM_QUIET_MS);
    timer.unref();
  }
}
