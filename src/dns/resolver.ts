// The DNS proxy's decision (docs/dns.md "How a name is answered"): one question, the mesh state and
// the client workload in, an answer or "forward upstream" out. Pure: no sockets, no clock; the
// caller shuffles addresses (as Istio's ztunnel does) through the `shuffle` argument.
//
// Facts followed (Istio ztunnel src/dns/server.rs): only A and AAAA are answered; the requested
// name is tried as given, as the Kubernetes FQDNs it can expand to from the client's namespace, and
// with each of the client's search domains stripped (then expanded again); each of those is looked
// up as a Service hostname and then as `*.` wildcards of decreasing length. A Service counts when it
// has VIPs or its hostname is under `.svc.<cluster domain>` (headless), and when it is visible to the
// client's namespace; among several with one hostname, the client's namespace wins, then a
// canonical one, then PREFERED_SERVICE_NAMESPACE, then the first. Pod hostnames are not answered
// (forwarded), as in Istio.
import type { Service, Workload } from '../state/model.js';
import { serviceKey } from '../state/model.js';
import type { StateView } from '../state/view.js';

/** TTL of every answer the proxy makes itself (Istio: 30 s). */
export const MESH_TTL_SECONDS = 30;

export type IpRecordType = 'A' | 'AAAA';

export interface MeshRecord {
  readonly name: string;
  readonly type: 'A' | 'AAAA' | 'CNAME';
  readonly ttl: number;
  /** An IP (A/AAAA) or the canonical name (CNAME). */
  readonly data: string;
}

export type Resolution =
  | { readonly kind: 'forward'; readonly reason: 'record type' | 'unknown host' }
  /** Answered from the mesh (authoritative, NOERROR); `records` may be empty (the host exists). */
  | { readonly kind: 'answer'; readonly records: readonly MeshRecord[]; readonly result: string; readonly endpoints: number };

export interface ResolverSettings {
  readonly clusterDomain: string;
  readonly ipv6Enabled: boolean;
  readonly preferedServiceNamespace?: string;
  /** The search domains of the client (shared mode: `<ns>.svc.<cd>`, `svc.<cd>`, `<cd>`). */
  readonly searchDomains: (client: Workload) => readonly string[];
}

export type DnsStateView = Pick<StateView, 'findServicesByHostname' | 'endpointsOf' | 'findWorkloadByUid'>;

/** The search domains a pod in `namespace` has (what Istio assumes in shared mode). */
export function kubeSearchDomains(namespace: string, clusterDomain: string): string[] {
  return [`${namespace}.svc.${clusterDomain}`, `svc.${clusterDomain}`, clusterDomain];
}

interface Alias {
  readonly name: string;
  /** Set when the alias came from stripping a search domain: the stripped name. */
  readonly stripped?: string;
}

/** Decides the answer to one question asked by `client`. */
export function resolveQuestion(
  question: { readonly name: string; readonly type: string },
  state: DnsStateView,
  client: Workload,
  settings: ResolverSettings,
  shuffle: <T>(items: T[]) => T[] = (x) => x,
): Resolution {
  const type = question.type;
  if (type !== 'A' && type !== 'AAAA') return { kind: 'forward', reason: 'record type' };
  // Istio's DNS server lower-cases the question first; answers carry the lower-case name.
  const requested = trimDot(question.name).toLowerCase();
  const match = findService(requested, state, client, settings);
  if (!match) return { kind: 'forward', reason: 'unknown host' };

  if (!familyAllowed(match.service, type, settings.ipv6Enabled)) {
    // The host exists: NOERROR with no records, not NXDOMAIN.
    return { kind: 'answer', records: [], result: 'service does not support this record type', endpoints: 0 };
  }
  const addresses = shuffle(addressesOf(match.service, type, state, client, settings.ipv6Enabled));
  if (addresses.length === 0) return { kind: 'answer', records: [], result: 'no records', endpoints: 0 };

  const records: MeshRecord[] = [];
  let ipName = requested;
  if (match.alias.stripped !== undefined && !match.wildcard) {
    // Found after stripping a search domain: point the asked name at the stripped one.
    records.push({ name: requested, type: 'CNAME', ttl: MESH_TTL_SECONDS, data: match.alias.stripped });
    ipName = match.alias.stripped;
  }
  for (const ip of addresses) records.push({ name: ipName, type, ttl: MESH_TTL_SECONDS, data: ip });
  return { kind: 'answer', records, result: 'success', endpoints: addresses.length };
}

interface ServiceMatch {
  readonly service: Service;
  readonly alias: Alias;
  readonly wildcard: boolean;
}

function findService(requested: string, state: DnsStateView, client: Workload, s: ResolverSettings): ServiceMatch | undefined {
  const svcDomain = `.svc.${s.clusterDomain}`;
  for (const alias of aliasesOf(requested, client, s)) {
    for (const candidate of wildcardsOf(alias.name)) {
      const services = state
        .findServicesByHostname(candidate)
        // No VIP and not a Kubernetes headless Service: forwarded (Istio checks the domain).
        .filter((svc) => svc.vips.length > 0 || svc.hostname.endsWith(svcDomain))
        .filter((svc) => svc.visibility !== 'Namespace' || svc.namespace === client.namespace);
      const best = bestService(services, client.namespace, s.preferedServiceNamespace ?? '');
      if (best) return { service: best, alias, wildcard: candidate.startsWith('*.') };
    }
  }
  return undefined;
}

/** Client namespace first; else a canonical Service; else the preferred namespace; else the first. */
export function bestService(services: readonly Service[], clientNamespace: string, preferred: string): Service | undefined {
  let pick: { s: Service; rank: 'first' | 'preferred' | 'canonical' } | undefined;
  for (const svc of services) {
    if (svc.namespace === clientNamespace) return svc;
    if (svc.canonical) pick = { s: svc, rank: 'canonical' };
    else if (preferred !== '' && svc.namespace === preferred && pick?.rank !== 'canonical') pick = { s: svc, rank: 'preferred' };
    else pick ??= { s: svc, rank: 'first' };
  }
  return pick?.s;
}

/** The requested name, its Kubernetes expansions, and the same for each search domain stripped. */
export function aliasesOf(requested: string, client: Workload, s: ResolverSettings): Alias[] {
  const out: Alias[] = [];
  const seen = new Set<string>();
  const add = (a: Alias) => {
    const key = a.name.toLowerCase();
    if (seen.has(key)) return;
    seen.add(key);
    out.push(a);
  };
  const nsDomain = `${client.namespace}.svc.${s.clusterDomain}`;
  add({ name: requested });
  for (const fqdn of kubeFqdnsOf(requested, nsDomain, s.clusterDomain)) add({ name: fqdn });
  for (const domain of s.searchDomains(client)) {
    const stripped = trimDomain(requested, domain);
    if (stripped === undefined) continue;
    add({ name: stripped, stripped });
    for (const fqdn of kubeFqdnsOf(stripped, nsDomain, s.clusterDomain)) add({ name: fqdn, stripped });
  }
  return out;
}

/**
 * The Kubernetes FQDNs a name can stand for: `<svc>` → `<svc>.<ns>.svc.<cd>`; `<svc>.<ns>` and
 * `<pod>.<subdomain>`; `<svc>.<ns>.svc` and `<pod>.<subdomain>.<ns>`; `<pod>.<subdomain>.<ns>.svc`.
 */
export function kubeFqdnsOf(name: string, nsDomain: string, clusterDomain: string): string[] {
  const labels = labelsOf(name);
  const svcDomain = `svc.${clusterDomain}`;
  switch (labels.length) {
    case 1:
      return [`${name}.${nsDomain}`];
    case 2:
      return [`${name}.${svcDomain}`, `${name}.${nsDomain}`];
    case 3:
      return hasDomain(name, 'svc') ? [`${name}.${clusterDomain}`, `${name}.${svcDomain}`] : [`${name}.${svcDomain}`];
    case 4:
      return hasDomain(name, 'svc') ? [`${name}.${clusterDomain}`] : [];
    default:
      return [];
  }
}

/** `a.b.c` → [`a.b.c`, `*.b.c`, `*.c`]. */
export function wildcardsOf(name: string): string[] {
  const labels = labelsOf(name);
  const out = [name];
  for (let i = 0; i + 1 < labels.length; i++) out.push(['*', ...labels.slice(i + 1)].join('.'));
  return out;
}

/** True when `name` has more labels than `domain` and ends with its labels (case-insensitive). */
export function hasDomain(name: string, domain: string): boolean {
  const n = labelsOf(name);
  const d = labelsOf(domain);
  if (d[0] === '*' || n.length <= d.length) return false;
  const tail = n.slice(n.length - d.length);
  return tail.every((l, i) => l.toLowerCase() === d[i]!.toLowerCase());
}

/** `name` without `domain`'s labels, or undefined when it does not end with them (or nothing is left). */
export function trimDomain(name: string, domain: string): string | undefined {
  if (!hasDomain(name, domain)) return undefined;
  const n = labelsOf(name);
  return n.slice(0, n.length - labelsOf(domain).length).join('.');
}

function familyAllowed(service: Service, type: IpRecordType, ipv6Enabled: boolean): boolean {
  if (!ipv6Enabled && type === 'AAAA') return false;
  // Headless Services matter here: a single-stack Service's dual-stack pods answer one family only.
  if (service.ipFamilies === 'IPv4' && type === 'AAAA') return false;
  if (service.ipFamilies === 'IPv6' && type === 'A') return false;
  return true;
}

function addressesOf(service: Service, type: IpRecordType, state: DnsStateView, client: Workload, ipv6Enabled: boolean): string[] {
  const fits = (ip: string) => (ip.includes(':') ? type === 'AAAA' && ipv6Enabled : type === 'A');
  if (service.vips.length === 0) {
    // Headless: one address of the family per endpoint workload.
    const out: string[] = [];
    for (const ep of state.endpointsOf(serviceKey(service))) {
      const ip = state.findWorkloadByUid(ep.workloadUid)?.workloadIps.find(fits);
      if (ip !== undefined) out.push(ip);
    }
    return out;
  }
  return service.vips.filter((v) => v.network === client.network && fits(v.ip)).map((v) => v.ip);
}

function labelsOf(name: string): string[] {
  const n = trimDot(name);
  return n === '' ? [] : n.split('.');
}

function trimDot(name: string): string {
  return name.endsWith('.') ? name.slice(0, -1) : name;
}
