// Guard against an HTTP/2 write/read deadlock in Node (measured 2026-11 on Node 20.20; still there
// on Node 24.21, 2026-12: the 'do not deadlock' test of test/integration/hbone-pool.test.ts hangs
// without this watchdog).
//
// Node's Http2Session stops reading its socket whenever a socket write is in flight
// (MaybeStopReading: "want_read == 0 || is_write_in_progress()", nodejs/node#29399) and resumes
// only when that write completes. With the large windows of hbone.md §2 (4 MiB per stream,
// 16 MiB per connection) two peers that both send more than the kernel buffers hold end up with
// both writes in flight and neither reading: every stream of the connection hangs for good.
// Reproduced with plain Node http2 (3 streams echoing 4 MiB each way); it does not happen with
// 64 KiB windows. perf-notes.md calls the effect "serializes"; under load it is a deadlock.
//
// The watchdog costs nothing on the data path: a shared timer looks at each registered
// connection's TCP send queue, and when libuv is holding unsent bytes (the kernel buffer is full,
// so a session write may be stuck) it asks the TLS handle to read again. The session then
// processes what the peer sent — including its WINDOW_UPDATEs and DATA — and stops reading again
// on its own. That is what any HTTP/2 implementation without this quirk does all the time.
import type net from 'node:net';
import type tls from 'node:tls';
import { pendingWriteBytes, restartTlsReads } from '../core/node-internals.js';

/** How often stalled connections are looked at; a stalled session waits at most this long. */
export const READ_WATCHDOG_INTERVAL_MS = 10;

interface Watched {
  readonly tcp: net.Socket;
  readonly tlsSocket: tls.TLSSocket;
}

const watched = new Set<Watched>();
let timer: NodeJS.Timeout | undefined;

function tick(): void {
  for (const w of watched) {
    if (pendingWriteBytes(w.tcp) > 0) restartTlsReads(w.tlsSocket);
  }
}

/**
 * Watches the connection (raw TCP socket under the TLS socket an Http2Session runs on) until
 * the TLS socket closes.
 */
export function watchSessionReads(tcp: net.Socket, tlsSocket: tls.TLSSocket): void {
  const w: Watched = { tcp, tlsSocket };
  watched.add(w);
  if (!timer) {
    timer = setInterval(tick, READ_WATCHDOG_INTERVAL_MS);
    timer.unref();
  }
  tlsSocket.once('close', () => {
    watched.delete(w);
    if (watched.size === 0 && timer) {
      clearInterval(timer);
      timer = undefined;
    }
  });
}
