// PROXY protocol v2 header written before app-tunnel traffic (hbone.md §7 table). Pure.
import { ipToBytes, type SocketAddr } from '../core/net.js';

const SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** TLV carrying the client's SPIFFE identity (Istio-defined type 0xD0). */
export const TLV_PEER_IDENTITY = 0xd0;

/** Returns null when src and dst are not of one family (no header can describe them). */
export function proxyV2Header(src: SocketAddr, dst: SocketAddr, identity?: string): Buffer | null {
  const s = ipToBytes(src.ip);
  const d = ipToBytes(dst.ip);
  if (!s || !d || s.length !== d.length) return null;
  const tlvs: Buffer[] = [];
  if (identity) {
    const v = Buffer.from(identity, 'utf8');
    const h = Buffer.alloc(3);
    h[0] = TLV_PEER_IDENTITY;
    h.writeUInt16BE(v.length, 1);
    tlvs.push(h, v);
  }
  const addr = Buffer.alloc(s.length * 2 + 4);
  addr.set(s, 0);
  addr.set(d, s.length);
  addr.writeUInt16BE(src.port, s.length * 2);
  addr.writeUInt16BE(dst.port, s.length * 2 + 2);
  const body = Buffer.concat([addr, ...tlvs]);
  const head = Buffer.alloc(4);
  head[0] = 0x21; // version 2, PROXY command
  head[1] = s.length === 4 ? 0x11 : 0x21; // TCP over IPv4 / IPv6
  head.writeUInt16BE(body.length, 2);
  return Buffer.concat([SIGNATURE, head, body]);
}
