// The SPIFFE identity of a workload, with the proto defaults applied (xds.md §5, hbone.md §1
// "Identities"): empty trust_domain ⇒ `cluster.local`, empty service_account ⇒ `default`.
import type { Identity } from '../core/spiffe.js';
import type { Workload } from './model.js';

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';
export const DEFAULT_SERVICE_ACCOUNT = 'default';

export function identityOf(w: Pick<Workload, 'trustDomain' | 'namespace' | 'serviceAccount'>): Identity {
  return {
    trustDomain: w.trustDomain || DEFAULT_TRUST_DOMAIN,
    namespace: w.namespace,
    serviceAccount: w.serviceAccount || DEFAULT_SERVICE_ACCOUNT,
  };
}
