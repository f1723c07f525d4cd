// SOCKS5 request parsing (RFC 1928), pure: version 5, method 0 (no auth), CONNECT only, address
// types IPv4 / domain / IPv6 (ports-and-modes.md §1 "SOCKS5"). Incremental: returns 'more' until
// enough bytes arrived.
import { bytesToIp } from '../core/net.js';

export const SOCKS_REPLY = {
  succeeded: 0x00,
  generalFailure: 0x01,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

export type GreetingResult = { kind: 'more' } | { kind: 'error'; message: string } | { kind: 'ok'; consumed: number; noAuthOffered: boolean };

export function parseGreeting(buf: Buffer): GreetingResult {
  if (buf.length < 2) return { kind: 'more' };
  if (buf[0] !== 0x05) return { kind: 'error', message: `unsupported SOCKS version ${buf[0]}` };
  const n = buf[1]!;
  if (buf.length < 2 + n) return { kind: 'more' };
  const methods = buf.subarray(2, 2 + n);
  return { kind: 'ok', consumed: 2 + n, noAuthOffered: methods.includes(0x00) };
}

export type SocksTarget = { kind: 'ip'; ip: string; port: number } | { kind: 'domain'; host: string; port: number };

export type RequestResult =
  | { kind: 'more' }
  | { kind: 'error'; message: string; reply: number }
  | { kind: 'ok'; consumed: number; target: SocksTarget };

export function parseRequest(buf: Buffer): RequestResult {
  if (buf.length < 4) return { kind: 'more' };
  if (buf[0] !== 0x05) return { kind: 'error', message: `unsupported SOCKS version ${buf[0]}`, reply: SOCKS_REPLY.generalFailure };
  const cmd = buf[1]!;
  const atyp = buf[3]!;
  let addrLen: number;
  let offset = 4;
  if (atyp === 0x01) addrLen = 4;
  else if (atyp === 0x04) addrLen = 16;
  else if (atyp === 0x03) {
    if (buf.length < 5) return { kind: 'more' };
    addrLen = buf[4]!;
    offset = 5;
  } else return { kind: 'error', message: `unsupported address type ${atyp}`, reply: SOCKS_REPLY.addressTypeNotSupported };
  const total = offset + addrLen + 2;
  if (buf.length < total) return { kind: 'more' };
  if (cmd !== 0x01) return { kind: 'error', message: `unsupported SOCKS command ${cmd}`, reply: SOCKS_REPLY.commandNotSupported };
  const port = buf.readUInt16BE(offset + addrLen);
  if (atyp === 0x03) {
    const host = buf.subarray(offset, offset + addrLen).toString('latin1');
    if (!host) return { kind: 'error', message: 'empty domain name', reply: SOCKS_REPLY.generalFailure };
    return { kind: 'ok', consumed: total, target: { kind: 'domain', host, port } };
  }
  const ip = bytesToIp(buf.subarray(offset, offset + addrLen));
  if (!ip) return { kind: 'error', message: 'bad address', reply: SOCKS_REPLY.generalFailure };
  return { kind: 'ok', consumed: total, target: { kind: 'ip', ip, port } };
}

/** A reply with bound address 0.0.0.0:0. */
export function reply(code: number): Buffer {
  return Buffer.from([0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
}
