// Test apps: a real TCP echo server and a SOCKS5 client, on loopback.
import { createHash } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export interface EchoServer {
  readonly server: Server;
  readonly port: number;
  readonly accepted: Socket[];
  /** Remote addresses of accepted connections ("ip:port"). */
  readonly peers: string[];
  close(): Promise<void>;
}

/** Echoes every byte; ends its side after the client's FIN (half-close aware). */
export async function startEchoServer(host = '127.0.0.1', port = 0, onConnection?: (s: Socket) => boolean): Promise<EchoServer> {
  const accepted: Socket[] = [];
  const peers: string[] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => {
    accepted.push(s);
    peers.push(`${s.remoteAddress}:${s.remotePort}`);
    s.on('error', () => {});
    if (onConnection && onConnection(s)) return;
    s.on('data', (d) => s.write(d));
    s.on('end', () => s.end());
  });
  await new Promise<void>((r) => server.listen(port, host, r));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    accepted,
    peers,
    close: () =>
      new Promise<void>((r) => {
        for (const s of accepted) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Opens a SOCKS5 CONNECT through `proxy` to `target`; resolves once the proxy answered success. */
export function socks5Connect(proxy: { host: string; port: number }, target: { host: string; port: number }, timeoutMs = 10_000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: proxy.host, port: proxy.port, allowHalfOpen: true });
    const timer = setTimeout(() => (s.destroy(), reject(new Error('socks5 handshake timed out'))), timeoutMs);
    let buf = Buffer.alloc(0);
    let stage = 0;
    s.on('error', (e) => (clearTimeout(timer), reject(e)));
    s.on('connect', () => s.write(Buffer.from([5, 1, 0])));
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (stage === 0 && buf.length >= 2) {
        if (buf[0] !== 5 || buf[1] !== 0) return reject(new Error('socks5: method refused'));
        buf = buf.subarray(2);
        stage = 1;
        const isV4 = /^\d+\.\d+\.\d+\.\d+$/.test(target.host);
        const port = Buffer.alloc(2);
        port.writeUInt16BE(target.port);
        const addr = isV4
          ? Buffer.from([1, ...target.host.split('.').map(Number)])
          : Buffer.concat([Buffer.from([3, Buffer.byteLength(target.host)]), Buffer.from(target.host)]);
        s.write(Buffer.concat([Buffer.from([5, 1, 0]), addr, port]));
      }
      if (stage === 1 && buf.length >= 10) {
        clearTimeout(timer);
        s.off('data', onData);
        if (buf[1] !== 0) return reject(new Error(`socks5: reply ${buf[1]}`));
        const rest = buf.subarray(10);
        s.pause();
        if (rest.length) s.unshift(rest);
        resolve(s);
      }
    };
    s.on('data', onData);
  });
}

/** Sends `payload`, half-closes, and collects everything until the peer's FIN (or reset). */
export function roundTrip(s: Socket, payload: Buffer, timeoutMs = 60_000): Promise<{ data: Buffer; error?: Error }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => (s.destroy(), resolve({ data: Buffer.concat(chunks), error: new Error('round trip timed out') })), timeoutMs);
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => (clearTimeout(timer), resolve({ data: Buffer.concat(chunks) })));
    s.on('error', (e) => (clearTimeout(timer), resolve({ data: Buffer.concat(chunks), error: e })));
    s.resume();
    s.end(payload);
  });
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}
