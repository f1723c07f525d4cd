// Certificate warm-up in shared mode, as Istio's ztunnel does it (its cert fetcher): when a
// workload on this node that is reached over HBONE (or has a native tunnel) arrives from xDS or
// the local file, its identity's certificate is fetched at Warmup priority, before the pod is
// enrolled or its first connection; when the last workload of an identity on this node is
// removed, that certificate is dropped. Dedicated mode warms only its own identity (app.ts).
import { formatIdentity, type Identity } from '../core/spiffe.js';
import type { StateBatch, StateSink } from './batch.js';
import type { Workload } from './model.js';
import type { StateView } from './view.js';
import { identityOf } from './workload-identity.js';

/** The certificate cache as this module needs it (identity/secret-manager.ts). */
export interface CertWarmer {
  prefetch?(id: Identity): void;
  forget?(id: Identity): void;
}

export interface CertPrefetchOptions {
  /** The state the batches go to (and that is read back for removals). */
  readonly state: StateSink & Pick<StateView, 'findWorkloadByUid' | 'workloads'>;
  /** NODE_NAME of this ztunnel; a workload of another node is never warmed. */
  readonly node: string;
  /** Called for the cache once it exists (the sink is created before the certificates). */
  readonly certs: () => CertWarmer | undefined;
}

// No NODE_NAME: no workload is local (Istio compares with an unset local node).
const warms = (w: Workload, node: string) => node !== '' && w.node === node && (w.nativeTunnel || w.protocol === 'HBONE');

/** A StateSink that applies each batch to the state, then warms or drops certificates. */
export class CertPrefetchSink implements StateSink {
  constructor(private readonly o: CertPrefetchOptions) {}

  apply(batch: StateBatch): void {
    const { state, node } = this.o;
    // The identities of removed local workloads, read before the batch takes them away.
    const removed: Identity[] = [];
    for (const uid of batch.workloads?.remove ?? []) {
      const prev = state.findWorkloadByUid(uid);
      if (prev && node !== '' && prev.node === node) removed.push(identityOf(prev));
    }
    state.apply(batch);
    const certs = this.o.certs();
    if (!certs) return;
    for (const w of batch.workloads?.upsert ?? []) if (warms(w, node)) certs.prefetch?.(identityOf(w));
    if (removed.length === 0) return;
    const remaining = new Set<string>();
    for (const w of state.workloads()) if (w.node === node) remaining.add(formatIdentity(identityOf(w)));
    for (const id of new Map(removed.map((x) => [formatIdentity(x), x])).values()) {
      if (!remaining.has(formatIdentity(id))) certs.forget?.(id);
    }
  }
}
