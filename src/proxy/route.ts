// Outbound routing decision (hbone.md §7, xds.md §8): where a captured connection to `dst` goes.
// Pure: state lookups and a passed-in random source only; table-tested in route.test.ts.
import { ZtunnelError, type ErrorCode } from '../core/errors.js';
import { formatAddr, isLoopback, type SocketAddr } from '../core/net.js';
import { identityEquals, parseIdentity, type Identity } from '../core/spiffe.js';
import { pickEndpoint, pickWorkloadIp } from '../state/load-balance.js';
import type { GatewayAddress, Service, Workload } from '../state/model.js';
import { serviceKey } from '../state/model.js';
import type { StateView } from '../state/view.js';
import { identityOf } from '../state/workload-identity.js';

export interface RouteInput {
  readonly source: Workload | undefined;
  /** The source's identity when known from elsewhere (certificate); default identityOf(source). */
  readonly sourceIdentity?: Identity;
  /** The source's IP (downstream peer address); default: any of source's workload IPs. */
  readonly sourceIp?: string;
  /** Original destination of the captured connection. */
  readonly dst: SocketAddr;
  /** This ztunnel's network (NETWORK). */
  readonly network: string;
}

export interface RouteOptions {
  readonly random: () => number;
  /** capture.md §8: a direct HBONE hop dials podIP:targetPort instead of podIP:hbonePort. */
  readonly transparentNetworkPolicies: boolean;
  readonly hbonePort: number; // 15008
  readonly illegalPorts: ReadonlySet<number>;
  /** Node of this ztunnel, for NODE locality ranking when the source names none. */
  readonly nodeName?: string;
}

export type Route =
  | { readonly kind: 'reject'; readonly code: ErrorCode; readonly message: string }
  /** Plain TCP to the original destination. */
  | { readonly kind: 'passthrough'; readonly target: SocketAddr }
  /** Plain TCP to a known workload that does not speak HBONE. */
  | { readonly kind: 'tcp'; readonly target: SocketAddr; readonly destination: Workload; readonly service?: Service }
  /**
   * HBONE. For a waypoint hop `destination` is the waypoint workload (the peer that answers) and
   * `service` the Service the client addressed (Service waypoints only).
   */
  | {
      readonly kind: 'hbone';
      readonly nextHop: SocketAddr;
      readonly authority: string;
      readonly expectedIdentities: Identity[];
      readonly destination?: Workload;
      readonly service?: Service;
      readonly viaWaypoint: boolean;
    }
  /**
   * Double HBONE through the destination network's gateway (hbone.md §8): an outer CONNECT to the
   * gateway (`nextHop`, verified against `expectedIdentities`) with `authority` =
   * `<service hostname>:<port>`, and inside it mTLS + CONNECT to the final peer, verified against
   * `finalIdentities`. `destination` is the gateway workload (the peer this ztunnel talks to).
   */
  | {
      readonly kind: 'double-hbone';
      readonly nextHop: SocketAddr;
      readonly authority: string;
      readonly expectedIdentities: Identity[];
      readonly finalIdentities: Identity[];
      readonly destination: Workload;
      readonly service: Service;
      readonly viaWaypoint: boolean;
    };

type Reject = Extract<Route, { kind: 'reject' }>;

function reject(code: ErrorCode, message: string): Reject {
  return { kind: 'reject', code, message };
}

/** A reject route as a ZtunnelError (for the outbound handler's record phase). */
export function routeError(r: Reject): ZtunnelError {
  return new ZtunnelError(r.code, r.message);
}

export function buildRoute(state: StateView, input: RouteInput, opts: RouteOptions): Route {
  const { dst, source, network } = input;
  // ports-and-modes.md §3: loopback on one of our own ports would loop back into ztunnel.
  if (isLoopback(dst.ip) && opts.illegalPorts.has(dst.port)) {
    return reject('RECURSIVE_CALL', 'attempted recursive call to ourselves');
  }

  const service = state.findServiceByVip(network, dst.ip, source?.namespace);

  // 1. Service-addressed and the Service has a waypoint: authority stays the original VIP:port.
  const serviceWaypoint = service ? pickServiceWaypoint(service, opts.random) : undefined;
  if (serviceWaypoint) return viaWaypoint(state, input, opts, serviceWaypoint, service);

  // 2. Resolve the upstream: Service load balancing, else a workload by IP, else passthrough.
  let upstream: { workload: Workload; targetPort: number; service?: Service };
  if (service) {
    if (service.loadBalancer?.mode === 'Passthrough') return { kind: 'passthrough', target: dst };
    const picked = pickEndpoint(state, service, dst.port, source, lbOptions(input, opts));
    if (!picked) return reject('NO_HEALTHY_UPSTREAM', `no healthy upstream for ${service.hostname}:${dst.port}`);
    upstream = { workload: picked.workload, targetPort: picked.targetPort, service };
  } else {
    const workload = state.findWorkloadByAddr(network, dst.ip);
    if (!workload) return { kind: 'passthrough', target: dst };
    upstream = { workload, targetPort: dst.port };
  }
  const w = upstream.workload;

  // 3. Another network: double HBONE through its gateway (hbone.md §8). Istio's ztunnel crosses
  // networks only for Service-addressed traffic.
  if (w.network !== network) {
    if (!upstream.service) return reject('NO_VALID_DESTINATION', `no service for target address: ${formatAddr(dst)}`);
    return throughGateway(state, input, opts, w, upstream.service, false, upstream.service.subjectAltNames);
  }

  // 4. Workload-addressed, the workload has a waypoint, and we are not that waypoint.
  if (!upstream.service && w.waypoint && !sourceIsWaypoint(state, input, w.waypoint)) {
    return viaWaypoint(state, input, opts, w.waypoint, undefined);
  }

  // 5. Direct.
  const ip = pickWorkloadIp(w, dst.ip, upstream.service?.ipFamilies);
  if (ip === undefined) return noAddress(w);
  const target: SocketAddr = { ip, port: upstream.targetPort };
  if (w.protocol === 'TCP') return { kind: 'tcp', target, destination: w, ...(upstream.service ? { service: upstream.service } : {}) };
  return {
    kind: 'hbone',
    // capture.md §8: transparent mode keeps the real port on the wire for direct hops.
    nextHop: { ip, port: opts.transparentNetworkPolicies ? upstream.targetPort : opts.hbonePort },
    authority: formatAddr(target),
    expectedIdentities: expectedIdentities(w, upstream.service),
    destination: w,
    ...(upstream.service ? { service: upstream.service } : {}),
    viaWaypoint: false,
  };
}

/**
 * The waypoint of a Service-addressed connection, as Istio's ztunnel picks it
 * (`fetch_service_waypoint`): one entry of `weightedWaypoints`, drawn per connection with
 * probability weight / total (a zero weight is never drawn); when there is no entry, or every
 * weight is zero, the single `waypoint` field (if any).
 */
export function pickServiceWaypoint(service: Service, random: () => number): GatewayAddress | undefined {
  const weighted = service.weightedWaypoints ?? [];
  let total = 0;
  for (const w of weighted) total += w.weight;
  if (total > 0) {
    let r = random() * total;
    let last: GatewayAddress | undefined;
    for (const w of weighted) {
      if (w.weight <= 0) continue;
      last = w.destination;
      if (r < w.weight) return w.destination;
      r -= w.weight;
    }
    return last; // only reached through rounding at the top of the range
  }
  return service.waypoint;
}

function lbOptions(input: RouteInput, opts: RouteOptions) {
  return { random: opts.random, network: input.network, ...(opts.nodeName !== undefined ? { nodeName: opts.nodeName } : {}) };
}

function noAddress(w: Workload): Reject {
  if (w.hostname) return reject('UNSUPPORTED_ROUTE', `workload ${w.uid} is DNS-resolved (${w.hostname}); not supported yet`);
  return reject('NO_VALID_DESTINATION', `workload ${w.uid} has no suitable IP for routing`);
}

/** hbone.md §1 table: the workload's identity plus the SANs of the Service it was reached through. */
function expectedIdentities(w: Workload, service: Service | undefined): Identity[] {
  const out: Identity[] = [identityOf(w)];
  for (const san of service?.subjectAltNames ?? []) {
    const id = parseIdentity(san);
    if (id && !out.some((o) => identityEquals(o, id))) out.push(id);
  }
  return out;
}

interface WaypointTarget {
  readonly workload: Workload;
  readonly ip: string;
  readonly port: number;
  readonly service?: Service;
}

/** Resolves a GatewayAddress (hbone.md §7 "Waypoint address") to one waypoint workload and port. */
function resolveWaypoint(state: StateView, g: GatewayAddress, input: RouteInput, opts: RouteOptions): WaypointTarget | Reject {
  const d = g.destination;
  let service: Service | undefined;
  if (d.kind === 'address') {
    const w = state.findWorkloadByAddr(d.address.network, d.address.ip);
    if (w) return { workload: w, ip: d.address.ip, port: g.hboneMtlsPort };
    service = state.findServiceByVip(d.address.network, d.address.ip, input.source?.namespace);
  } else {
    service = state.findServiceByKey(`${d.namespace}/${d.hostname}`);
  }
  const name = d.kind === 'address' ? `${d.address.network}/${d.address.ip}` : `${d.namespace}/${d.hostname}`;
  if (!service) return reject('UNKNOWN_WAYPOINT', `waypoint ${name} not found`);
  const picked = pickEndpoint(state, service, g.hboneMtlsPort, input.source, { ...lbOptions(input, opts), resolution: 'waypoint' });
  if (!picked) return reject('NO_HEALTHY_UPSTREAM', `no healthy upstream for waypoint ${service.hostname}:${g.hboneMtlsPort}`);
  const ip = pickWorkloadIp(picked.workload, input.dst.ip, service.ipFamilies);
  if (ip === undefined) return noAddress(picked.workload);
  return { workload: picked.workload, ip, port: picked.targetPort, service };
}

function viaWaypoint(state: StateView, input: RouteInput, opts: RouteOptions, g: GatewayAddress, addressed: Service | undefined): Route {
  const wp = resolveWaypoint(state, g, input, opts);
  if ('kind' in wp) return wp;
  // A Service's waypoint on another network is reached through that network's gateway (Istio's
  // build_request_through_gateway); a workload's waypoint is dialled directly, as Istio does.
  if (addressed && wp.workload.network !== input.network) {
    return throughGateway(state, input, opts, wp.workload, addressed, true, wp.service?.subjectAltNames ?? []);
  }
  return {
    kind: 'hbone',
    // Waypoint hops always use the waypoint's HBONE port, also in transparent mode (capture.md §8).
    nextHop: { ip: wp.ip, port: wp.port },
    // hbone.md §3: via a waypoint the authority is the original, untranslated destination.
    authority: formatAddr(input.dst),
    expectedIdentities: expectedIdentities(wp.workload, wp.service),
    destination: wp.workload,
    ...(addressed ? { service: addressed } : {}),
    viaWaypoint: true,
  };
}

/**
 * Double HBONE to `w` (a remote endpoint or a remote waypoint) for Service `service`: the outer hop
 * goes to `w`'s network gateway; the inner tunnel is verified against the SANs Istio's ztunnel uses
 * (the Service's, or the waypoint Service's, subjectAltNames), or `w`'s own identity when there are
 * none. No gateway: Istio's "no valid routing destination".
 */
function throughGateway(state: StateView, input: RouteInput, opts: RouteOptions, w: Workload, service: Service, viaWaypoint: boolean, sans: readonly string[]): Route {
  if (!w.networkGateway) return reject('NO_VALID_DESTINATION', `no valid routing destination for workload: ${w.uid} (network ${JSON.stringify(w.network)} has no gateway)`);
  const gw = resolveWaypoint(state, w.networkGateway, input, opts);
  if ('kind' in gw) return reject(gw.code === 'UNKNOWN_WAYPOINT' ? 'NO_VALID_DESTINATION' : gw.code, gw.message.replace(/^waypoint /, 'network gateway '));
  const finalIdentities: Identity[] = [];
  for (const san of sans) {
    const id = parseIdentity(san);
    if (id && !finalIdentities.some((o) => identityEquals(o, id))) finalIdentities.push(id);
  }
  if (finalIdentities.length === 0) finalIdentities.push(identityOf(w));
  return {
    kind: 'double-hbone',
    nextHop: { ip: gw.ip, port: gw.port },
    authority: `${service.hostname}:${input.dst.port}`,
    expectedIdentities: expectedIdentities(gw.workload, gw.service),
    finalIdentities,
    destination: gw.workload,
    service,
    viaWaypoint,
  };
}

/** hbone.md §7 step 4: the source is the destination's waypoint when identity and IP both match. */
function sourceIsWaypoint(state: StateView, input: RouteInput, g: GatewayAddress): boolean {
  const src = input.source;
  if (!src) return false;
  const srcId = input.sourceIdentity ?? identityOf(src);
  const srcIps = input.sourceIp !== undefined ? [input.sourceIp] : src.workloadIps;
  const isSource = (w: Workload): boolean =>
    identityEquals(identityOf(w), srcId) && srcIps.some((ip) => w.workloadIps.includes(ip));
  const d = g.destination;
  let service: Service | undefined;
  if (d.kind === 'address') {
    const w = state.findWorkloadByAddr(d.address.network, d.address.ip);
    if (w) return isSource(w);
    service = state.findServiceByVip(d.address.network, d.address.ip, src.namespace);
  } else {
    service = state.findServiceByKey(`${d.namespace}/${d.hostname}`);
  }
  if (!service) return false;
  for (const ep of state.endpointsOf(serviceKey(service))) {
    const w = state.findWorkloadByUid(ep.workloadUid);
    if (w && isSource(w)) return true;
  }
  return false;
}
