// SOCKS5 request parsing (RFC 1928), pure: version 5, method 0 (no auth), CONNECT only, address
// types IPv4 / domain / IPv6 (ports-and-modes.md §1 "SOCKS5"). Incremental: returns 'more' until
// enough bytes arrived.
import { ERRORS, ZtunnelError } from '../core/errors.js';
import { bytesToIp } from '../core/net.js';

/** REP 0x00 (RFC 1928 §6); every failure's byte comes from the error catalogue (SOCKS_* codes). */
const SUCCEEDED = 0x00;

export type GreetingResult = { kind: 'more' } | { kind: 'error'; error: ZtunnelError } | { kind: 'ok'; consumed: number; noAuthOffered: boolean };

export function parseGreeting(buf: Buffer): GreetingResult {
  if (buf.length < 2) return { kind: 'more' };
  if (buf[0] !== 0x05) return { kind: 'error', error: new ZtunnelError('SOCKS_PROTOCOL', `unsupported SOCKS version ${buf[0]}`) };
  const n = buf[1]!;
  if (n === 0) return { kind: 'error', error: new ZtunnelError('SOCKS_PROTOCOL', 'no authentication methods offered') };
  if (buf.length < 2 + n) return { kind: 'more' };
  const methods = buf.subarray(2, 2 + n);
  return { kind: 'ok', consumed: 2 + n, noAuthOffered: methods.includes(0x00) };
}

export type SocksTarget = { kind: 'ip'; ip: string; port: number } | { kind: 'domain'; host: string; port: number };

export type RequestResult =
  | { kind: 'more' }
  | { kind: 'error'; error: ZtunnelError }
  | { kind: 'ok'; consumed: number; target: SocksTarget };

export function parseRequest(buf: Buffer): RequestResult {
  if (buf.length < 4) return { kind: 'more' };
  if (buf[0] !== 0x05) return { kind: 'error', error: new ZtunnelError('SOCKS_PROTOCOL', `unsupported SOCKS version ${buf[0]}`) };
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
  } else return { kind: 'error', error: new ZtunnelError('SOCKS_ADDRESS_TYPE', `unsupported address type ${atyp}`) };
  const total = offset + addrLen + 2;
  if (buf.length < total) return { kind: 'more' };
  if (cmd !== 0x01) return { kind: 'error', error: new ZtunnelError('SOCKS_COMMAND', `unsupported SOCKS command ${cmd}`) };
  const port = buf.readUInt16BE(offset + addrLen);
  if (atyp === 0x03) {
    const host = buf.subarray(offset, offset + addrLen).toString('latin1');
    if (!host) return { kind: 'error', error: new ZtunnelError('SOCKS_PROTOCOL', 'empty domain name') };
    return { kind: 'ok', consumed: total, target: { kind: 'domain', host, port } };
  }
  const ip = bytesToIp(buf.subarray(offset, offset + addrLen));
  if (!ip) return { kind: 'error', error: new ZtunnelError('SOCKS_PROTOCOL', 'bad address') };
  return { kind: 'ok', consumed: total, target: { kind: 'ip', ip, port } };
}

/** The success reply, bound address 0.0.0.0:0. */
export function successReply(): Buffer {
  return reply(SUCCEEDED);
}

/**
 * What a failure answers, from the catalogue: the method selection [05 FF] for SOCKS_AUTH, else a
 * reply whose REP is the code's byte (general failure for codes without one).
 */
export function failureAnswer(e: ZtunnelError): Buffer {
  const byte = (ERRORS[e.code] as { socks?: number }).socks ?? ERRORS.SOCKS_PROTOCOL.socks;
  return e.code === 'SOCKS_AUTH' ? Buffer.from([0x05, byte]) : reply(byte);
}

function reply(rep: number): Buffer {
  return Buffer.from([0x05, rep, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
}
