// Read-only view of the state stores: what routing, inbound and admin need. Local, synchronous
// lookups only (docs/design.md §5). Implemented by state/state.ts.
import type { Authorization } from '../policy/model.js';
import type { Endpoint, Service, Workload } from './model.js';

export type PolicyAttachment = 'namespace' | 'global' | 'selector';

export interface ApplicablePolicy {
  readonly key: string;
  readonly policy: Authorization;
  readonly reason: PolicyAttachment;
}

export interface StateView {
  findWorkloadByUid(uid: string): Workload | undefined;
  /** xds.md §8 "find address" (workload part): prefers `//Pod/` uids and HBONE; skips HostNetwork. */
  findWorkloadByAddr(network: string, ip: string): Workload | undefined;
  /** Services on a VIP visible to the client namespace, picked per xds.md §8. */
  findServiceByVip(network: string, ip: string, clientNamespace?: string): Service | undefined;
  findServiceByKey(key: string): Service | undefined;
  /** Services with this hostname (any namespace), for hostname authorities. */
  findServicesByHostname(hostname: string): readonly Service[];
  /** Endpoints of a Service keyed "<ns>/<hostname>" (computed from workloads' `services`). */
  endpointsOf(serviceKey: string): readonly Endpoint[];
  /** All workloads (admin, explain). */
  workloads(): Iterable<Workload>;
  services(): Iterable<Service>;
  policies(): Iterable<Authorization>;
  /** Policies that apply to the destination workload (policy.md §3); unknown selector keys skipped. */
  policiesFor(workload: Workload): readonly ApplicablePolicy[];
  /** Local workload by ZDS/PROXY_WORKLOAD_INFO identity on a node ('' = any node). */
  findLocalWorkload(namespace: string, name: string, serviceAccount: string, node: string): Workload | undefined;
}
