// Shapes of decoded proto objects (spec/xds.md §5–§6) as protobufjs / proto-loader produce them
// with `keepCase`: snake_case names, every field optional (absent or null = unset), enums as
// numbers (or their names), bytes as Uint8Array. Decoders read these and never trust them.

export type ProtoEnum = number | string | null | undefined;
export type ProtoBytes = Uint8Array | null | undefined;

export interface ProtoNetworkAddress {
  readonly network?: string | null;
  readonly address?: ProtoBytes;
  readonly length?: number | null;
}

export interface ProtoNamespacedHostname {
  readonly namespace?: string | null;
  readonly hostname?: string | null;
}

export interface ProtoGatewayAddress {
  readonly hostname?: ProtoNamespacedHostname | null;
  readonly address?: ProtoNetworkAddress | null;
  readonly hbone_mtls_port?: number | null;
}

export interface ProtoPort {
  readonly service_port?: number | null;
  readonly target_port?: number | null;
  readonly app_protocol?: ProtoEnum;
}

export interface ProtoPortList {
  readonly ports?: readonly ProtoPort[] | null;
}

export interface ProtoApplicationTunnel {
  readonly protocol?: ProtoEnum;
  readonly port?: number | null;
}

export interface ProtoLocality {
  readonly region?: string | null;
  readonly zone?: string | null;
  readonly subzone?: string | null;
}

export interface ProtoWorkload {
  readonly uid?: string | null;
  readonly name?: string | null;
  readonly namespace?: string | null;
  readonly addresses?: readonly ProtoBytes[] | null;
  readonly hostname?: string | null;
  readonly network?: string | null;
  readonly tunnel_protocol?: ProtoEnum;
  readonly trust_domain?: string | null;
  readonly service_account?: string | null;
  readonly waypoint?: ProtoGatewayAddress | null;
  readonly network_gateway?: ProtoGatewayAddress | null;
  readonly node?: string | null;
  readonly canonical_name?: string | null;
  readonly canonical_revision?: string | null;
  readonly workload_type?: ProtoEnum;
  readonly workload_name?: string | null;
  readonly native_tunnel?: boolean | null;
  readonly application_tunnel?: ProtoApplicationTunnel | null;
  readonly services?: Readonly<Record<string, ProtoPortList | null>> | null;
  readonly authorization_policies?: readonly string[] | null;
  readonly status?: ProtoEnum;
  readonly cluster_id?: string | null;
  readonly locality?: ProtoLocality | null;
  readonly network_mode?: ProtoEnum;
  /** google.protobuf.UInt32Value: absent = unset (⇒ 1); `{}` = 0. */
  readonly capacity?: { readonly value?: number | null } | null;
}

export interface ProtoLoadBalancing {
  readonly routing_preference?: readonly ProtoEnum[] | null;
  readonly mode?: ProtoEnum;
  readonly health_policy?: ProtoEnum;
}

export interface ProtoWeightedWaypoint {
  readonly destination?: ProtoGatewayAddress | null;
  readonly weight?: number | null;
}

export interface ProtoService {
  readonly name?: string | null;
  readonly namespace?: string | null;
  readonly hostname?: string | null;
  readonly addresses?: readonly ProtoNetworkAddress[] | null;
  readonly ports?: readonly ProtoPort[] | null;
  readonly subject_alt_names?: readonly string[] | null;
  readonly waypoint?: ProtoGatewayAddress | null;
  readonly load_balancing?: ProtoLoadBalancing | null;
  readonly ip_families?: ProtoEnum;
  readonly canonical?: boolean | null;
  readonly ingress_use_waypoint?: boolean | null;
  readonly weighted_waypoints?: readonly ProtoWeightedWaypoint[] | null;
  readonly visibility?: ProtoEnum;
}

export interface ProtoAddress {
  readonly workload?: ProtoWorkload | null;
  readonly service?: ProtoService | null;
}

export interface ProtoStringMatch {
  readonly exact?: string | null;
  readonly prefix?: string | null;
  readonly suffix?: string | null;
  readonly presence?: object | null;
}

export interface ProtoSecurityAddress {
  readonly address?: ProtoBytes;
  readonly length?: number | null;
}

export interface ProtoServiceAccountMatch {
  readonly namespace?: string | null;
  readonly serviceAccount?: string | null;
}

export interface ProtoMatch {
  readonly namespaces?: readonly ProtoStringMatch[] | null;
  readonly not_namespaces?: readonly ProtoStringMatch[] | null;
  readonly principals?: readonly ProtoStringMatch[] | null;
  readonly not_principals?: readonly ProtoStringMatch[] | null;
  readonly source_ips?: readonly ProtoSecurityAddress[] | null;
  readonly not_source_ips?: readonly ProtoSecurityAddress[] | null;
  readonly destination_ips?: readonly ProtoSecurityAddress[] | null;
  readonly not_destination_ips?: readonly ProtoSecurityAddress[] | null;
  readonly destination_ports?: readonly number[] | null;
  readonly not_destination_ports?: readonly number[] | null;
  readonly service_accounts?: readonly ProtoServiceAccountMatch[] | null;
  readonly not_service_accounts?: readonly ProtoServiceAccountMatch[] | null;
}

export interface ProtoClause {
  readonly matches?: readonly ProtoMatch[] | null;
}

export interface ProtoRule {
  readonly clauses?: readonly ProtoClause[] | null;
}

export interface ProtoAuthorization {
  readonly name?: string | null;
  readonly namespace?: string | null;
  readonly scope?: ProtoEnum;
  readonly action?: ProtoEnum;
  readonly rules?: readonly ProtoRule[] | null;
  readonly dry_run?: boolean | null;
}
