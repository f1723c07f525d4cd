// Load balancing over a Service's endpoints (xds.md §8 "Load balancing", steps 1–6). Pure: the
// random source is passed in, so tests can seed it.
import type { Endpoint, LbScope, Service, Workload } from './model.js';
import { serviceKey } from './model.js';
import type { StateView } from './view.js';

/**
 * `standard`: a user addressed `VIP:port`. `waypoint`: resolving a waypoint Service by its HBONE
 * port, where an application-tunnel endpoint need not have the port on the Service (hbone.md §7).
 */
export type ResolutionMode = 'standard' | 'waypoint';

export interface PickOptions {
  readonly random: () => number;
  /** Node of this ztunnel, used for the NODE scope when the source workload names none. */
  readonly nodeName?: string;
  /** Network of the source when there is no source workload (default ''). */
  readonly network?: string;
  readonly resolution?: ResolutionMode;
}

export interface PickedEndpoint {
  readonly workload: Workload;
  readonly endpoint: Endpoint;
  readonly targetPort: number;
}

interface Candidate {
  readonly endpoint: Endpoint;
  readonly workload: Workload;
}

interface SourceProfile {
  readonly region: string;
  readonly zone: string;
  readonly subzone: string;
  readonly node: string;
  readonly clusterId: string;
  readonly network: string;
}

export function pickEndpoint(
  state: StateView,
  service: Service,
  servicePort: number,
  source: Workload | undefined,
  opts: PickOptions,
): PickedEndpoint | undefined {
  const src = sourceProfile(source, opts);
  const svcTarget = service.ports.get(servicePort);
  const candidates = candidatesFor(state, service, servicePort, src, opts.resolution ?? 'standard');
  if (!candidates) return undefined;

  // Step 3: locality ranking.
  const lb = service.loadBalancer;
  const options =
    lb && (lb.mode === 'Strict' || lb.mode === 'Failover')
      ? topRanked(candidates, lb.routingPreferences, lb.mode === 'Strict', src)
      : candidates;

  // Step 4: weighted random pick.
  const chosen = pickWeighted(options, opts.random);
  if (!chosen) return undefined;

  // Step 5: target port.
  const targetPort = resolveTargetPort(chosen, servicePort, svcTarget);
  if (targetPort === undefined) return undefined;
  return { workload: chosen.workload, endpoint: chosen.endpoint, targetPort };
}

/**
 * Every endpoint `service:servicePort` may be sent to, each with its target port: steps 1, 2 and 5
 * without the locality ranking and the random pick (`ztunnel explain` judges every endpoint).
 * Endpoints without a resolvable target port are left out, as pickEndpoint would not use them.
 */
export function endpointTargets(
  state: StateView,
  service: Service,
  servicePort: number,
  source: Workload | undefined,
  opts: Omit<PickOptions, 'random'> = {},
): PickedEndpoint[] {
  const svcTarget = service.ports.get(servicePort);
  const candidates = candidatesFor(state, service, servicePort, sourceProfile(source, opts), opts.resolution ?? 'standard') ?? [];
  const out: PickedEndpoint[] = [];
  for (const c of candidates) {
    const targetPort = resolveTargetPort(c, servicePort, svcTarget);
    if (targetPort !== undefined) out.push({ workload: c.workload, endpoint: c.endpoint, targetPort });
  }
  return out;
}

function sourceProfile(source: Workload | undefined, opts: Omit<PickOptions, 'random'>): SourceProfile {
  return {
    region: source?.locality?.region ?? '',
    zone: source?.locality?.zone ?? '',
    subzone: source?.locality?.subzone ?? '',
    node: source?.node || opts.nodeName || '',
    clusterId: source?.clusterId ?? '',
    network: source?.network ?? opts.network ?? '',
  };
}

/** Steps 1–2; undefined when the service port is not on the Service (standard resolution). */
function candidatesFor(
  state: StateView,
  service: Service,
  servicePort: number,
  src: SourceProfile,
  mode: ResolutionMode,
): Candidate[] | undefined {
  const svcTarget = service.ports.get(servicePort);
  // Step 1: the service port must exist on the Service (standard resolution only).
  if (mode === 'standard' && svcTarget === undefined) return undefined;
  const allowUnhealthy = service.loadBalancer?.healthPolicy === 'AllowAll';

  // Step 2: known workload with an address (or a network gateway on another network) and a port.
  const candidates: Candidate[] = [];
  for (const endpoint of state.endpointsOf(serviceKey(service))) {
    if (endpoint.status !== 'Healthy' && !allowUnhealthy) continue;
    const workload = state.findWorkloadByUid(endpoint.workloadUid);
    if (!workload) continue;
    const hasAddress = workload.workloadIps.length > 0 || workload.hostname !== '';
    // A gateway is advertised even for same-network workloads; it is only usable across networks.
    if (!hasAddress && (workload.network === src.network || !workload.networkGateway)) continue;
    if (mode === 'standard') {
      if ((svcTarget ?? 0) === 0 && !endpoint.ports.has(servicePort)) continue;
    } else if (svcTarget === undefined && !workload.applicationTunnel) {
      continue;
    }
    candidates.push({ endpoint, workload });
  }
  return candidates;
}

function scopeMatches(scope: LbScope, src: SourceProfile, w: Workload): boolean {
  switch (scope) {
    case 'Region':
      return src.region === (w.locality?.region ?? '');
    case 'Zone':
      return src.zone === (w.locality?.zone ?? '');
    case 'Subzone':
      return src.subzone === (w.locality?.subzone ?? '');
    case 'Node':
      return src.node === w.node;
    case 'Cluster':
      return src.clusterId === w.clusterId;
    case 'Network':
      return src.network === w.network;
  }
}

/**
 * xds.md §8 step 3: +1 per matching scope in order, stopping at the first mismatch. A leading
 * NETWORK scope is special: a match is worth 1 + (len − 1) so same-network endpoints always outrank
 * others, and a mismatch does not stop the walk. STRICT keeps only endpoints matching every scope.
 */
function rankEndpoint(prefs: readonly LbScope[], src: SourceProfile, w: Workload): { rank: number; matchedAll: boolean } {
  let rank = 0;
  let matchedAll = true;
  for (let i = 0; i < prefs.length; i++) {
    const scope = prefs[i]!;
    const m = scopeMatches(scope, src, w);
    if (i === 0 && scope === 'Network') {
      if (m) rank += prefs.length;
      else matchedAll = false;
      continue;
    }
    if (!m) {
      matchedAll = false;
      break;
    }
    rank++;
  }
  return { rank, matchedAll };
}

function topRanked(candidates: readonly Candidate[], prefs: readonly LbScope[], strict: boolean, src: SourceProfile): Candidate[] {
  let best = -1;
  let out: Candidate[] = [];
  for (const c of candidates) {
    const { rank, matchedAll } = rankEndpoint(prefs, src, c.workload);
    if (strict && !matchedAll) continue;
    if (rank > best) {
      best = rank;
      out = [c];
    } else if (rank === best) {
      out.push(c);
    }
  }
  return out;
}

/** Random pick weighted by capacity; capacity 0 is never picked; all zero → none (as Rust). */
function pickWeighted(options: readonly Candidate[], random: () => number): Candidate | undefined {
  let total = 0;
  for (const c of options) total += c.workload.capacity;
  if (total <= 0) return undefined;
  let r = random() * total;
  let last: Candidate | undefined;
  for (const c of options) {
    if (c.workload.capacity <= 0) continue;
    last = c;
    r -= c.workload.capacity;
    if (r < 0) return c;
  }
  return last; // only reached through floating-point rounding at the top end
}

/**
 * Step 5: the endpoint's own mapping > the Service's target port (if > 0) > the service port
 * itself for an application-tunnel endpoint > none.
 */
function resolveTargetPort(c: Candidate, servicePort: number, svcTarget: number | undefined): number | undefined {
  const own = c.endpoint.ports.get(servicePort);
  if (own !== undefined && own > 0) return own;
  if (svcTarget !== undefined && svcTarget > 0) return svcTarget;
  if (c.workload.applicationTunnel) return servicePort;
  return undefined;
}

/**
 * Step 6: which of the workload's IPs to dial. The dialled IP if it is the workload's; else one
 * allowed by the Service's IP family restriction, preferring the family of the original
 * destination. undefined when none fits (a hostname-only workload needs DNS instead).
 */
export function pickWorkloadIp(w: Workload, originalIp: string, ipFamilies?: Service['ipFamilies']): string | undefined {
  if (w.workloadIps.includes(originalIp)) return originalIp;
  const wantV6 = originalIp.includes(':');
  let fallback: string | undefined;
  for (const ip of w.workloadIps) {
    const v6 = ip.includes(':');
    if ((ipFamilies === 'IPv4' && v6) || (ipFamilies === 'IPv6' && !v6)) continue;
    if (v6 === wantV6) return ip;
    fallback ??= ip;
  }
  return fallback;
}
