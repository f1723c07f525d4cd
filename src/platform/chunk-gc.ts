// Young collections paced by relayed bytes (issue 12 per-byte cost; docs/memory.md "Per byte").
//
// Each chunk Node reads from a socket or an HTTP/2 stream is native memory behind an
// ArrayBuffer, which V8 counts as external memory. A relayed chunk is garbage as soon as the
// other end has written it, but V8 frees it only when a collection finds it dead. The JavaScript
// objects of a relay are few and small, so the young generation fills slowly and its own
// scavenges are rare: external memory reached V8's limit first, and V8 answered each time with a
// full mark-compact of the thread's heap (8–15 a second per daemon during a bulk transfer, most
// of it on V8's platform threads). Here the relay reports every chunk it hands on, and after
// RELAYED_BYTES_PER_SCAVENGE bytes the thread runs a young collection itself: the dead chunks are
// still young, so it frees them, and external memory stays far below the limit. A young
// collection visits only the live young objects (a fraction of a millisecond to ~2 ms under
// load here); the full collections it replaces mark the whole heap.
//
// The collection is V8's `gc({ type: 'minor' })`, made available with the --expose-gc flag at
// run time (the flag is process-wide; it also gives new contexts a `gc` global and nothing
// else). Without it (a runtime that refuses the flag) relaying works as before.
import v8 from 'node:v8';
import vm from 'node:vm';

type GcFunction = (options: { type: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void;

/** Relayed bytes between two young collections of a thread. */
export const RELAYED_BYTES_PER_SCAVENGE = 8 * 1024 * 1024;

let gcFn: GcFunction | undefined;
let looked = false;
let sinceScavenge = 0;

function exposedGc(): GcFunction | undefined {
  if (looked) return gcFn;
  looked = true;
  const global = (globalThis as { gc?: unknown }).gc;
  if (typeof global === 'function') {
    gcFn = global as GcFunction;
    return gcFn;
  }
  try {
    v8.setFlagsFromString('--expose-gc');
    const fn: unknown = vm.runInNewContext('gc');
    if (typeof fn === 'function') gcFn = fn as GcFunction;
  } catch {
    gcFn = undefined;
  }
  return gcFn;
}

/** Counts bytes a relay handed on; runs a young collection every RELAYED_BYTES_PER_SCAVENGE. */
export function noteRelayedBytes(n: number): void {
  sinceScavenge += n;
  if (sinceScavenge < RELAYED_BYTES_PER_SCAVENGE) return;
  sinceScavenge = 0;
  exposedGc()?.({ type: 'minor' });
}
