// The DNS proxy's listeners (docs/dns.md "Listeners and limits"): a UDP socket and a TCP listener per
// address, both feeding one DnsHandler. Bounded so that a noisy client cannot starve others:
// - TCP: 2-byte length framing (RFC 1035 §4.2.2); a connection that completes no request within
//   5 s (Istio's TCP request timeout) is closed; at most MAX_TCP_CONNECTIONS per listener, and a new
//   connection over the limit evicts the longest-open idle one; at most MAX_TCP_PENDING requests in
//   flight per connection (more are read later: the socket is paused).
// - UDP: one datagram, one reply; forwards in flight are bounded in the handler.
import type { Socket as DatagramSocket, RemoteInfo } from 'node:dgram';
import type { Server, Socket } from 'node:net';
import type { BindAddr } from '../config/config.js';
import type { SocketFactory } from '../platform/socket-factory.js';
import type { Logger } from '../telemetry/logger.js';
import type { DnsMetrics } from './dns-metrics.js';
import { MAX_QUERY_BYTES, type DnsHandler } from './dns-handler.js';

/** Istio's DNS server closes a TCP connection with no request for this long. */
export const TCP_IDLE_TIMEOUT_MS = 5_000;
export const MAX_TCP_CONNECTIONS = 512;
/** Istio's TCP response buffer size: requests in flight per connection. */
export const MAX_TCP_PENDING = 32;

export interface DnsServerOptions {
  readonly sockets: Pick<SocketFactory, 'udpSocket' | 'listen' | 'configureAccepted'>;
  readonly addresses: readonly BindAddr[];
  readonly handler: DnsHandler;
  readonly metrics: DnsMetrics;
  readonly logger: Logger;
  readonly tcpIdleTimeoutMs?: number;
  readonly maxTcpConnections?: number;
}

interface TcpConn {
  readonly socket: Socket;
  pending: number;
}

export class DnsServer {
  private readonly udp: DatagramSocket[] = [];
  private readonly tcp: Server[] = [];
  private readonly conns = new Set<TcpConn>();
  private closed = false;

  constructor(private readonly o: DnsServerOptions) {}

  /** Binds every address (UDP and TCP); on failure closes what was bound and rejects. */
  async bind(): Promise<void> {
    try {
      for (const a of this.o.addresses) {
        const family = a.host.includes(':') ? 6 : 4;
        const { server } = await this.o.sockets.listen({ host: a.host, port: a.port, backlog: 1024 });
        this.tcp.push(server);
        server.on('connection', (s: Socket) => this.onTcp(s));
        server.on('error', (e) => this.o.logger.warn({ err: e.message }, 'dns tcp listener error'));
        // The UDP socket takes the port the TCP listener got (port 0 in tests).
        const port = (server.address() as { port: number }).port;
        const udp = await this.o.sockets.udpSocket({ family, bind: { host: a.host, port } });
        this.udp.push(udp);
        udp.on('message', (msg, rinfo) => this.onUdp(udp, msg, rinfo));
        udp.on('error', (e) => this.o.logger.warn({ err: e.message }, 'dns udp socket error'));
      }
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** `ip:port` of each bound address (UDP and TCP share the port). */
  addresses(): string[] {
    return this.tcp.map((s) => {
      const a = s.address() as { address: string; port: number };
      return a.address.includes(':') ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.udp) {
      try {
        s.close();
      } catch {
        // already closed
      }
    }
    for (const s of this.tcp) s.close();
    for (const c of this.conns) c.socket.destroy();
    this.conns.clear();
  }

  private onUdp(udp: DatagramSocket, msg: Buffer, rinfo: RemoteInfo): void {
    void this.o.handler.handle(msg, 'udp').then((reply) => {
      if (!reply || this.closed) return;
      udp.send(reply, rinfo.port, rinfo.address, () => {});
    });
  }

  private onTcp(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    socket.on('error', () => {});
    this.o.sockets.configureAccepted(socket);
    const conn: TcpConn = { socket, pending: 0 };
    if (this.conns.size >= (this.o.maxTcpConnections ?? MAX_TCP_CONNECTIONS)) this.evictIdle();
    this.conns.add(conn);
    socket.setTimeout(this.o.tcpIdleTimeoutMs ?? TCP_IDLE_TIMEOUT_MS, () => {
      if (conn.pending === 0) socket.destroy();
    });
    socket.on('close', () => this.conns.delete(conn));
    let buf: Buffer = Buffer.alloc(0);
    socket.on('end', () => {
      if (conn.pending === 0) socket.end();
    });
    socket.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (len > MAX_QUERY_BYTES || len === 0) {
          this.o.metrics.dropped(len === 0 ? 'malformed' : 'oversized', 'tcp');
          socket.destroy();
          return;
        }
        if (buf.length < 2 + len) return;
        const msg = Buffer.from(buf.subarray(2, 2 + len));
        buf = buf.subarray(2 + len);
        this.tcpRequest(conn, msg);
      }
    });
  }

  private tcpRequest(conn: TcpConn, msg: Buffer): void {
    const socket = conn.socket;
    conn.pending++;
    if (conn.pending >= MAX_TCP_PENDING) socket.pause();
    void this.o.handler.handle(msg, 'tcp').then((reply) => {
      conn.pending--;
      if (socket.destroyed) return;
      if (conn.pending < MAX_TCP_PENDING && socket.isPaused()) socket.resume();
      if (reply) {
        const framed = Buffer.alloc(2 + reply.length);
        framed.writeUInt16BE(reply.length, 0);
        reply.copy(framed, 2);
        socket.write(framed);
      }
      if (conn.pending === 0 && socket.readableEnded) socket.end();
    });
  }

  /** Makes room: closes the oldest connection with nothing in flight (else the oldest). */
  private evictIdle(): void {
    let victim: TcpConn | undefined;
    for (const c of this.conns) {
      if (c.pending === 0) {
        victim = c;
        break;
      }
      victim ??= c;
    }
    if (victim) {
      this.conns.delete(victim);
      victim.socket.destroy();
    }
  }
}
