// The byte relay between two ends of a proxied connection (DESIGN.md §4, hbone.md §6). An end is
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
// Errors ECONNRESET / EPIPE / ENOTCONN and peer RST_STREAMs are swallowed (hbone.md §6: a
// normal close); `reset` tells whether a reset was seen or propagated. Other errors are returned
// in `error`. The relay never throws and resolves exactly once.
import http2 from 'node:http2';
import { Socket } from 'node:net';
import { RELAY_HIGH_WATER_MARK, raiseHighWaterMarks } from '../hbone/stream-buffers.js';

export type RelayEnd = Socket | http2.Http2Stream;
export type RelayDirection = 'aToB' | 'bToA';

export interface RelayOptions {
  /** Aborting destroys both ends (drain deadline, policy revoked). */
  readonly signal?: AbortSignal;
  /** Called with every chunk handed to the other end (bytes counted where copied). */
  readonly onBytes?: (dir: RelayDirection, n: number) => void;
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

/** hbone.md §6: errors of a copy that count as a normal close. */
const SWALLOWED = new Set(['ECONNRESET', 'EPIPE', 'ENOTCONN', 'ERR_HTTP2_STREAM_ERROR', 'ERR_STREAM_PREMATURE_CLOSE']);

type Listener = (...args: any[]) => void;

interface End {
  readonly s: RelayEnd;
  readonly tcp: boolean;
  /** Direction of the bytes read from this end. */
  readonly dir: RelayDirection;
  other: End;
  readDone: boolean;
  /** We closed this end on purpose (broken pipe): its 'close' is not a reset. */
  closing: boolean;
  closed: boolean;
  paused: boolean;
  corked: boolean;
  listeners: [string, Listener][];
}

export function relay(a: RelayEnd, b: RelayEnd, opts: RelayOptions = {}): Promise<RelayResult> {
  return new Promise<RelayResult>((resolve) => {
    const result: RelayResult = { aToB: 0, bToA: 0, reset: false };
    const ownErrors = new WeakSet<Error>();
    let aborted = false;
    let settled = false;
    const { signal, onBytes } = opts;

    const mk = (s: RelayEnd, dir: RelayDirection): End => ({
      s, tcp: s instanceof Socket, dir, other: undefined as unknown as End,
      readDone: false, closing: false, closed: false, paused: false, corked: false, listeners: [],
    });
    const A = mk(a, 'aToB');
    const B = mk(b, 'bToA');
    A.other = B;
    B.other = A;

    const on = (e: End, event: string, fn: Listener) => {
      e.listeners.push([event, fn]);
      e.s.on(event, fn);
    };

    const finish = () => {
      if (settled) return;
      settled = true;
      for (const e of [A, B]) for (const [event, fn] of e.listeners) e.s.off(event, fn);
      signal?.removeEventListener('abort', onAbort);
      resolve(result);
    };
    const checkDone = () => {
      if (A.closed && B.closed) finish();
    };

    const noteError = (err: Error) => {
      if (ownErrors.has(err)) return;
      const code = (err as NodeJS.ErrnoException).code;
      if (code && SWALLOWED.has(code)) return;
      if (!result.error) result.error = err;
    };

    /** Resets an end: RST segment on TCP, RST_STREAM (INTERNAL_ERROR, no END_STREAM) on HTTP/2. */
    const resetEnd = (e: End) => {
      if (e.s.destroyed) return;
      if (e.tcp) {
        try {
          (e.s as Socket).resetAndDestroy();
        } catch {
          e.s.destroy(); // not a TCP handle (e.g. a TLS socket): a plain close is the best we have
        }
      } else {
        const err = new Error('relay: the other side was reset');
        ownErrors.add(err);
        e.s.destroy(err);
      }
    };

    /** Ends an end's write side (FIN / END_STREAM) after its pending bytes. */
    const endWrite = (e: End) => {
      if (e.s.destroyed || e.s.writableEnded) return;
      e.s.end();
    };

    /** Ends the write side, then closes the end once its bytes are flushed. */
    const closeAfterFlush = (e: End) => {
      if (e.s.destroyed || e.closing) return;
      e.closing = true;
      endWrite(e);
      const close = () => {
        if (!e.s.destroyed) e.s.destroy();
      };
      if (e.s.writableFinished) close();
      else on(e, 'finish', close);
    };

    const readEof = (e: End) => {
      if (e.readDone) return;
      e.readDone = true;
      endWrite(e.other);
    };

    const readReset = (e: End) => {
      e.readDone = true;
      if (aborted) return;
      result.reset = true;
      resetEnd(e.other);
      if (!e.s.destroyed) e.s.destroy();
    };

    const isEofCode = (code: number | undefined) => code === undefined || code === NGHTTP2_NO_ERROR || code === NGHTTP2_CANCEL;

    /** hbone.md §6 mapping of a closed stream's RST_STREAM code. */
    const classifyStream = (e: End) => {
      const code = (e.s as http2.Http2Stream).rstCode;
      if (isEofCode(code) && !e.s.errored) readEof(e);
      else readReset(e);
    };

    const flush = (e: End) => {
      e.corked = false;
      if (!e.s.destroyed) e.s.uncork();
    };

    const attach = (src: End) => {
      const dst = src.other;
      on(src, 'data', (chunk: Buffer) => {
        if (dst.s.destroyed || dst.s.writableEnded) return; // broken pipe: handled at dst 'close'
        const n = chunk.length;
        if (src.dir === 'aToB') result.aToB += n;
        else result.bToA += n;
        onBytes?.(src.dir, n);
        let ok: boolean;
        if (dst.corked) {
          ok = dst.s.write(chunk);
        } else {
          // First chunk of a burst goes out at once (latency); the rest of the burst is batched
          // until the next turn of the event loop (perf-notes.md knob 2).
          ok = dst.s.write(chunk);
          dst.s.cork();
          dst.corked = true;
          setImmediate(flush, dst);
        }
        if (!ok && !src.paused) {
          src.paused = true;
          src.s.pause();
        }
      });
      on(dst, 'drain', () => {
        if (src.paused) {
          src.paused = false;
          src.s.resume();
        }
      });
      on(src, 'end', () => {
        if (src.tcp) readEof(src);
        else setImmediate(() => { if (!src.readDone) classifyStream(src); });
      });
      on(src, 'error', (err: Error) => {
        noteError(err);
        readReset(src);
      });
      on(src, 'close', () => {
        src.closed = true;
        if (!src.readDone) {
          if (src.closing) src.readDone = true;
          else if (src.tcp) readReset(src); // destroyed without FIN or error
          else classifyStream(src);
        } else if (!src.tcp && !aborted && !isEofCode((src.s as http2.Http2Stream).rstCode)) {
          // A RST_STREAM that came after END_STREAM (deferred end above).
          result.reset = true;
          resetEnd(dst);
        }
        // Bytes from dst can no longer reach src (broken pipe).
        if (!dst.readDone && !dst.s.destroyed) closeAfterFlush(dst);
        checkDone();
      });
    };

    const onAbort = () => {
      if (settled || aborted) return;
      aborted = true;
      const reason: unknown = signal?.reason;
      if (!result.error) result.error = reason instanceof Error ? reason : new Error(String(reason ?? 'aborted'));
      // destroy() on a stream sends RST_STREAM NO_ERROR at once (an EOF for the peer, hbone.md §6)
      // without waiting for buffered data or a stuck peer; on TCP it closes the socket.
      for (const e of [A, B]) if (!e.s.destroyed) e.s.destroy();
    };

    for (const e of [A, B]) {
      raiseHighWaterMarks(e.s, RELAY_HIGH_WATER_MARK);
      attach(e);
    }
    signal?.addEventListener('abort', onAbort);

    // Ends that were already finished before the relay started.
    for (const e of [A, B]) {
      const rs = (e.s as unknown as { _readableState?: { closeEmitted?: boolean; endEmitted?: boolean } })._readableState;
      if (rs?.closeEmitted) {
        e.closed = true;
        if (!e.readDone) {
          if (e.tcp) readReset(e);
          else classifyStream(e);
        }
        if (!e.other.readDone && !e.other.s.destroyed) closeAfterFlush(e.other);
      } else if (rs?.endEmitted && !e.readDone) {
        if (e.tcp) readEof(e);
        else classifyStream(e);
      } else if (e.s.destroyed && !e.readDone && e.tcp) {
        readReset(e);
      }
    }
    if (signal?.aborted) onAbort();
    checkDone();
    // Start reading both ends now that every listener is in place.
    for (const e of [A, B]) if (!e.s.destroyed && !e.paused) e.s.resume();
  });
}
