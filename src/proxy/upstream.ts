// Phase (b) "connect the app" of inbound handlers (capture.md §4, hbone.md §7 application tunnel):
// spoof the client's source IP when the listener is transparent (fall back to a normal connect
// with a warning), or dial the app tunnel port over loopback and write a PROXY v2 header.
import type { Socket } from 'node:net';
import { formatIdentity, type Identity } from '../core/spiffe.js';
import type { SocketAddr } from '../core/net.js';
import type { KeepaliveOptions, SocketFactory } from '../platform/socket-factory.js';
import type { Logger } from '../telemetry/logger.js';
import type { InboundContext } from './inbound-context.js';
import { proxyV2Header } from './proxy-protocol.js';

export interface UpstreamRequest {
  readonly ctx: Pick<InboundContext, 'upstream' | 'applicationTunnel'>;
  readonly client: SocketAddr;
  readonly clientIdentity: Identity | null;
  readonly spoofSource: boolean;
  readonly localhostAppTunnel: boolean;
  readonly mark?: number;
  readonly keepalive?: KeepaliveOptions;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
  readonly logger: Logger;
}

/** The listener options every inbound handler dials the app with. */
export interface UpstreamDialOptions {
  readonly spoofSource: boolean;
  readonly localhostAppTunnel: boolean;
  readonly mark?: number;
  readonly keepalive?: KeepaliveOptions;
  readonly connectTimeoutMs: number;
}

/** An UpstreamRequest from a handler's options and the connection's own parts. */
export function upstreamRequest(
  opts: UpstreamDialOptions,
  conn: Pick<UpstreamRequest, 'ctx' | 'client' | 'clientIdentity' | 'logger'>,
  signal: AbortSignal,
): UpstreamRequest {
  return {
    ...conn,
    spoofSource: opts.spoofSource,
    localhostAppTunnel: opts.localhostAppTunnel,
    ...(opts.mark !== undefined ? { mark: opts.mark } : {}),
    ...(opts.keepalive ? { keepalive: opts.keepalive } : {}),
    timeoutMs: opts.connectTimeoutMs,
    signal,
  };
}

export async function connectUpstream(sockets: SocketFactory, r: UpstreamRequest): Promise<Socket> {
  const tunnel = r.ctx.applicationTunnel;
  const base = {
    ...(r.mark !== undefined ? { mark: r.mark } : {}),
    ...(r.keepalive ? { keepalive: r.keepalive } : {}),
    timeoutMs: r.timeoutMs,
    ...(r.signal ? { signal: r.signal } : {}),
  };
  if (tunnel) {
    const port = tunnel.port ?? r.ctx.upstream.port;
    const loopback = tunnel.protocol === 'PROXY' && r.localhostAppTunnel;
    const host = loopback ? (r.ctx.upstream.ip.includes(':') ? '::1' : '127.0.0.1') : r.ctx.upstream.ip;
    const socket = await sockets.connect({ host, port, ...base });
    if (tunnel.protocol === 'PROXY') {
      const header = proxyV2Header(r.client, r.ctx.upstream, r.clientIdentity ? formatIdentity(r.clientIdentity) : undefined);
      if (header) socket.write(header);
    }
    return socket;
  }
  const { ip, port } = r.ctx.upstream;
  if (r.spoofSource && r.client.ip !== ip) {
    try {
      return await sockets.connect({ host: ip, port, sourceIp: r.client.ip, transparentSource: true, ...base });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Refused / timed out is the app's answer, not a spoofing problem: report it as such.
      if (code === 'ECONNREFUSED' || code === 'ETIMEDOUT' || r.signal?.aborted) throw e;
      r.logger.warn({ err: (e as Error).message, 'src.addr': r.client.ip }, 'failed to connect with the client source address; falling back to a normal connect');
    }
  }
  return sockets.connect({ host: ip, port, ...base });
}
