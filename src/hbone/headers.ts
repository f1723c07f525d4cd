// HBONE CONNECT request headers (hbone.md §3): pure builders and parsers. Parsers take header
// values as Node delivers them (string, string[] or undefined) and never throw.
import { randomBytes } from 'node:crypto';
import { formatAddr, parseHostPort, parseSocketAddr, type SocketAddr } from '../core/net.js';

/** Source workload values carried in `baggage` (hbone.md §3). Empty strings are omitted. */
export interface BaggageSource {
  readonly clusterId: string;
  readonly namespace: string;
  /** Lower-case WorkloadType: deployment, cronjob, pod, job. */
  readonly workloadType: string;
  readonly workloadName: string;
  readonly canonicalName: string;
  readonly canonicalRevision: string;
  readonly region: string;
  readonly zone: string;
}

/** Values recognised in received baggage; a key is absent when unset or empty. */
export interface Baggage {
  clusterId?: string;
  namespace?: string;
  /** From whichever of k8s.{deployment,cronjob,pod,job}.name was given. */
  workloadName?: string;
  workloadType?: string;
  canonicalName?: string;
  canonicalRevision?: string;
  region?: string;
  zone?: string;
}

/** hbone.md §3: exact order, comma-joined, no spaces, empty values omitted. */
export function buildBaggage(src: BaggageSource): string {
  const type = src.workloadType.toLowerCase();
  const parts: [string, string][] = [
    ['k8s.cluster.name', src.clusterId],
    ['k8s.namespace.name', src.namespace],
    [`k8s.${type}.name`, type ? src.workloadName : ''],
    ['service.name', src.canonicalName],
    ['service.version', src.canonicalRevision],
    ['cloud.region', src.region],
    ['cloud.availability_zone', src.zone],
  ];
  return parts.filter(([, v]) => v !== '').map(([k, v]) => `${k}=${v}`).join(',');
}

const WORKLOAD_KEYS: Record<string, string> = {
  'k8s.deployment.name': 'deployment',
  'k8s.cronjob.name': 'cronjob',
  'k8s.pod.name': 'pod',
  'k8s.job.name': 'job',
};

/** hbone.md §3 "Server-side parsing": split on `,` then `=`; several headers merge (later wins). */
export function parseBaggage(values: string | readonly string[] | undefined): Baggage {
  const out: Baggage = {};
  const list = values === undefined ? [] : typeof values === 'string' ? [values] : values;
  for (const header of list) {
    for (const item of header.split(',')) {
      const eq = item.indexOf('=');
      if (eq < 0) continue;
      const key = item.slice(0, eq).trim();
      const value = item.slice(eq + 1).trim();
      if (value === '') continue; // empty value = unset
      switch (key) {
        case 'k8s.cluster.name': out.clusterId = value; break;
        case 'k8s.namespace.name': out.namespace = value; break;
        case 'service.name': out.canonicalName = value; break;
        case 'service.version': out.canonicalRevision = value; break;
        case 'cloud.region': out.region = value; break;
        case 'cloud.availability_zone': out.zone = value; break;
        default: {
          const type = WORKLOAD_KEYS[key];
          if (type) {
            out.workloadName = value;
            out.workloadType = type;
          }
        }
      }
    }
  }
  return out;
}

/** `for="<ip:port>"` plus `;host=<hostname>` when a destination Service is known (hbone.md §3). */
export function buildForwarded(client: SocketAddr, serviceHostname?: string): string {
  const f = `for="${formatAddr(client)}"`;
  return serviceHostname ? `${f};host=${serviceHostname}` : f;
}

/**
 * The `host=` element of a `forwarded` header (RFC 7239), quotes stripped; null when absent or
 * when the value is not printable ASCII (hbone.md §3: the header must be ASCII).
 */
export function parseForwardedHost(v: string | readonly string[] | undefined): string | null {
  const text = v === undefined ? undefined : typeof v === 'string' ? v : v[0];
  if (text === undefined || !/^[\t\x20-\x7e]*$/.test(text)) return null;
  for (const element of splitOutsideQuotes(text, ',')) {
    for (const pair of splitOutsideQuotes(element, ';')) {
      const eq = pair.indexOf('=');
      if (eq < 0) continue;
      if (pair.slice(0, eq).trim().toLowerCase() !== 'host') continue;
      let value = pair.slice(eq + 1).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
        value = value.slice(1, -1).replace(/\\(.)/g, '$1');
      }
      return value === '' ? null : value;
    }
  }
  return null;
}

function splitOutsideQuotes(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (quoted && ch === '\\' && i + 1 < s.length) {
      cur += ch + s[++i];
      continue;
    }
    if (ch === '"') quoted = !quoted;
    if (ch === sep && !quoted) {
      out.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  out.push(cur);
  return out;
}

/** W3C trace-context with flags 00: `00-<32 hex>-<16 hex>-00`, random per connection (hbone.md §3). */
export function newTraceparent(random: (size: number) => Uint8Array = randomBytes): string {
  const hex = (n: number) => Buffer.from(random(n).subarray(0, n)).toString('hex').padStart(n * 2, '0');
  return `00-${hex(16)}-${hex(8)}-00`;
}

export type Authority =
  | { readonly kind: 'addr'; readonly addr: SocketAddr }
  | { readonly kind: 'host'; readonly host: string; readonly port: number };

/** `:authority` as a socket address, else `host:port` with the port required (hbone.md §3). */
export function parseAuthority(s: string | undefined): Authority | null {
  if (!s) return null;
  const addr = parseSocketAddr(s);
  if (addr) return { kind: 'addr', addr };
  if (s.startsWith('[')) return null; // a bracketed host must be an IPv6 address
  const hp = parseHostPort(s);
  if (!hp || !/^[A-Za-z0-9._-]+$/.test(hp.host)) return null;
  return { kind: 'host', host: hp.host, port: hp.port };
}
