// HTTP/2 keepalive PINGs (hbone.md §2, §9): first after the interval, then every interval; no ACK
// within the timeout → the caller tears the connection down. One PING outstanding at a time.
import type { Http2Session } from 'node:http2';

export interface KeepaliveTimers {
  readonly intervalMs: number;
  readonly timeoutMs: number;
}

/** Starts pinging; returns a stop function (also stops by itself when the session closes). */
export function startKeepalive(session: Http2Session, t: KeepaliveTimers, onTimeout: () => void): () => void {
  let deadline: NodeJS.Timeout | undefined;
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    clearInterval(interval);
    if (deadline) clearTimeout(deadline);
    session.off('close', stop);
  };
  const interval = setInterval(() => {
    if (deadline || session.destroyed || session.closed) return; // one PING in flight at a time
    deadline = setTimeout(() => {
      deadline = undefined;
      if (!stopped) {
        stop();
        onTimeout();
      }
    }, t.timeoutMs);
    deadline.unref();
    try {
      const sent = session.ping((err) => {
        if (err) return; // session going away; 'close' stops us
        if (deadline) clearTimeout(deadline);
        deadline = undefined;
      });
      if (!sent) { clearTimeout(deadline); deadline = undefined; }
    } catch {
      // ping() throws on a destroyed session or too many outstanding pings; the deadline stands.
    }
  }, t.intervalMs);
  interval.unref();
  session.once('close', stop);
  return stop;
}
