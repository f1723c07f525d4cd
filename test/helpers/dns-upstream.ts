// A small upstream DNS server for tests (UDP + TCP on one port), built on dns-packet: answers the
// A records it is given, NXDOMAIN otherwise; can be made silent, can send a stray reply (wrong id)
// before each real one, and records each query's source port and id.
import { createSocket, type Socket as DatagramSocket } from 'node:dgram';
import { createServer, Socket as NetSocket, type Server, type Socket } from 'node:net';
import * as packet from 'dns-packet';
import type { SocketFactory } from '../../src/platform/socket-factory.js';

export interface UpstreamQuery {
  readonly protocol: 'udp' | 'tcp';
  readonly name: string;
  readonly type: string;
  readonly id: number;
  readonly sourcePort: number;
  readonly sourceIp: string;
}

export class TestUpstream {
  readonly queries: UpstreamQuery[] = [];
  /** name → A addresses. */
  readonly records = new Map<string, string[]>();
  silent = false;
  /** Send a reply with a different id (and one for another name) before the real one. */
  strayFirst = false;
  private udp!: DatagramSocket;
  private tcp!: Server;
  private readonly conns = new Set<Socket>();

  /** Listens on host:port (UDP and TCP), in the test's netns or, with `sockets`, in another one. */
  static async start(host = '127.0.0.1', port = 0, sockets?: Pick<SocketFactory, 'listen' | 'udpSocket'>): Promise<TestUpstream> {
    const u = new TestUpstream();
    if (sockets) {
      u.tcp = (await sockets.listen({ host, port })).server;
      u.tcp.on('connection', (s: Socket) => u.onTcp(s));
    } else {
      u.tcp = createServer((s) => u.onTcp(s));
      await new Promise<void>((r) => u.tcp.listen(port, host, r));
    }
    const bound = (u.tcp.address() as { port: number }).port;
    if (sockets) {
      u.udp = await sockets.udpSocket({ family: host.includes(':') ? 6 : 4, bind: { host, port: bound } });
    } else {
      u.udp = createSocket(host.includes(':') ? 'udp6' : 'udp4');
      await new Promise<void>((r) => u.udp.bind(bound, host, r));
    }
    u.udp.on('message', (m, rinfo) => {
      for (const reply of u.answer(m, 'udp', rinfo.port, rinfo.address)) u.udp.send(reply, rinfo.port, rinfo.address);
    });
    return u;
  }

  get port(): number {
    return (this.tcp.address() as { port: number }).port;
  }

  async stop(): Promise<void> {
    for (const c of this.conns) c.destroy();
    this.udp.close();
    await new Promise<void>((r) => this.tcp.close(() => r()));
  }

  private onTcp(s: Socket): void {
    this.conns.add(s);
    s.on('close', () => this.conns.delete(s));
    s.on('error', () => {});
    let buf: Buffer = Buffer.alloc(0);
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        for (const reply of this.answer(msg, 'tcp', s.remotePort ?? 0, s.remoteAddress ?? '')) {
          const framed = Buffer.alloc(2 + reply.length);
          framed.writeUInt16BE(reply.length, 0);
          reply.copy(framed, 2);
          s.write(framed);
        }
      }
    });
  }

  private answer(msg: Buffer, protocol: 'udp' | 'tcp', sourcePort: number, sourceIp: string): Buffer[] {
    const q = packet.decode(msg);
    const question = q.questions![0]!;
    this.queries.push({ protocol, name: question.name, type: question.type, id: q.id ?? 0, sourcePort, sourceIp: sourceIp.replace(/^::ffff:/, '') });
    if (this.silent) return [];
    const ips = question.type === 'A' ? this.records.get(question.name) : undefined;
    const known = this.records.has(question.name);
    const answers = (ips ?? []).map((ip) => ({ name: question.name, type: 'A' as const, ttl: 60, data: ip }));
    const full: packet.Packet = {
      type: 'response',
      id: q.id ?? 0,
      flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE | (known ? 0 : 3),
      questions: [question],
      answers,
    };
    let reply = packet.encode(full);
    if (protocol === 'udp' && reply.length > 512) {
      reply = packet.encode({ ...full, answers: [], flags: (full.flags ?? 0) | packet.TRUNCATED_RESPONSE });
    }
    const out = [reply];
    if (this.strayFirst) {
      const wrongId = packet.encode({ ...full, id: ((q.id ?? 0) + 1) % 65536, answers: [{ name: question.name, type: 'A', ttl: 60, data: '6.6.6.6' }] });
      const wrongName = packet.encode({ ...full, questions: [{ ...question, name: 'evil.example' }], answers: [{ name: question.name, type: 'A', ttl: 60, data: '6.6.6.7' }] });
      out.unshift(wrongId, wrongName);
    }
    return out;
  }
}

/** Asks one question over UDP or TCP; resolves with the decoded reply, or null after `timeoutMs`. */
export async function ask(
  protocol: 'udp' | 'tcp',
  host: string,
  port: number,
  name: string,
  type: packet.RecordType = 'A',
  opts: { timeoutMs?: number; edns?: number } = {},
): Promise<{ reply: packet.DecodedPacket & { rcode?: string }; bytes: number } | null> {
  const query = packet.encode({
    type: 'query',
    id: Math.floor(Math.random() * 65536),
    flags: packet.RECURSION_DESIRED,
    questions: [{ name, type }],
    ...(opts.edns ? { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: opts.edns, flags: 0 } as packet.Answer] } : {}),
  });
  return rawAsk(protocol, host, port, query, opts.timeoutMs ?? 5000);
}

export function rawAsk(protocol: 'udp' | 'tcp', host: string, port: number, query: Buffer, timeoutMs: number): Promise<{ reply: packet.DecodedPacket & { rcode?: string }; bytes: number } | null> {
  return new Promise((resolve) => {
    if (protocol === 'udp') {
      const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
      const timer = setTimeout(() => done(null), timeoutMs);
      const done = (v: { reply: packet.DecodedPacket; bytes: number } | null) => {
        clearTimeout(timer);
        s.close();
        resolve(v);
      };
      s.on('message', (m) => done({ reply: packet.decode(m), bytes: m.length }));
      s.send(query, port, host);
      return;
    }
    const c = new NetSocket();
    let buf: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => done(null), timeoutMs);
    const done = (v: { reply: packet.DecodedPacket; bytes: number } | null) => {
      clearTimeout(timer);
      c.destroy();
      resolve(v);
    };
    c.on('error', () => done(null));
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) done({ reply: packet.decode(buf.subarray(2, 2 + buf.readUInt16BE(0))), bytes: buf.readUInt16BE(0) });
    });
    c.connect(port, host, () => {
      const framed = Buffer.alloc(2 + query.length);
      framed.writeUInt16BE(query.length, 0);
      query.copy(framed, 2);
      c.write(framed);
    });
  });
}
