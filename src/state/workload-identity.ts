// The SPIFFE identity of a workload, with the proto defaults applied (xds.md §5, hbone.md §1
// "Identities"): empty trust_domain ⇒ `cluster.local`, empty service_account ⇒ `default`.
import type { Identity } from '../core/spiffe.js';
import type { Workload } from './model.js';

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';
export const DEFAULT_SERVICE_ACCOUNT = 'default';

type IdentityFields = Pick<Workload, 'trustDomain' | 'namespace' | 'serviceAccount'>;

// Workloads are immutable values (a change replaces the object), so the identity is computed once
// per workload object and shared: every connection asks for it (issue 7: memory per connection).
const cache = new WeakMap<IdentityFields, Identity>();

export function identityOf(w: IdentityFields): Identity {
  let id = cache.get(w);
  if (!id) {
    id = Object.freeze({
      trustDomain: w.trustDomain || DEFAULT_TRUST_DOMAIN,
      namespace: w.namespace,
      serviceAccount: w.serviceAccount || DEFAULT_SERVICE_ACCOUNT,
    });
    cache.set(w, id);
  }
  return id;
}
