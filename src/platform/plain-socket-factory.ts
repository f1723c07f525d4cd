// SocketFactory over node:net only: dedicated mode, tests, non-Linux. No marks, no transparent
// sockets, no netns; original destination = the local address (capture.md §3 step 3).
import { createSocket, type Socket as DatagramSocket } from 'node:dgram';
import { createServer, Socket, type Server } from 'node:net';
import { canonicalIp, type SocketAddr } from '../core/net.js';
import type { ConnectOptions, KeepaliveOptions, ListenOptions, ListenResult, SocketFactory, UdpOptions } from './socket-factory.js';

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

  async udpSocket(opts: UdpOptions): Promise<DatagramSocket> {
    if (opts.mark !== undefined) throw new Error('SO_MARK requested but the plain socket factory cannot set it (needs the Linux addon)');
    const socket = createSocket({ type: opts.family === 6 ? 'udp6' : 'udp4' });
    await bindDatagram(socket, opts.bind ? { address: stripBrackets(opts.bind.host), port: opts.bind.port } : { port: 0 });
    return socket;
  }

  configureAccepted(socket: Socket, keepalive?: KeepaliveOptions): void {
    socket.setNoDelay(true);
    if (keepalive?.enabled) socket.setKeepAlive(true, keepalive.timeMs);
  }
}

function stripBrackets(h: string): string {
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}

/** Binds a dgram socket (an address/port, or an fd the caller made); the socket is closed on failure. */
export function bindDatagram(socket: DatagramSocket, opts: { address?: string; port?: number; fd?: number }): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (e: Error) => {
      socket.close();
      reject(e);
    };
    socket.once('error', onError);
    socket.bind(opts, () => {
      socket.off('error', onError);
      resolve();
    });
  });
}
