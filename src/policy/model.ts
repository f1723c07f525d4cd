// The ztunnel form of an authorization policy (xds.md §6, config.md §2.4). Decoders (local file,
// xDS) produce these values; the engine compiles them. Pure data, no behaviour.
import type { Cidr } from '../core/net.js';

export type StringMatch =
  | { readonly kind: 'exact'; readonly value: string }
  | { readonly kind: 'prefix'; readonly value: string }
  | { readonly kind: 'suffix'; readonly value: string }
  | { readonly kind: 'presence' };

export interface ServiceAccountMatch {
  readonly namespace: string;
  readonly serviceAccount: string;
}

/** One Match: 12 lists; all empty → the match is skipped (policy.md §4). */
export interface Match {
  readonly namespaces: readonly StringMatch[];
  readonly notNamespaces: readonly StringMatch[];
  readonly principals: readonly StringMatch[];
  readonly notPrincipals: readonly StringMatch[];
  readonly serviceAccounts: readonly ServiceAccountMatch[];
  readonly notServiceAccounts: readonly ServiceAccountMatch[];
  readonly sourceIps: readonly Cidr[];
  readonly notSourceIps: readonly Cidr[];
  readonly destinationIps: readonly Cidr[];
  readonly notDestinationIps: readonly Cidr[];
  readonly destinationPorts: readonly number[];
  readonly notDestinationPorts: readonly number[];
}

export type PolicyScope = 'Global' | 'Namespace' | 'WorkloadSelector';
export type PolicyAction = 'Allow' | 'Deny';

/** rules → clauses → matches: rules OR'ed, clauses AND'ed, matches OR'ed. */
export interface Authorization {
  readonly name: string;
  readonly namespace: string;
  readonly scope: PolicyScope;
  readonly action: PolicyAction;
  readonly dryRun: boolean;
  readonly rules: readonly (readonly (readonly Match[])[])[];
}

export function policyKey(p: { namespace: string; name: string }): string {
  return `${p.namespace}/${p.name}`;
}

export function emptyMatch(): Match {
  return {
    namespaces: [], notNamespaces: [], principals: [], notPrincipals: [],
    serviceAccounts: [], notServiceAccounts: [], sourceIps: [], notSourceIps: [],
    destinationIps: [], notDestinationIps: [], destinationPorts: [], notDestinationPorts: [],
  };
}
