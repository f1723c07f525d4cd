// Upstream resolver settings from a resolv.conf (docs/dns.md "Upstream resolvers"): what Istio's
// ztunnel reads from the node's /etc/resolv.conf through its resolver library: the nameservers, the
// search list (last `search`/`domain` line wins), and `options timeout:N attempts:N edns0`
// (defaults 5 s and 2). ztunnel-ts also accepts `nameserver <ipv4>:<port>` and
// `nameserver [<ipv6>]:<port>` so tests can point at a resolver on a high port.
import { canonicalIp } from '../core/net.js';

export interface Nameserver {
  readonly ip: string;
  readonly port: number;
}

export interface ResolvConf {
  readonly nameservers: readonly Nameserver[];
  readonly search: readonly string[];
  /** Per-attempt timeout. */
  readonly timeoutMs: number;
  readonly attempts: number;
  /** `options edns0`: upstream queries carry EDNS (payload 1232) instead of the 512-byte UDP limit. */
  readonly edns0: boolean;
}

export const DEFAULT_TIMEOUT_MS = 5_000;
export const DEFAULT_ATTEMPTS = 2;

/** Parses resolv.conf text; unknown lines and options are ignored, as resolvers do. */
export function parseResolvConf(text: string): ResolvConf {
  const nameservers: Nameserver[] = [];
  let search: string[] = [];
  let timeoutMs = DEFAULT_TIMEOUT_MS;
  let attempts = DEFAULT_ATTEMPTS;
  let edns0 = false;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    if (line === '') continue;
    const [key, ...rest] = line.split(/\s+/);
    switch (key) {
      case 'nameserver': {
        const ns = rest[0] !== undefined ? parseNameserver(rest[0]) : undefined;
        if (ns) nameservers.push(ns);
        break;
      }
      case 'search':
      case 'domain':
        search = rest.filter((d) => d !== '--' && d !== '.').map((d) => (d.endsWith('.') ? d.slice(0, -1) : d));
        break;
      case 'options':
        for (const opt of rest) {
          const [name, value] = opt.split(':');
          const n = value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
          if (name === 'timeout' && n !== undefined) timeoutMs = Math.min(Math.max(n, 1), 30) * 1000;
          else if (name === 'attempts' && n !== undefined) attempts = Math.min(Math.max(n, 1), 5);
          else if (name === 'edns0') edns0 = true;
        }
        break;
      default:
        break;
    }
  }
  return { nameservers, search, timeoutMs, attempts, edns0 };
}

function parseNameserver(text: string): Nameserver | undefined {
  const bracket = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text);
  if (bracket) return withPort(bracket[1]!, bracket[2]!);
  const v4port = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(text);
  if (v4port) return withPort(v4port[1]!, v4port[2]!);
  const ip = canonicalIp(text.split('%')[0]!);
  return ip ? { ip, port: 53 } : undefined;
}

function withPort(ipText: string, portText: string): Nameserver | undefined {
  const ip = canonicalIp(ipText);
  const port = Number(portText);
  return ip && port > 0 && port <= 65535 ? { ip, port } : undefined;
}
