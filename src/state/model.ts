// ztunnel's internal workload/service model (config.md §2, xds.md §5), the one shape that both
// the local YAML file and xDS decode into. Values are frozen once built; stores index them.

export type TunnelProtocol = 'TCP' | 'HBONE';
export type NetworkMode = 'Standard' | 'HostNetwork';
export type WorkloadStatus = 'Healthy' | 'Unhealthy';

export interface NetworkAddress {
  readonly network: string;
  readonly ip: string; // canonical
}

/** Either `network/ip` or `namespace/hostname`; port is the HBONE mTLS port (usually 15008). */
export type GatewayDestination =
  | { readonly kind: 'address'; readonly address: NetworkAddress }
  | { readonly kind: 'hostname'; readonly namespace: string; readonly hostname: string };

export interface GatewayAddress {
  readonly destination: GatewayDestination;
  readonly hboneMtlsPort: number;
}

export interface ApplicationTunnel {
  readonly protocol: 'NONE' | 'PROXY';
  readonly port?: number;
}

export interface Locality {
  readonly region: string;
  readonly zone: string;
  readonly subzone: string;
}

/** servicePort → targetPort (0 = named port resolved per endpoint). */
export type PortMap = ReadonlyMap<number, number>;

export interface Workload {
  readonly uid: string;
  readonly name: string;
  readonly namespace: string;
  readonly workloadIps: readonly string[]; // canonical
  readonly hostname: string;
  readonly network: string;
  readonly protocol: TunnelProtocol;
  readonly trustDomain: string;
  readonly serviceAccount: string;
  readonly waypoint?: GatewayAddress;
  readonly networkGateway?: GatewayAddress;
  readonly node: string;
  readonly canonicalName: string;
  readonly canonicalRevision: string;
  readonly workloadType: string; // lower-case: deployment, cronjob, pod, job
  readonly workloadName: string;
  readonly nativeTunnel: boolean;
  readonly applicationTunnel?: ApplicationTunnel;
  /** "<ns>/<hostname>" → port map: makes this workload an endpoint of those services. */
  readonly services: ReadonlyMap<string, PortMap>;
  /** Selector-scoped policy keys "<ns>/<name>" that apply to this workload. */
  readonly authorizationPolicies: readonly string[];
  readonly status: WorkloadStatus;
  readonly clusterId: string;
  readonly networkMode: NetworkMode;
  readonly locality?: Locality;
  readonly capacity: number;
  /** Labels (ztunnel-ts local mode only, for AuthorizationPolicy selectors; config.md Beyond b). */
  readonly labels: ReadonlyMap<string, string>;
}

export type LbScope = 'Region' | 'Zone' | 'Subzone' | 'Node' | 'Cluster' | 'Network';
export type LbMode = 'Standard' | 'Strict' | 'Failover' | 'Passthrough';

export interface LoadBalancer {
  readonly routingPreferences: readonly LbScope[];
  readonly mode: LbMode;
  readonly healthPolicy: 'OnlyHealthy' | 'AllowAll';
}

/** A CIDR VIP of a Service (`NetworkAddress` with a prefix length shorter than the address). */
export interface NetworkCidr {
  readonly network: string;
  /** `ip/len` as received (host bits kept, as Istio's ztunnel prints it). */
  readonly cidr: string;
}

/** One candidate of a Service's weighted waypoint set (xds.md §5). */
export interface WeightedWaypoint {
  readonly destination: GatewayAddress;
  readonly weight: number;
}

export interface Service {
  readonly name: string;
  readonly namespace: string;
  readonly hostname: string;
  readonly vips: readonly NetworkAddress[];
  /** CIDR VIPs (newer istiod): listed in /config_dump; not used to match destinations yet. */
  readonly cidrVips?: readonly NetworkCidr[];
  readonly ports: PortMap;
  readonly subjectAltNames: readonly string[];
  readonly waypoint?: GatewayAddress;
  /** When non-empty, the waypoints to pick from by weight (`waypoint` holds the primary). */
  readonly weightedWaypoints?: readonly WeightedWaypoint[];
  readonly loadBalancer?: LoadBalancer;
  readonly ipFamilies?: 'Dual' | 'IPv4' | 'IPv6';
  readonly canonical: boolean;
  readonly visibility: 'Public' | 'Namespace';
}

export function serviceKey(s: { namespace: string; hostname: string }): string {
  return `${s.namespace}/${s.hostname}`;
}

export function networkAddrKey(network: string, ip: string): string {
  return `${network}/${ip}`;
}

/** An endpoint of a Service: a workload plus its own port map for that Service. */
export interface Endpoint {
  readonly workloadUid: string;
  readonly ports: PortMap;
  readonly status: WorkloadStatus;
}
