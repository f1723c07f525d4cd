// Forwarding a question to the upstream resolvers (docs/dns.md "Upstream resolvers"). Each query
// uses a fresh UDP socket (a kernel-chosen random source port) connected to the server and a random
// id; a reply whose id or question differs is dropped. A truncated UDP reply is asked again over TCP.
// Each attempt waits the resolv.conf timeout; attempts cycle through the nameservers
// (resolv.conf `attempts`, Istio's defaults 5 s × 2). Sockets come from the caller's factory, so in
// shared mode they live in the pod's netns with the ztunnel mark (as Istio's forwarder's do).
import { randomInt } from 'node:crypto';
import type { Socket as DatagramSocket } from 'node:dgram';
import type { Socket } from 'node:net';
import * as packet from 'dns-packet';
import type { SocketFactory } from '../platform/socket-factory.js';
import type { Nameserver, ResolvConf } from './resolv-conf.js';

/** EDNS payload advertised upstream with `options edns0` (the resolver library's default). */
const EDNS_PAYLOAD = 1232;
/** Largest TCP reply accepted from upstream. */
const MAX_TCP_REPLY = 65_535;

export interface UpstreamAnswer {
  readonly rcode: string;
  readonly answers: readonly packet.Answer[];
  readonly additionals: readonly packet.Answer[];
}

export type UpstreamResult =
  | { readonly ok: true; readonly answer: UpstreamAnswer }
  | { readonly ok: false; readonly error: string };

export interface UpstreamOptions {
  readonly conf: ResolvConf;
  readonly sockets: Pick<SocketFactory, 'udpSocket' | 'connect'>;
  /** SO_MARK on upstream sockets (shared mode: the ztunnel mark, so the pod's rules let them out). */
  readonly mark?: number;
}

export class Upstream {
  private next = 0;

  constructor(private readonly o: UpstreamOptions) {}

  /** Asks the upstream servers; never rejects. */
  async query(q: packet.Question, signal?: AbortSignal): Promise<UpstreamResult> {
    const servers = this.o.conf.nameservers;
    if (servers.length === 0) return { ok: false, error: 'no nameservers configured' };
    let lastError = 'no attempt made';
    const attempts = this.o.conf.attempts;
    for (let i = 0; i < attempts; i++) {
      if (signal?.aborted) return { ok: false, error: 'aborted' };
      const server = servers[this.next++ % servers.length]!;
      const r = await this.attempt(server, q, signal);
      if (r.ok) return r;
      lastError = r.error;
    }
    return { ok: false, error: lastError };
  }

  private async attempt(server: Nameserver, q: packet.Question, signal?: AbortSignal): Promise<UpstreamResult> {
    const id = randomInt(0, 65_536);
    const query: packet.Packet = {
      type: 'query',
      id,
      flags: packet.RECURSION_DESIRED,
      questions: [{ name: q.name, type: q.type, class: q.class ?? 'IN' }],
      ...(this.o.conf.edns0 ? { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: EDNS_PAYLOAD, flags: 0 } as packet.Answer] } : {}),
    };
    const wire = packet.encode(query);
    const deadline = Date.now() + this.o.conf.timeoutMs;
    let reply: packet.DecodedPacket;
    try {
      reply = await this.udp(server, wire, id, q, deadline, signal);
      if (reply.flag_tc) reply = await this.tcp(server, wire, id, q, deadline, signal);
    } catch (e) {
      return { ok: false, error: `${server.ip}:${server.port}: ${e instanceof Error ? e.message : String(e)}` };
    }
    const rcode = (reply as { rcode?: string }).rcode ?? 'NOERROR';
    if (rcode === 'SERVFAIL' || rcode === 'REFUSED' || rcode === 'NOTIMP' || rcode === 'FORMERR') {
      return { ok: false, error: `${server.ip}:${server.port} answered ${rcode}` };
    }
    return {
      ok: true,
      answer: {
        rcode,
        answers: reply.answers ?? [],
        additionals: (reply.additionals ?? []).filter((a) => a.type !== 'OPT'),
      },
    };
  }

  private async udp(server: Nameserver, wire: Buffer, id: number, q: packet.Question, deadline: number, signal?: AbortSignal): Promise<packet.DecodedPacket> {
    const family = server.ip.includes(':') ? 6 : 4;
    const socket = await this.o.sockets.udpSocket({ family, ...(this.o.mark !== undefined ? { mark: this.o.mark } : {}) });
    try {
      return await new Promise<packet.DecodedPacket>((resolve, reject) => {
        const timer = setTimeout(() => finish(new Error(`no answer within ${this.o.conf.timeoutMs} ms`)), Math.max(0, deadline - Date.now()));
        const onAbort = () => finish(new Error('aborted'));
        signal?.addEventListener('abort', onAbort, { once: true });
        function finish(e: Error | null, p?: packet.DecodedPacket) {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          socket.removeAllListeners('message');
          socket.removeAllListeners('error');
          socket.on('error', () => {});
          if (e) reject(e);
          else resolve(p!);
        }
        socket.on('error', (e) => finish(e));
        socket.on('message', (msg: Buffer) => {
          const p = matchingReply(msg, id, q);
          if (p) finish(null, p); // anything else (spoofed, stale, garbage) is dropped
        });
        socket.connect(server.port, server.ip, () => {
          socket.send(wire, (e) => {
            if (e) finish(e);
          });
        });
      });
    } finally {
      closeQuietly(socket);
    }
  }

  private async tcp(server: Nameserver, wire: Buffer, id: number, q: packet.Question, deadline: number, signal?: AbortSignal): Promise<packet.DecodedPacket> {
    const remaining = () => Math.max(1, deadline - Date.now());
    const socket: Socket = await this.o.sockets.connect({
      host: server.ip,
      port: server.port,
      timeoutMs: remaining(),
      ...(this.o.mark !== undefined ? { mark: this.o.mark } : {}),
      ...(signal ? { signal } : {}),
    });
    try {
      return await new Promise<packet.DecodedPacket>((resolve, reject) => {
        let buf: Buffer = Buffer.alloc(0);
        const timer = setTimeout(() => finish(new Error(`no TCP answer within ${this.o.conf.timeoutMs} ms`)), remaining());
        const onAbort = () => finish(new Error('aborted'));
        signal?.addEventListener('abort', onAbort, { once: true });
        function finish(e: Error | null, p?: packet.DecodedPacket) {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          socket.removeAllListeners('data');
          if (e) reject(e);
          else resolve(p!);
        }
        socket.on('error', (e) => finish(e));
        socket.on('end', () => finish(new Error('connection closed before an answer')));
        socket.on('data', (chunk: Buffer) => {
          buf = Buffer.concat([buf, chunk]);
          while (buf.length >= 2) {
            const len = buf.readUInt16BE(0);
            if (len > MAX_TCP_REPLY) return finish(new Error('oversized TCP answer'));
            if (buf.length < 2 + len) return;
            const p = matchingReply(buf.subarray(2, 2 + len), id, q);
            buf = buf.subarray(2 + len);
            if (p) return finish(null, p);
          }
        });
        const framed = Buffer.alloc(2 + wire.length);
        framed.writeUInt16BE(wire.length, 0);
        wire.copy(framed, 2);
        socket.write(framed);
      });
    } finally {
      socket.destroy();
    }
  }
}

/** The reply when it answers our query (same id, a response, the same question), else undefined. */
function matchingReply(msg: Buffer, id: number, q: packet.Question): packet.DecodedPacket | undefined {
  let p: packet.DecodedPacket;
  try {
    p = packet.decode(msg);
  } catch {
    return undefined;
  }
  if (p.id !== id || p.type !== 'response') return undefined;
  const rq = p.questions?.[0];
  if (!rq || p.questions!.length !== 1) return undefined;
  if (rq.name.toLowerCase() !== q.name.toLowerCase() || rq.type !== q.type || (rq.class ?? 'IN') !== (q.class ?? 'IN')) return undefined;
  return p;
}

function closeQuietly(socket: DatagramSocket): void {
  try {
    socket.close();
  } catch {
    // already closed
  }
}
