// istio.workload.Workload (spec/xds.md §5) → the internal Workload model. Follows Rust ztunnel's
// conversion: proto defaults (trust domain, service account, cluster id, capacity), raw IP bytes,
// unknown enum numbers rejected except workload_type (which falls back to `deployment`), and
// TunnelProtocol LEGACY_ISTIO_MTLS rejected (xds.md §3). Never throws.
import { isPort } from '../core/net.js';
import { err, ok, type Result } from '../core/errors.js';
import type { ApplicationTunnel, GatewayAddress, Locality, PortMap, Workload } from '../state/model.js';
import {
  bool, decodeGatewayAddress, enumNumber, ipFromBytes, list, portMapFromPorts, str, uint,
} from './decode-common.js';
import type { ProtoApplicationTunnel, ProtoWorkload } from './decode-types.js';

const TUNNEL_PROTOCOLS = ['NONE', 'HBONE', 'LEGACY_ISTIO_MTLS'] as const;
const WORKLOAD_TYPES = ['DEPLOYMENT', 'CRONJOB', 'POD', 'JOB'] as const;
const WORKLOAD_STATUSES = ['HEALTHY', 'UNHEALTHY'] as const;
const NETWORK_MODES = ['STANDARD', 'HOST_NETWORK'] as const;
const APP_TUNNEL_PROTOCOLS = ['NONE', 'PROXY'] as const;

export function decodeWorkload(w: ProtoWorkload): Result<Workload, string> {
  if (w == null || typeof w !== 'object') return err('workload missing');

  const workloadIps: string[] = [];
  for (const a of list(w.addresses)) {
    const ip = ipFromBytes(a);
    if (!ip.ok) return err(`addresses: ${ip.error}`);
    workloadIps.push(ip.value);
  }

  const tp = enumNumber(w.tunnel_protocol, TUNNEL_PROTOCOLS);
  if (tp === null) return err(`unknown tunnel_protocol ${String(w.tunnel_protocol)}`);
  if (tp === 2) return err('tunnel_protocol LEGACY_ISTIO_MTLS is not supported');

  const status = enumNumber(w.status, WORKLOAD_STATUSES);
  if (status === null) return err(`unknown status ${String(w.status)}`);
  const networkMode = enumNumber(w.network_mode, NETWORK_MODES);
  if (networkMode === null) return err(`unknown network_mode ${String(w.network_mode)}`);
  // Rust reads workload_type through prost's accessor, which maps unknown numbers to the default.
  const workloadType = WORKLOAD_TYPES[enumNumber(w.workload_type, WORKLOAD_TYPES) ?? 0]!.toLowerCase();

  let waypoint: GatewayAddress | undefined;
  if (w.waypoint != null) {
    const g = decodeGatewayAddress(w.waypoint, 'waypoint');
    if (!g.ok) return g;
    waypoint = g.value;
  }
  let networkGateway: GatewayAddress | undefined;
  if (w.network_gateway != null) {
    const g = decodeGatewayAddress(w.network_gateway, 'network_gateway');
    if (!g.ok) return g;
    networkGateway = g.value;
  }

  let applicationTunnel: ApplicationTunnel | undefined;
  if (w.application_tunnel != null) {
    const at = decodeApplicationTunnel(w.application_tunnel);
    if (!at.ok) return at;
    applicationTunnel = at.value;
  }

  const services = new Map<string, PortMap>();
  if (w.services != null && typeof w.services === 'object') {
    for (const [key, portList] of Object.entries(w.services)) {
      // Keys are "<namespace>/<hostname>" (split at the first '/', as Rust's split_once).
      if (!key.includes('/')) return err(`services: key ${JSON.stringify(key)} is not <namespace>/<hostname>`);
      services.set(key, portMapFromPorts(portList?.ports));
    }
  }

  let locality: Locality | undefined;
  if (w.locality != null) {
    locality = { region: str(w.locality.region), zone: str(w.locality.zone), subzone: str(w.locality.subzone) };
  }

  // google.protobuf.UInt32Value: unset ⇒ 1; set (even to 0) ⇒ its value.
  let capacity = 1;
  if (w.capacity != null) {
    const c = uint(w.capacity.value);
    if (c === null) return err(`invalid capacity ${String(w.capacity.value)}`);
    capacity = c;
  }

  const workload: Workload = {
    uid: str(w.uid),
    name: str(w.name),
    namespace: str(w.namespace),
    workloadIps,
    hostname: str(w.hostname),
    network: str(w.network),
    protocol: tp === 1 ? 'HBONE' : 'TCP',
    trustDomain: str(w.trust_domain) || 'cluster.local',
    serviceAccount: str(w.service_account) || 'default',
    ...(waypoint ? { waypoint } : {}),
    ...(networkGateway ? { networkGateway } : {}),
    node: str(w.node),
    canonicalName: str(w.canonical_name),
    canonicalRevision: str(w.canonical_revision),
    workloadType,
    workloadName: str(w.workload_name),
    nativeTunnel: bool(w.native_tunnel),
    ...(applicationTunnel ? { applicationTunnel } : {}),
    services,
    authorizationPolicies: list(w.authorization_policies).filter((p): p is string => typeof p === 'string'),
    status: status === 1 ? 'Unhealthy' : 'Healthy',
    clusterId: str(w.cluster_id) || 'Kubernetes',
    networkMode: networkMode === 1 ? 'HostNetwork' : 'Standard',
    ...(locality ? { locality } : {}),
    capacity,
    labels: new Map(),
  };
  return ok(Object.freeze(workload));
}

function decodeApplicationTunnel(at: ProtoApplicationTunnel): Result<ApplicationTunnel, string> {
  const protocol = enumNumber(at.protocol, APP_TUNNEL_PROTOCOLS);
  if (protocol === null) return err(`application_tunnel: unknown protocol ${String(at.protocol)}`);
  const port = uint(at.port);
  if (port === null || !isPort(port)) return err(`application_tunnel: invalid port ${String(at.port)}`);
  // port 0 = unset (Rust maps it to None).
  return ok({ protocol: protocol === 1 ? 'PROXY' : 'NONE', ...(port !== 0 ? { port } : {}) });
}
