// IP, port, socket-address and CIDR helpers. Pure; no sockets.
import { isIP, isIPv4 } from 'node:net';

/** Canonical textual IP: IPv4 dotted, IPv6 compressed lower-case; `::ffff:a.b.c.d` → IPv4 (capture.md §3). */
export function canonicalIp(ip: string): string | null {
  // Fast path, taken for nearly every socket address: node:net's isIPv4 accepts only the
  // canonical dotted form (no leading zeros, no spaces), so such a string is its own answer.
  if (isIPv4(ip)) return ip;
  let s = ip.trim();
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  const fam = isIP(s);
  if (fam === 4) return s;
  if (fam !== 6) return null;
  const bytes = ipToBytes(s);
  if (!bytes) return null;
  // IPv4-mapped IPv6 → IPv4
  if (bytes.length === 16 && bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return `${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  }
  return bytesToIp(bytes);
}

export function ipFamily(ip: string): 4 | 6 | 0 {
  return isIP(ip) as 4 | 6 | 0;
}

/** 4 or 16 raw bytes for an IP string, or null. */
export function ipToBytes(ip: string): Uint8Array | null {
  let s = ip;
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  if (isIPv4(s)) {
    return Uint8Array.from(s.split('.').map((x) => Number(x)));
  }
  if (isIP(s) !== 6) return null;
  // expand embedded IPv4 tail
  let tail: number[] = [];
  const lastColon = s.lastIndexOf(':');
  const maybeV4 = s.slice(lastColon + 1);
  if (isIPv4(maybeV4)) {
    tail = maybeV4.split('.').map(Number);
    s = s.slice(0, lastColon + 1) + '0:0';
  }
  const [head, rest] = s.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const r = rest !== undefined ? (rest ? rest.split(':') : []) : [];
  const groups = rest !== undefined ? [...h, ...Array(8 - h.length - r.length).fill('0'), ...r] : h;
  if (groups.length !== 8) return null;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = (v >> 8) & 0xff;
    out[i * 2 + 1] = v & 0xff;
  });
  if (tail.length === 4) out.set(tail, 12);
  return out;
}

/** Text form of 4 or 16 raw bytes (RFC 5952 compression), or null for another length. */
export function bytesToIp(b: Uint8Array): string | null {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) return null;
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((b[i]! << 8) | b[i + 1]!);
  // longest run of zeros (length ≥ 2)
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(':');
  const left = hex.slice(0, bestStart).join(':');
  const right = hex.slice(bestStart + bestLen).join(':');
  return `${left}::${right}`;
}

export function isLoopback(ip: string): boolean {
  const c = canonicalIp(ip);
  if (!c) return false;
  return c.startsWith('127.') || c === '::1';
}

export interface SocketAddr {
  readonly ip: string; // canonical
  readonly port: number;
}

export function isPort(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 65535;
}

/** `10.0.0.1:80` / `[fd00::1]:80` for a socket address. */
export function formatAddr(a: SocketAddr): string {
  return a.ip.includes(':') ? `[${a.ip}]:${a.port}` : `${a.ip}:${a.port}`;
}

/** Parses `ip:port` or `[ipv6]:port`; null when it is not a socket address. */
export function parseSocketAddr(s: string): SocketAddr | null {
  let host: string;
  let portText: string;
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0 || s[end + 1] !== ':') return null;
    host = s.slice(1, end);
    portText = s.slice(end + 2);
    if (isIP(host) !== 6) return null;
  } else {
    const i = s.lastIndexOf(':');
    if (i < 0) return null;
    host = s.slice(0, i);
    portText = s.slice(i + 1);
    if (isIP(host) !== 4) return null;
  }
  if (!/^\d{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  if (!isPort(port)) return null;
  const ip = canonicalIp(host);
  return ip ? { ip, port } : null;
}

/** Splits `host:port` (host not an IP). Port is required. */
export function parseHostPort(s: string): { host: string; port: number } | null {
  const i = s.lastIndexOf(':');
  if (i <= 0) return null;
  const host = s.slice(0, i);
  const portText = s.slice(i + 1);
  if (!/^\d{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  if (!isPort(port) || host.includes(':') || host.includes('/')) return null;
  return { host, port };
}

export interface Cidr {
  readonly bytes: Uint8Array;
  readonly prefix: number;
  readonly text: string; // canonical `ip/prefix`
}

/** `10.0.0.0/8`, `fd00::/64`, or a bare IP (full-length prefix). */
export function parseCidr(s: string): Cidr | null {
  const slash = s.indexOf('/');
  const ipText = slash >= 0 ? s.slice(0, slash) : s;
  const ip = canonicalIp(ipText);
  if (!ip) return null;
  const bytes = ipToBytes(ip)!;
  const max = bytes.length * 8;
  let prefix = max;
  if (slash >= 0) {
    const p = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p)) return null;
    prefix = Number(p);
    if (prefix > max) return null;
  }
  return { bytes, prefix, text: `${ip}/${prefix}` };
}

export function cidrFromBytes(bytes: Uint8Array, prefix: number): Cidr | null {
  const ip = bytesToIp(bytes);
  if (!ip || prefix < 0 || prefix > bytes.length * 8) return null;
  return { bytes: Uint8Array.from(bytes), prefix, text: `${ip}/${prefix}` };
}

export function cidrContains(c: Cidr, ip: string): boolean {
  const canon = canonicalIp(ip);
  if (!canon) return false;
  const b = ipToBytes(canon)!;
  if (b.length !== c.bytes.length) return false;
  let bits = c.prefix;
  for (let i = 0; i < b.length && bits > 0; i++) {
    const take = Math.min(8, bits);
    const mask = (0xff << (8 - take)) & 0xff;
    if ((b[i]! & mask) !== (c.bytes[i]! & mask)) return false;
    bits -= take;
  }
  return true;
}
