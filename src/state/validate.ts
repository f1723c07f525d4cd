// Structural checks the stores rely on (docs/design.md §5: "a bad resource rejects itself and nothing
// else"). Decoders (local file, xDS) validate their own input first; this is the store's last line:
// it only checks what would corrupt an index or a lookup (keys, canonical IPs, port ranges, enums).
import { canonicalIp, isPort } from '../core/net.js';
import type { Authorization } from '../policy/model.js';
import type { GatewayAddress, PortMap, Service, Workload } from './model.js';

const PROTOCOLS = new Set(['TCP', 'HBONE']);
const STATUSES = new Set(['Healthy', 'Unhealthy']);
const NETWORK_MODES = new Set(['Standard', 'HostNetwork']);
const VISIBILITIES = new Set(['Public', 'Namespace']);
const SCOPES = new Set(['Global', 'Namespace', 'WorkloadSelector']);
const ACTIONS = new Set(['Allow', 'Deny']);
const MAX_CAPACITY = 0xffff_ffff; // google.protobuf.UInt32Value (xds.md §5)

/**
 * True for IPv4 text already in canonical dotted-quad form (octets 0-255, no leading zeros), which
 * canonicalIp returns unchanged: the common case, checked without canonicalIp's splitting and
 * joining (issue 7: every address of a 10,000-workload file passes here and in the decoders).
 */
export function isCanonicalIpv4(ip: string): boolean {
  const n = ip.length;
  if (n < 7 || n > 15) return false;
  let dots = 0;
  let octet = 0;
  let digits = 0;
  for (let i = 0; i < n; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || ++dots > 3) return false;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return false; // a leading zero
      octet = octet * 10 + (c - 48);
      if (octet > 255) return false;
      digits++;
    } else {
      return false;
    }
  }
  return dots === 3 && digits > 0;
}

function badIp(ip: string): boolean {
  return !isCanonicalIpv4(ip) && canonicalIp(ip) !== ip;
}

function portMapError(ports: PortMap, what: string): string | null {
  for (const [svcPort, targetPort] of ports) {
    if (!isPort(svcPort) || svcPort === 0) return `${what}: invalid service port ${String(svcPort)}`;
    if (!isPort(targetPort)) return `${what}: invalid target port ${String(targetPort)} for service port ${svcPort}`;
  }
  return null;
}

function gatewayError(g: GatewayAddress | undefined, what: string): string | null {
  if (!g) return null;
  if (!isPort(g.hboneMtlsPort) || g.hboneMtlsPort === 0) return `${what}: invalid hbone_mtls_port ${String(g.hboneMtlsPort)}`;
  const d = g.destination;
  if (d.kind === 'address' && badIp(d.address.ip)) return `${what}: address ${d.address.ip} is not a canonical IP`;
  if (d.kind === 'hostname' && (!d.namespace || !d.hostname)) return `${what}: hostname destination needs namespace and hostname`;
  return null;
}

/** null when the workload can be stored; otherwise why not. */
export function workloadError(w: Workload): string | null {
  if (typeof w.uid !== 'string' || w.uid === '') return 'workload uid is empty';
  if (!PROTOCOLS.has(w.protocol)) return `unsupported tunnel protocol ${String(w.protocol)}`;
  if (!STATUSES.has(w.status)) return `unknown status ${String(w.status)}`;
  if (!NETWORK_MODES.has(w.networkMode)) return `unknown network mode ${String(w.networkMode)}`;
  for (const ip of w.workloadIps) if (badIp(ip)) return `address ${ip} is not a canonical IP`;
  if (!Number.isInteger(w.capacity) || w.capacity < 0 || w.capacity > MAX_CAPACITY) return `invalid capacity ${String(w.capacity)}`;
  for (const [key, ports] of w.services) {
    const slash = key.indexOf('/');
    if (slash <= 0 || slash === key.length - 1) return `service key ${JSON.stringify(key)} is not "<namespace>/<hostname>"`;
    const e = portMapError(ports, `service ${key}`);
    if (e) return e;
  }
  return gatewayError(w.waypoint, 'waypoint') ?? gatewayError(w.networkGateway, 'network gateway');
}

export function serviceError(s: Service): string | null {
  if (!s.namespace) return 'service namespace is empty';
  if (!s.hostname) return 'service hostname is empty';
  if (!VISIBILITIES.has(s.visibility)) return `unknown visibility ${String(s.visibility)}`;
  for (const v of s.vips) if (badIp(v.ip)) return `VIP ${v.ip} is not a canonical IP`;
  return portMapError(s.ports, 'ports') ?? gatewayError(s.waypoint, 'waypoint');
}

export function policyError(p: Authorization): string | null {
  if (!p.name) return 'policy name is empty';
  if (!SCOPES.has(p.scope)) return `unknown scope ${String(p.scope)}`;
  if (!ACTIONS.has(p.action)) return `unknown action ${String(p.action)}`;
  if (p.scope === 'Namespace' && !p.namespace) return 'namespace-scoped policy has no namespace';
  return null;
}
