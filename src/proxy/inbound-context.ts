// Phase (a) of an inbound HBONE request (hbone.md §4): turn the CONNECT request into a context —
// which local workload, which upstream address and port, which Service — or the error that
// decides its status. Pure: no I/O, table-tested in inbound-context.test.ts.
import { ZtunnelError } from '../core/errors.js';
import { logSafe } from '../core/log-safe.js';
import { formatAddr, type SocketAddr } from '../core/net.js';
import { parseAuthority } from '../hbone/headers.js';
import type { ApplicationTunnel, Service, Workload } from '../state/model.js';
import { serviceKey } from '../state/model.js';
import type { StateView } from '../state/view.js';

export interface InboundRequest {
  readonly method: string | undefined;
  readonly authority: string | undefined;
  /** Local address of the outer TCP connection (the IP the connection was made to). */
  readonly localAddr: SocketAddr;
  /**
   * Original destination of the outer connection when it was redirected to 15008
   * (transparent network policies, hbone.md "Beyond"); undefined or port 15008 when it was not.
   */
  readonly outerOriginalDst?: SocketAddr;
  /** Host of a hostname authority's Service, from `forwarded: host=` (telemetry only). */
  readonly forwardedHost?: string;
}

export interface InboundOptions {
  readonly network: string;
  /** The workload this proxy serves (dedicated mode / the pod in shared mode); undefined = any local. */
  readonly servedWorkloadUid?: string;
  readonly transparentNetworkPolicies: boolean;
  readonly hbonePort: number;
  readonly illegalPorts: ReadonlySet<number>;
}

export interface InboundContext {
  readonly destination: Workload;
  /** Where the app is dialled (before any application-tunnel override). */
  readonly upstream: SocketAddr;
  /** The port the policy and telemetry see: the resolved target port (policy.md §4). */
  readonly targetPort: number;
  readonly service?: Service;
  readonly applicationTunnel?: ApplicationTunnel;
  readonly authority: string;
}

export function buildInboundContext(state: StateView, req: InboundRequest, opts: InboundOptions): InboundContext | ZtunnelError {
  if (req.method !== 'CONNECT') {
    return new ZtunnelError('BAD_METHOD', `unsupported method ${req.method ?? '<none>'}; HBONE requires CONNECT`);
  }
  const authorityText = req.authority ?? '';
  const authority = parseAuthority(authorityText);
  if (!authority) return new ZtunnelError('BAD_AUTHORITY', `invalid :authority ${JSON.stringify(logSafe(authorityText))}`);

  let destination: Workload | undefined;
  let upstreamIp: string;
  let requestedPort: number;
  let service: Service | undefined;
  if (authority.kind === 'addr') {
    requestedPort = authority.addr.port;
    upstreamIp = authority.addr.ip;
    if (requestedPort === 0) return new ZtunnelError('BAD_AUTHORITY', `invalid :authority ${JSON.stringify(authorityText)}: port 0`);
    if (authorityText.startsWith('[') && !upstreamIp.includes(':')) {
      // An IPv4-mapped IPv6 address is a different address from the IPv4 one the connection was
      // made to: Istio's ztunnel compares them unconverted and answers ip mismatch.
      return new ZtunnelError('IP_MISMATCH', `ip mismatch: ${authorityText.slice(1, authorityText.lastIndexOf(']'))} != ${req.localAddr.ip}`);
    }
    destination = state.findWorkloadByAddr(opts.network, upstreamIp);
    if (upstreamIp !== req.localAddr.ip && !mismatchAllowed(state, destination, req.localAddr, opts)) {
      return new ZtunnelError('IP_MISMATCH', `ip mismatch: ${upstreamIp} != ${req.localAddr.ip}`);
    }
    if (upstreamIp !== req.localAddr.ip) {
      // Sandwich: the receiving workload is the one we deliver to (hbone.md §7).
      destination = state.findWorkloadByAddr(opts.network, req.localAddr.ip);
      upstreamIp = req.localAddr.ip;
    }
  } else {
    // Hostname authority (double HBONE, E/W gateways): pick the Service, then this workload.
    requestedPort = authority.port;
    if (requestedPort === 0) return new ZtunnelError('BAD_AUTHORITY', `invalid :authority ${JSON.stringify(logSafe(authorityText))}: port 0`);
    const candidates = state.findServicesByHostname(authority.host);
    service = candidates[0];
    if (!service) return new ZtunnelError('UNKNOWN_SERVICE', `no service for hostname ${logSafe(authority.host)}`);
    destination = state.findWorkloadByAddr(opts.network, req.localAddr.ip);
    upstreamIp = req.localAddr.ip;
  }

  if (!destination || (opts.servedWorkloadUid !== undefined && destination.uid !== opts.servedWorkloadUid)) {
    return new ZtunnelError('UNKNOWN_DESTINATION', `unknown destination workload for ${formatAddr({ ip: upstreamIp, port: requestedPort })}`);
  }

  let targetPort = requestedPort;
  if (authority.kind === 'host' && service) {
    const mapped = destination.services.get(serviceKey(service))?.get(requestedPort) || service.ports.get(requestedPort);
    if (!mapped) {
      if (!destination.applicationTunnel) {
        return new ZtunnelError('NO_PORT_MAPPING', `service ${serviceKey(service)} has no mapping for port ${requestedPort}`);
      }
    } else {
      targetPort = mapped;
    }
  }

  // Transparent network policies (hbone.md "Beyond"): a redirected connection must ask for the
  // port it was addressed to. For an application tunnel the requested port is compared.
  const outer = req.outerOriginalDst;
  if (opts.transparentNetworkPolicies && outer && outer.port !== opts.hbonePort) {
    const compared = destination.applicationTunnel ? requestedPort : targetPort;
    if (compared !== outer.port) {
      return new ZtunnelError('PORT_MISMATCH', `port mismatch: ${compared} != ${outer.port}`);
    }
  }

  if (opts.illegalPorts.has(targetPort)) {
    return new ZtunnelError('ILLEGAL_PORT', `illegal upstream port ${targetPort}`);
  }

  if (!service && req.forwardedHost) {
    service = state.findServicesByHostname(req.forwardedHost).find((s) => destination!.services.has(serviceKey(s)));
  }
  if (!service) service = serviceByTargetPort(state, destination, targetPort);

  return {
    destination,
    upstream: { ip: upstreamIp, port: targetPort },
    targetPort,
    ...(service ? { service } : {}),
    ...(destination.applicationTunnel ? { applicationTunnel: destination.applicationTunnel } : {}),
    authority: authorityText,
  };
}

/** hbone.md §7 sandwich: a different authority IP is allowed for app tunnels and for waypoints. */
function mismatchAllowed(state: StateView, named: Workload | undefined, local: SocketAddr, opts: InboundOptions): boolean {
  const receiving = state.findWorkloadByAddr(opts.network, local.ip);
  if (!receiving) return false;
  if (receiving.applicationTunnel) return true;
  const isReceiver = (w: { waypoint?: { destination: { kind: string; address?: { ip: string } } } } | undefined) =>
    w?.waypoint?.destination.kind === 'address' && receiving.workloadIps.includes(w.waypoint.destination.address!.ip);
  return isReceiver(named);
}

/** telemetry.md §3: inbound destination_service by matching the target port when no host= is given. */
function serviceByTargetPort(state: StateView, w: Workload, port: number): Service | undefined {
  for (const [key, ports] of w.services) {
    for (const [svcPort, target] of ports) {
      const svc = state.findServiceByKey(key);
      if (!svc) continue;
      if (target === port || (target === 0 && svc.ports.get(svcPort) === port) || svc.ports.get(svcPort) === port) return svc;
    }
  }
  return undefined;
}
