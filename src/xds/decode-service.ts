// istio.workload.Service (spec/xds.md §5) → the internal Service model. Unknown enum numbers and
// bad IP bytes reject the Service (Rust ztunnel's TryFrom), except `visibility`, which falls back
// to PUBLIC as in Istio's ztunnel (forward compatible); port entries outside 0..65535 are dropped.
// CIDR VIPs (NetworkAddress.length ≠ 32/128) go to `cidrVips`, not `vips` (treating them as exact
// VIPs would be wrong). Never throws.
import { err, ok, type Result } from '../core/errors.js';
import type { GatewayAddress, LbMode, LbScope, LoadBalancer, NetworkAddress, NetworkCidr, Service, WeightedWaypoint } from '../state/model.js';
import {
  bool, decodeGatewayAddress, decodeNetworkAddress, enumNumber, list, portMapFromPorts, str, uint,
} from './decode-common.js';
import type { ProtoLoadBalancing, ProtoService } from './decode-types.js';

const SCOPES = ['UNSPECIFIED_SCOPE', 'REGION', 'ZONE', 'SUBZONE', 'NODE', 'CLUSTER', 'NETWORK'] as const;
const SCOPE_MODEL: readonly (LbScope | null)[] = [null, 'Region', 'Zone', 'Subzone', 'Node', 'Cluster', 'Network'];
const MODES = ['UNSPECIFIED_MODE', 'STRICT', 'FAILOVER', 'PASSTHROUGH'] as const;
const MODE_MODEL: readonly LbMode[] = ['Standard', 'Strict', 'Failover', 'Passthrough'];
const HEALTH_POLICIES = ['ONLY_HEALTHY', 'ALLOW_ALL'] as const;
const IP_FAMILIES = ['AUTOMATIC', 'IPV4_ONLY', 'IPV6_ONLY', 'DUAL'] as const;
const IP_FAMILY_MODEL = [undefined, 'IPv4', 'IPv6', 'Dual'] as const;
const VISIBILITIES = ['PUBLIC', 'NAMESPACE'] as const;

export function decodeService(s: ProtoService): Result<Service, string> {
  if (s == null || typeof s !== 'object') return err('service missing');

  const vips: NetworkAddress[] = [];
  const cidrVips: NetworkCidr[] = [];
  for (const a of list(s.addresses)) {
    if (a == null) continue;
    const na = decodeNetworkAddress(a);
    if (!na.ok) return err(`addresses: ${na.error}`);
    if (a.length != null) {
      const full = na.value.ip.includes(':') ? 128 : 32;
      const len = uint(a.length);
      if (len === null || len > full) return err(`addresses: invalid prefix length ${String(a.length)}`);
      if (len !== full) {
        cidrVips.push({ network: na.value.network, cidr: `${na.value.ip}/${len}` });
        continue;
      }
    }
    vips.push(na.value);
  }

  let waypoint: GatewayAddress | undefined;
  if (s.waypoint != null) {
    const g = decodeGatewayAddress(s.waypoint, 'waypoint');
    if (!g.ok) return g;
    waypoint = g.value;
  }

  let loadBalancer: LoadBalancer | undefined;
  if (s.load_balancing != null) {
    const lb = decodeLoadBalancing(s.load_balancing);
    if (!lb.ok) return lb;
    loadBalancer = lb.value;
  }

  const fam = enumNumber(s.ip_families, IP_FAMILIES);
  if (fam === null) return err(`unknown ip_families ${String(s.ip_families)}`);
  const ipFamilies = IP_FAMILY_MODEL[fam];

  // An unknown visibility (a newer istiod) is PUBLIC, as in Istio's ztunnel.
  const vis = enumNumber(s.visibility, VISIBILITIES) ?? 0;

  const weightedWaypoints: WeightedWaypoint[] = [];
  for (const ww of list(s.weighted_waypoints)) {
    if (ww?.destination == null) return err('weighted_waypoints: missing destination');
    const g = decodeGatewayAddress(ww.destination, 'weighted_waypoints');
    if (!g.ok) return g;
    weightedWaypoints.push({ destination: g.value, weight: uint(ww.weight) ?? 0 });
  }

  const service: Service = {
    name: str(s.name),
    namespace: str(s.namespace),
    hostname: str(s.hostname),
    vips,
    ...(cidrVips.length ? { cidrVips } : {}),
    ports: portMapFromPorts(s.ports),
    subjectAltNames: list(s.subject_alt_names).filter((x): x is string => typeof x === 'string'),
    ...(waypoint ? { waypoint } : {}),
    ...(weightedWaypoints.length ? { weightedWaypoints } : {}),
    ...(loadBalancer ? { loadBalancer } : {}),
    ...(ipFamilies ? { ipFamilies } : {}),
    canonical: bool(s.canonical),
    visibility: vis === 1 ? 'Namespace' : 'Public',
  };
  return ok(Object.freeze(service));
}

function decodeLoadBalancing(lb: ProtoLoadBalancing): Result<LoadBalancer, string> {
  const routingPreferences: LbScope[] = [];
  for (const r of list(lb.routing_preference)) {
    const n = enumNumber(r, SCOPES);
    const scope = n === null ? null : SCOPE_MODEL[n];
    // UNSPECIFIED_SCOPE is not a valid preference either (Rust: "invalid target").
    if (!scope) return err(`load_balancing: invalid routing_preference ${String(r)}`);
    routingPreferences.push(scope);
  }
  const mode = enumNumber(lb.mode, MODES);
  if (mode === null) return err(`load_balancing: unknown mode ${String(lb.mode)}`);
  const hp = enumNumber(lb.health_policy, HEALTH_POLICIES);
  if (hp === null) return err(`load_balancing: unknown health_policy ${String(lb.health_policy)}`);
  return ok({ routingPreferences, mode: MODE_MODEL[mode]!, healthPolicy: hp === 1 ? 'AllowAll' : 'OnlyHealthy' });
}
