// SocketFactory over node:net only: dedicated mode, tests, non-Linux. No marks, no transparent
// sockets, no netns; original destination = the local address (capture.md §3 step 3).
import { createServer, Socket, type Server } from 'node:net';
import { canonicalIp, type SocketAddr } from '../core/net.js';
import type { ConnectOptions, KeepaliveOptions, ListenOptions, ListenResult, SocketFactory } from './socket-factory.js';

/** 256 KiB stream buffers (perf-notes.md knob 2). */
export const SOCKET_HIGH_WATER_MARK = 256 * 1024;

export class PlainSocketFactory implements SocketFactory {
  readonly kind = 'plain' as const;

  async listen(opts: ListenOptions): Promise<ListenResult> {
    if (opts.transparent === 'force') {
      throw new Error('IP_TRANSPARENT requested but the plain socket factory cannot set it (needs the Linux addon)');
    }
    const server: Server = createServer({ allowHalfOpen: true, pauseOnConnect: false, highWaterMark: SOCKET_HIGH_WATER_MARK } as never);
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      server.once('error', onError);
      server.listen({ host: stripBrackets(opts.host), port: opts.port, backlog: opts.backlog ?? 1024, ipv6Only: false }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    return { server, transparent: false };
  }

  connect(opts: ConnectOptions): Promise<Socket> {
    return new Promise<Socket>((resolve, reject) => {
      if (opts.signal?.aborted) {
        reject(opts.signal.reason ?? new Error('aborted'));
        return;
      }
      const socket = new Socket({ allowHalfOpen: true, highWaterMark: SOCKET_HIGH_WATER_MARK } as never);
      let settled = false;
      const timer = setTimeout(() => finish(Object.assign(new Error(`connect to ${opts.host}:${opts.port} timed out`), { code: 'ETIMEDOUT' })), opts.timeoutMs);
      const onAbort = () => finish(opts.signal?.reason ?? new Error('aborted'));
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      function finish(err?: Error) {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        socket.off('error', finish);
        if (err) {
          socket.destroy();
          reject(err);
        } else {
          resolve(socket);
        }
      }
      socket.once('error', finish);
      socket.setNoDelay(true);
      if (opts.keepalive?.enabled) socket.setKeepAlive(true, opts.keepalive.timeMs);
      socket.connect(
        {
          host: stripBrackets(opts.host),
          port: opts.port,
          ...(opts.sourceIp && !opts.transparentSource ? { localAddress: opts.sourceIp } : {}),
        },
        () => finish(),
      );
    });
  }

  originalDst(socket: Socket): SocketAddr | null {
    const ip = socket.localAddress ? canonicalIp(socket.localAddress) : null;
    if (!ip || socket.localPort === undefined) return null;
    return { ip, port: socket.localPort };
  }

  configureAccepted(socket: Socket, keepalive?: KeepaliveOptions): void {
    socket.setNoDelay(true);
    if (keepalive?.enabled) socket.setKeepAlive(true, keepalive.timeMs);
  }
}

function stripBrackets(h: string): string {
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}
