// The byte relay between two ends of a proxied connection (docs/design.md §4, hbone.md §6). An end is
// a TCP socket or an HTTP/2 CONNECT stream. Two independent directions, joined: the relay is
// done when both ends have closed. No .pipe(), no for-await (both would end or destroy the
// other side on their own terms).
//
// Endings, both ways:
//   TCP FIN (read 'end')          → end() the other side: TCP shutdown(SHUT_WR) / empty DATA + END_STREAM
//   END_STREAM                    → the same, one turn later (see "deferred end" below)
//   RST_STREAM NO_ERROR / CANCEL  → EOF (hbone.md §6: both count as EOF; Rust ztunnel sends
//                                   CANCEL whenever it drops a stream, e.g. after a clean copy)
//   RST_STREAM any other code     → reset the TCP side: resetAndDestroy() (RST segment); this
//     (STREAM_CLOSED is the         includes STREAM_CLOSED, which hbone.md §6 calls a broken pipe
//      spec's "broken pipe")        — an error, and for a TCP peer the error signal is a RST.
//   TCP error (ECONNRESET, EPIPE…) → RST_STREAM without END_STREAM. perf-notes.md suggests
//                                   CANCEL, but hbone.md §6 makes CANCEL an EOF at the receiver
//                                   (Rust and us), so a reset sent as CANCEL would arrive as a
//                                   clean FIN. We send stream.destroy(err) = RST_STREAM
//                                   INTERNAL_ERROR: an error to every receiver, and the only
//                                   public Node call that resets without first sending
//                                   END_STREAM (stream.close(code) sends END_STREAM, then the
//                                   RST once that write completed — which is also why a peer's
//                                   reset can arrive here as 'end' first).
//
// Deferred end: a Node peer's stream.close(code) arrives as 'end' (its END_STREAM) with rstCode
// still 0 and the RST_STREAM a little later (perf-notes.md "Pitfalls"; measured: 1–3 ms, more
// under load). We look at rstCode one turn after 'end'; if the RST comes later still, its
// 'error' (Node emits one for every code but NO_ERROR/CANCEL) or 'close' resets the TCP side
// after the FIN already sent — as with TCP when a peer resets after shutting down.
//
// Broken pipe: when one end closes while the other still had bytes for it, those bytes cannot
// be delivered; the other end is ended (its pending bytes flushed) and then closed, as Rust
// ztunnel drops both halves when a copy direction fails.
//
// Bounded flush: that close-after-flush waits at most BROKEN_PIPE_FLUSH_MS for the bytes still
// queued for the surviving end. An app that stopped reading would otherwise keep the socket, its fd
// and its buffers for good once the client is gone (issue 16: client closed, RST_STREAM CANCEL, or
// END_STREAM then disconnect); past the deadline the end is reset, as Istio's ztunnel drops it.
//
// Errors ECONNRESET / EPIPE / ENOTCONN and peer RST_STREAMs are swallowed (hbone.md §6: a
// normal close); `reset` tells whether a reset was seen or propagated. Other errors are returned
// in `error`. The relay never throws and resolves exactly once.
import http2 from 'node:http2';
import { Socket } from 'node:net';
import { RELAY_HIGH_WATER_MARK, raiseHighWaterMarks } from '../hbone/stream-buffers.js';
import { closeEmitted } from '../core/node-internals.js';
import { noteRelayedBytes } from '../platform/chunk-gc.js';

export type RelayEnd = Socket | http2.Http2Stream;
export type RelayDirection = 'aToB' | 'bToA';

export interface RelayOptions {
  /** Aborting destroys both ends (drain deadline, policy revoked). */
  readonly signal?: AbortSignal;
  /**
   * Told of every chunk handed to the other end (bytes counted where copied). `a` is the client
   * side in every caller, so a → b bytes are client → server (a ConnectionRecord fits as is).
   */
  readonly counter?: ByteCounter;
}

export interface ByteCounter {
  addClientToServer(n: number): void;
  addServerToClient(n: number): void;
}

export interface RelayResult {
  /** Bytes read from `a` and written to `b`. */
  aToB: number;
  bToA: number;
  /** A reset was received on either end (and propagated to the other). */
  reset: boolean;
  /** An error other than the swallowed resets, or the abort reason. */
  error?: Error;
}

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL } = http2.constants;

/** How long bytes still queued for an end whose other side closed may take to flush (see above). */
export const BROKEN_PIPE_FLUSH_MS = 5_000;

/** hbone.md §6: errors of a copy that count as a normal close. */
const SWALLOWED = new Set(['ECONNRESET', 'EPIPE', 'ENOTCONN', 'ERR_HTTP2_STREAM_ERROR', 'ERR_STREAM_PREMATURE_CLOSE']);

// Memory (issue 7): a relay lives as long as its connection, so its per-connection state is two
// End objects and one Relay object; every listener is a module-level function that finds its End
// through a symbol on the emitter (EventEmitter calls listeners with `this` = the emitter). An
// earlier closure-per-listener form held ~2 KB more per idle connection.
const kEnd = Symbol('relay.end');

/** Errors the relay created itself to reset a stream; never reported back in `error`. */
const OWN_ERRORS = new WeakSet<Error>();

class Relay {
  readonly result: RelayResult = { aToB: 0, bToA: 0, reset: false };
  aborted = false;
  settled = false;
  readonly ends: [End, End];
  constructor(
    a: RelayEnd,
    b: RelayEnd,
    readonly signal: AbortSignal | undefined,
    readonly counter: ByteCounter | undefined,
    readonly resolve: (r: RelayResult) => void,
  ) {
    const A = new End(a, 'aToB', this);
    const B = new End(b, 'bToA', this);
    A.other = B;
    B.other = A;
    this.ends = [A, B];
  }

  /** EventListener object for the abort signal (no closure needed). */
  handleEvent(): void {
    onAbort(this);
  }
}

class End {
  readonly tcp: boolean;
  other!: End;
  readDone = false;
  /** We closed this end on purpose (broken pipe): its 'close' is not a reset. */
  closing = false;
  closed = false;
  paused = false;
  corked = false;
  /** A 'finish' listener was added by closeAfterFlush. */
  closeOnFinish = false;
  /** closeAfterFlush's deadline for the queued bytes. */
  flushTimer: NodeJS.Timeout | undefined = undefined;
  constructor(
    readonly s: RelayEnd,
    /** Direction of the bytes read from this end. */
    readonly dir: RelayDirection,
    readonly relay: Relay,
  ) {
    this.tcp = s instanceof Socket;
  }
}

type Emitter = RelayEnd & { [kEnd]?: End };
const endOf = (s: Emitter): End => s[kEnd]!;

const HANDLERS: readonly [string, (this: Emitter, ...args: any[]) => void][] = [
  ['data', onData],
  ['drain', onDrain],
  ['end', onEnd],
  ['error', onError],
  ['close', onClose],
];

function finish(r: Relay): void {
  if (r.settled) return;
  r.settled = true;
  for (const e of r.ends) {
    for (const [event, fn] of HANDLERS) e.s.off(event, fn);
    if (e.closeOnFinish) e.s.off('finish', onFinishClose);
    if (e.flushTimer) clearTimeout(e.flushTimer);
    delete (e.s as Emitter)[kEnd];
  }
  r.signal?.removeEventListener('abort', r);
  r.resolve(r.result);
}

function checkDone(r: Relay): void {
  if (r.ends[0].closed && r.ends[1].closed) finish(r);
}

function noteError(r: Relay, err: Error): void {
  if (OWN_ERRORS.has(err)) return;
  const code = (err as NodeJS.ErrnoException).code;
  if (code && SWALLOWED.has(code)) return;
  if (!r.result.error) r.result.error = err;
}

/** Resets an end: RST segment on TCP, RST_STREAM (INTERNAL_ERROR, no END_STREAM) on HTTP/2. */
function resetEnd(e: End): void {
  if (e.s.destroyed) return;
  if (e.tcp) {
    try {
      (e.s as Socket).resetAndDestroy();
    } catch {
      e.s.destroy(); // not a TCP handle (e.g. a TLS socket): a plain close is the best we have
    }
  } else {
    const err = new Error('relay: the other side was reset');
    OWN_ERRORS.add(err);
    e.s.destroy(err);
  }
}

/** Ends an end's write side (FIN / END_STREAM) after its pending bytes. */
function endWrite(e: End): void {
  if (e.s.destroyed || e.s.writableEnded) return;
  e.s.end();
}

function onFinishClose(this: Emitter): void {
  if (!this.destroyed) this.destroy();
}

/** Ends the write side, then closes the end once its bytes are flushed. */
function closeAfterFlush(e: End): void {
  if (e.s.destroyed || e.closing) return;
  e.closing = true;
  endWrite(e);
  if (e.s.writableFinished) {
    if (!e.s.destroyed) e.s.destroy();
  } else {
    e.closeOnFinish = true;
    e.s.on('finish', onFinishClose);
    e.flushTimer = setTimeout(flushExpired, BROKEN_PIPE_FLUSH_MS, e);
    e.flushTimer.unref();
  }
}

/** The queued bytes did not drain in time: the surviving end is reset (its 'close' settles the relay). */
function flushExpired(e: End): void {
  e.flushTimer = undefined;
  if (e.s.destroyed || e.s.writableFinished) return;
  e.relay.result.reset = true;
  resetEnd(e);
}

function readEof(e: End): void {
  if (e.readDone) return;
  e.readDone = true;
  endWrite(e.other);
}

function readReset(e: End): void {
  e.readDone = true;
  if (e.relay.aborted) return;
  e.relay.result.reset = true;
  resetEnd(e.other);
  if (!e.s.destroyed) e.s.destroy();
}

const isEofCode = (code: number | undefined) => code === undefined || code === NGHTTP2_NO_ERROR || code === NGHTTP2_CANCEL;

/** hbone.md §6 mapping of a closed stream's RST_STREAM code. */
function classifyStream(e: End): void {
  const code = (e.s as http2.Http2Stream).rstCode;
  if (isEofCode(code) && !e.s.errored) readEof(e);
  else readReset(e);
}

function flush(e: End): void {
  e.corked = false;
  if (!e.s.destroyed) e.s.uncork();
}

function onData(this: Emitter, chunk: Buffer): void {
  const src = endOf(this);
  const dst = src.other;
  if (dst.s.destroyed || dst.s.writableEnded) return; // broken pipe: handled at dst 'close'
  const n = chunk.length;
  const r = src.relay;
  if (src.dir === 'aToB') {
    r.result.aToB += n;
    r.counter?.addClientToServer(n);
  } else {
    r.result.bToA += n;
    r.counter?.addServerToClient(n);
  }
  const ok = dst.s.write(chunk);
  noteRelayedBytes(n);
  if (!dst.corked) {
    // First chunk of a burst went out at once (latency); the rest of the burst is batched
    // until the next turn of the event loop (perf-notes.md knob 2).
    dst.s.cork();
    dst.corked = true;
    setImmediate(flush, dst);
  }
  if (!ok && !src.paused) {
    src.paused = true;
    src.s.pause();
  }
}

/** 'drain' of an end: the other end, paused while this one was full, reads again. */
function onDrain(this: Emitter): void {
  const src = endOf(this).other;
  if (src.paused) {
    src.paused = false;
    src.s.resume();
  }
}

function deferredEnd(src: End): void {
  if (!src.readDone) classifyStream(src);
}

function onEnd(this: Emitter): void {
  const src = endOf(this);
  if (src.tcp) readEof(src);
  else setImmediate(deferredEnd, src);
}

function onError(this: Emitter, err: Error): void {
  const src = endOf(this);
  noteError(src.relay, err);
  readReset(src);
}

function onClose(this: Emitter): void {
  const src = endOf(this);
  const dst = src.other;
  const r = src.relay;
  src.closed = true;
  if (!src.readDone) {
    if (src.closing) src.readDone = true;
    else if (src.tcp) readReset(src); // destroyed without FIN or error
    else classifyStream(src);
  } else if (!src.tcp && !r.aborted && !isEofCode((src.s as http2.Http2Stream).rstCode)) {
    // A RST_STREAM that came after END_STREAM (deferred end above).
    r.result.reset = true;
    resetEnd(dst);
  }
  // Bytes from dst can no longer reach src (broken pipe).
  if (!dst.readDone && !dst.s.destroyed) closeAfterFlush(dst);
  checkDone(r);
}

function onAbort(r: Relay): void {
  if (r.settled || r.aborted) return;
  r.aborted = true;
  const reason: unknown = r.signal?.reason;
  if (!r.result.error) r.result.error = reason instanceof Error ? reason : new Error(String(reason ?? 'aborted'));
  // destroy() on a stream sends RST_STREAM NO_ERROR at once (an EOF for the peer, hbone.md §6)
  // without waiting for buffered data or a stuck peer; on TCP it closes the socket.
  for (const e of r.ends) if (!e.s.destroyed) e.s.destroy();
}

export function relay(a: RelayEnd, b: RelayEnd, opts: RelayOptions = {}): Promise<RelayResult> {
  return new Promise<RelayResult>((resolve) => {
    const r = new Relay(a, b, opts.signal, opts.counter, resolve);
    for (const e of r.ends) {
      raiseHighWaterMarks(e.s, RELAY_HIGH_WATER_MARK);
      (e.s as Emitter)[kEnd] = e;
      for (const [event, fn] of HANDLERS) e.s.on(event, fn);
    }
    r.signal?.addEventListener('abort', r);

    // Ends that were already finished before the relay started.
    for (const e of r.ends) {
      if (closeEmitted(e.s)) {
        e.closed = true;
        if (!e.readDone) {
          if (e.tcp) readReset(e);
          else classifyStream(e);
        }
        if (!e.other.readDone && !e.other.s.destroyed) closeAfterFlush(e.other);
      } else if (e.s.readableEnded && !e.readDone) {
        if (e.tcp) readEof(e);
        else classifyStream(e);
      } else if (e.s.destroyed && !e.readDone && e.tcp) {
        readReset(e);
      }
    }
    if (r.signal?.aborted) onAbort(r);
    checkDone(r);
    // Start reading both ends now that every listener is in place.
    for (const e of r.ends) if (!e.s.destroyed && !e.paused) e.s.resume();
  });
}

/**
 * Closes the app's connection after a failure before the tunnel was up (route rejected, HBONE
 * CONNECT refused, peer identity wrong, connect error). Istio's ztunnel drops its socket without
 * reading what the app already sent, and the kernel answers a close with unread data by a TCP RST:
 * an app that wrote its request sees ECONNRESET, not an end-of-file that reads as an empty
 * success. Node may already have pulled those bytes into its own buffer, so the reset is explicit
 * here; an app that wrote nothing still sees a plain close (FIN), as with Istio's.
 */
export function closeAfterFailure(downstream: Socket): void {
  if (downstream.destroyed) return;
  if (downstream.bytesRead > 0 || downstream.readableLength > 0) downstream.resetAndDestroy();
  else downstream.destroy();
}
