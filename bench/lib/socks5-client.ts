// Opens the load client's connections: plain TCP, or TCP plus a SOCKS5 CONNECT (RFC 1928, no
// authentication, IPv4 or domain-name target) as an application would use ztunnel's SOCKS5 entry.
import { connect, type Socket } from 'node:net';
import type { Route } from './protocol.js';

const GREETING = Buffer.from([5, 1, 0]);
/** The CONNECT request per target, built once (the load client opens thousands to one target). */
const requests = new Map<string, Buffer>();

function socks5Request(target: { host: string; port: number }): Buffer {
  const key = `${target.host}:${target.port}`;
  let req = requests.get(key);
  if (!req) requests.set(key, (req = buildRequest(target)));
  return req;
}

function buildRequest(target: { host: string; port: number }): Buffer {
  const port = Buffer.alloc(2);
  port.writeUInt16BE(target.port);
  const isV4 = /^\d+\.\d+\.\d+\.\d+$/.test(target.host);
  const addr = isV4
    ? Buffer.from([1, ...target.host.split('.').map(Number)])
    : Buffer.concat([Buffer.from([3, Buffer.byteLength(target.host)]), Buffer.from(target.host)]);
  return Buffer.concat([Buffer.from([5, 1, 0]), addr, port]);
}

/**
 * Resolves with a connected socket (SOCKS5 handshake done when the route has one), in paused
 * mode with no listeners left, so the caller starts reading. Rejects on error or after timeoutMs.
 */
export function openConnection(route: Route, timeoutMs = 10_000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: route.connect.host, port: route.connect.port, noDelay: true });
    let settled = false;
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      reject(e);
    };
    const done = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.removeListener('error', fail);
      s.removeListener('close', onClose);
      resolve(s);
    };
    const onClose = () => fail(new Error('connection closed during setup'));
    const timer = setTimeout(() => fail(new Error(`connection setup timed out after ${timeoutMs} ms`)), timeoutMs);
    s.on('error', fail);
    s.on('close', onClose);
    const target = route.socks5Target;
    if (!target) {
      s.once('connect', done);
      return;
    }
    s.once('connect', () => s.write(GREETING));
    let buf: Buffer = Buffer.alloc(0);
    let stage = 0;
    const onData = (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      if (stage === 0 && buf.length >= 2) {
        if (buf[0] !== 5 || buf[1] !== 0) return fail(new Error('socks5: no acceptable method'));
        buf = buf.subarray(2);
        stage = 1;
        s.write(socks5Request(target));
      }
      if (stage === 1 && buf.length >= 5) {
        if (buf[1] !== 0) return fail(new Error(`socks5: reply code ${buf[1]}`));
        // Reply: VER REP RSV ATYP BND.ADDR BND.PORT
        const atyp = buf[3];
        const len = atyp === 1 ? 10 : atyp === 4 ? 22 : 7 + buf[4]!;
        if (buf.length < len) return;
        s.removeListener('data', onData);
        s.pause();
        const rest = buf.subarray(len);
        if (rest.length) s.unshift(rest);
        done();
      }
    };
    s.on('data', onData);
  });
}
