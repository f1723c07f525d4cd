// The workload / service / policy stores (docs/design.md §5, xds.md §3 and §8). Private indexes behind
// lookup methods; updates arrive in batches that are validated first, applied synchronously, and
// announced with ONE change event. No I/O.
import type { Authorization } from '../policy/model.js';
import { policyKey } from '../policy/model.js';
import type { StateBatch, StateSink } from './batch.js';
import type { Endpoint, Service, Workload } from './model.js';
import { networkAddrKey, serviceKey } from './model.js';
import { policyError, serviceError, workloadError } from './validate.js';
import type { ApplicablePolicy, PolicyAttachment, StateView } from './view.js';

/** Which kinds of resource a batch changed. */
export interface StateChange {
  readonly workloads: boolean;
  readonly services: boolean;
  readonly policies: boolean;
}

export interface RejectedResource {
  readonly kind: 'workload' | 'service' | 'policy';
  /** uid, "<ns>/<hostname>" or "<ns>/<name>" (best effort for malformed input). */
  readonly key: string;
  readonly reason: string;
}

export interface ApplyResult {
  readonly change: StateChange;
  /** Resources left out of the batch; the rest of the batch was applied (docs/design.md §5). */
  readonly rejected: readonly RejectedResource[];
}

export interface StateOptions {
  /**
   * Called with `skipping unknown policy <key>` (policy.md §3) when a workload names a policy the
   * store does not hold, and when a change listener throws.
   */
  readonly warn?: (message: string) => void;
}

export interface StateSize {
  readonly workloads: number;
  readonly services: number;
  readonly policies: number;
  readonly stagedServices: number;
}

const EMPTY: readonly never[] = Object.freeze([]);

function addTo<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  let s = m.get(k);
  if (!s) m.set(k, (s = new Set()));
  s.add(v);
}

function deleteFrom<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  const s = m.get(k);
  if (!s) return;
  s.delete(v);
  if (s.size === 0) m.delete(k);
}

/**
 * An entry of the workload uid indexes: the one uid, or a Set when several workloads share the
 * key. Nearly every address and name belongs to one workload, and a Set each would be most of
 * the memory and build time of these indexes for a large config (issue 7). Iteration order is a
 * Set's (insertion order) either way.
 */
type Uids = string | Set<string>;

function addUid(m: Map<string, Uids>, k: string, uid: string): void {
  const cur = m.get(k);
  if (cur === undefined) m.set(k, uid);
  else if (typeof cur !== 'string') cur.add(uid);
  else if (cur !== uid) m.set(k, new Set([cur, uid]));
}

function deleteUid(m: Map<string, Uids>, k: string, uid: string): void {
  const cur = m.get(k);
  if (cur === undefined) return;
  if (typeof cur === 'string') {
    if (cur === uid) m.delete(k);
    return;
  }
  cur.delete(uid);
  if (cur.size === 0) m.delete(k);
}

function eachUid(uids: Uids): Iterable<string> {
  return typeof uids === 'string' ? [uids] : uids;
}

/** Ordered variant: "first" matters for VIP and hostname lookups (xds.md §8). */
function pushTo<K>(m: Map<K, string[]>, k: K, v: string): void {
  const list = m.get(k);
  if (!list) m.set(k, [v]);
  else if (!list.includes(v)) list.push(v);
}

function removeFromList<K>(m: Map<K, string[]>, k: K, v: string): void {
  const list = m.get(k);
  if (!list) return;
  const i = list.indexOf(v);
  if (i >= 0) list.splice(i, 1);
  if (list.length === 0) m.delete(k);
}

function normalSa(sa: string): string {
  return sa || 'default';
}

export class State implements StateView, StateSink {
  // workloads
  private readonly workloadsByUid = new Map<string, Workload>();
  /** `network/ip` → uids. HostNetwork workloads are never indexed by IP (xds.md §8). */
  private readonly workloadsByAddr = new Map<string, Uids>();
  /** `namespace/name` → uids, for findLocalWorkload. */
  private readonly workloadsByName = new Map<string, Uids>();
  // services
  private readonly servicesByKey = new Map<string, Service>();
  /** `network/vip` → service keys in arrival order. */
  private readonly servicesByVip = new Map<string, string[]>();
  private readonly servicesByHost = new Map<string, string[]>();
  /**
   * service key → (workload uid → endpoint), computed from workloads' `services` maps. Keys with
   * no Service yet are the "staged" services (xds.md §3), attached as soon as the Service arrives.
   */
  private readonly endpointsByService = new Map<string, Map<string, Endpoint>>();
  /** endpointsOf() results with the health policy applied; cleared on any workload/service change. */
  private readonly endpointCache = new Map<string, readonly Endpoint[]>();
  // policies
  private readonly policiesByKey = new Map<string, Authorization>();
  /** namespace → keys of NAMESPACE-scope policies. */
  private readonly policiesByNamespace = new Map<string, Set<string>>();
  private readonly globalPolicies = new Set<string>();
  // policiesFor is asked on every inbound connection: cache its answer per workload object (a
  // workload update replaces the object) until any policy changes (generation bump). The same
  // array is then handed out again, so the policy layer can keep its compiled index for it.
  private policyGeneration = 0;
  private readonly applicableCache = new WeakMap<Workload, { generation: number; policies: ApplicablePolicy[]; skippedKeys: string[] }>();

  private readonly listeners = new Set<(change: StateChange) => void>();
  private readonly warn: (message: string) => void;

  constructor(opts: StateOptions = {}) {
    this.warn = opts.warn ?? (() => {});
  }

  // ------------------------------------------------------------------ updates

  /**
   * Validates every resource of the batch, applies the valid ones synchronously (removals before
   * upserts, per kind), then emits one change event if anything changed.
   */
  apply(batch: StateBatch): ApplyResult {
    const rejected: RejectedResource[] = [];
    const workloads = (batch.workloads?.upsert ?? []).filter((w) => {
      const reason = safeCheck(workloadError, w);
      if (reason) rejected.push({ kind: 'workload', key: String(w?.uid ?? ''), reason });
      return !reason;
    });
    const services = (batch.services?.upsert ?? []).filter((s) => {
      const reason = safeCheck(serviceError, s);
      if (reason) rejected.push({ kind: 'service', key: `${String(s?.namespace)}/${String(s?.hostname)}`, reason });
      return !reason;
    });
    const policies = (batch.policies?.upsert ?? []).filter((p) => {
      const reason = safeCheck(policyError, p);
      if (reason) rejected.push({ kind: 'policy', key: `${String(p?.namespace)}/${String(p?.name)}`, reason });
      return !reason;
    });

    // Apply: no await and no throw from here on.
    let wChanged = false;
    for (const uid of batch.workloads?.remove ?? EMPTY) wChanged = this.removeWorkload(uid) || wChanged;
    for (const w of workloads) {
      this.removeWorkload(w.uid);
      this.insertWorkload(w);
      wChanged = true;
    }
    let sChanged = false;
    for (const key of batch.services?.remove ?? EMPTY) sChanged = this.removeService(key) || sChanged;
    for (const s of services) {
      this.upsertService(s);
      sChanged = true;
    }
    let pChanged = false;
    for (const key of batch.policies?.remove ?? EMPTY) pChanged = this.removePolicy(key) || pChanged;
    for (const p of policies) {
      this.removePolicy(policyKey(p));
      this.insertPolicy(p);
      pChanged = true;
    }
    if (wChanged || sChanged) this.endpointCache.clear();

    const change: StateChange = { workloads: wChanged, services: sChanged, policies: pChanged };
    if (wChanged || sChanged || pChanged) this.emit(change);
    return { change, rejected };
  }

  /** Subscribes to change events (one per applied batch); returns the unsubscribe function. */
  onChange(cb: (change: StateChange) => void): () => void {
    this.listeners.add(cb);
    return () => {
      this.listeners.delete(cb);
    };
  }

  private emit(change: StateChange): void {
    for (const cb of [...this.listeners]) {
      try {
        cb(change);
      } catch (e) {
        // One broken listener must not stop the others or undo the applied batch.
        this.warn(`state change listener failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  private insertWorkload(w: Workload): void {
    this.workloadsByUid.set(w.uid, w);
    if (w.networkMode !== 'HostNetwork') {
      for (const ip of w.workloadIps) addUid(this.workloadsByAddr, networkAddrKey(w.network, ip), w.uid);
    }
    addUid(this.workloadsByName, `${w.namespace}/${w.name}`, w.uid);
    for (const [svcKey, ports] of w.services) {
      let eps = this.endpointsByService.get(svcKey);
      if (!eps) this.endpointsByService.set(svcKey, (eps = new Map()));
      eps.set(w.uid, Object.freeze({ workloadUid: w.uid, ports, status: w.status }));
    }
  }

  private removeWorkload(uid: string): boolean {
    const w = this.workloadsByUid.get(uid);
    if (!w) return false;
    this.workloadsByUid.delete(uid);
    for (const ip of w.workloadIps) deleteUid(this.workloadsByAddr, networkAddrKey(w.network, ip), uid);
    deleteUid(this.workloadsByName, `${w.namespace}/${w.name}`, uid);
    for (const svcKey of w.services.keys()) {
      const eps = this.endpointsByService.get(svcKey);
      if (!eps) continue;
      eps.delete(uid);
      if (eps.size === 0) this.endpointsByService.delete(svcKey);
    }
    return true;
  }

  /** Service upsert keeps its endpoints and its place in the VIP lists (xds.md §3). */
  private upsertService(s: Service): void {
    const key = serviceKey(s);
    const old = this.servicesByKey.get(key);
    const newVips = new Set(s.vips.map((v) => networkAddrKey(v.network, v.ip)));
    if (old) {
      for (const v of old.vips) {
        const k = networkAddrKey(v.network, v.ip);
        if (!newVips.has(k)) removeFromList(this.servicesByVip, k, key);
      }
    }
    this.servicesByKey.set(key, s);
    for (const k of newVips) pushTo(this.servicesByVip, k, key);
    pushTo(this.servicesByHost, s.hostname, key);
  }

  private removeService(key: string): boolean {
    const s = this.servicesByKey.get(key);
    if (!s) return false;
    this.servicesByKey.delete(key);
    for (const v of s.vips) removeFromList(this.servicesByVip, networkAddrKey(v.network, v.ip), key);
    removeFromList(this.servicesByHost, s.hostname, key);
    // Its endpoints stay (the workloads still name it): they are staged again until it returns.
    return true;
  }

  private insertPolicy(p: Authorization): void {
    const key = policyKey(p);
    this.policiesByKey.set(key, p);
    this.policyGeneration++;
    if (p.scope === 'Global') this.globalPolicies.add(key);
    else if (p.scope === 'Namespace') addTo(this.policiesByNamespace, p.namespace, key);
  }

  private removePolicy(key: string): boolean {
    const p = this.policiesByKey.get(key);
    if (!p) return false;
    this.policiesByKey.delete(key);
    this.policyGeneration++;
    this.globalPolicies.delete(key);
    deleteFrom(this.policiesByNamespace, p.namespace, key);
    return true;
  }

  // ------------------------------------------------------------------ lookups

  findWorkloadByUid(uid: string): Workload | undefined {
    return this.workloadsByUid.get(uid);
  }

  findWorkloadByAddr(network: string, ip: string): Workload | undefined {
    const uids = this.workloadsByAddr.get(networkAddrKey(network, ip));
    if (uids === undefined) return undefined;
    if (typeof uids === 'string') return this.workloadsByUid.get(uids);
    let best: Workload | undefined;
    let bestScore = -1;
    for (const uid of uids) {
      const w = this.workloadsByUid.get(uid)!;
      // xds.md §8: prefer a `//Pod/` uid, then HBONE; otherwise the first one stored.
      const score = (uid.includes('//Pod/') ? 2 : 0) + (w.protocol === 'HBONE' ? 1 : 0);
      if (score > bestScore) {
        best = w;
        bestScore = score;
      }
    }
    return best;
  }

  /**
   * xds.md §8: among Services on the VIP visible to `clientNamespace` (visibility Namespace hides
   * a Service from every other namespace, and from an unknown client), the first in the client's
   * namespace, else the first canonical one, else the first.
   */
  findServiceByVip(network: string, ip: string, clientNamespace?: string): Service | undefined {
    const keys = this.servicesByVip.get(networkAddrKey(network, ip));
    if (!keys) return undefined;
    let canonical: Service | undefined;
    let first: Service | undefined;
    for (const key of keys) {
      const s = this.servicesByKey.get(key)!;
      if (s.visibility === 'Namespace' && s.namespace !== clientNamespace) continue;
      if (clientNamespace !== undefined && s.namespace === clientNamespace) return s;
      if (!canonical && s.canonical) canonical = s;
      first ??= s;
    }
    return canonical ?? first;
  }

  findServiceByKey(key: string): Service | undefined {
    return this.servicesByKey.get(key);
  }

  findServicesByHostname(hostname: string): readonly Service[] {
    const keys = this.servicesByHost.get(hostname);
    return keys ? keys.map((k) => this.servicesByKey.get(k)!) : EMPTY;
  }

  /**
   * Endpoints of a known Service. Unhealthy workloads are left out unless the Service's health
   * policy is AllowAll (xds.md §3); applied here, at lookup, so a later Service update takes effect.
   */
  endpointsOf(key: string): readonly Endpoint[] {
    const cached = this.endpointCache.get(key);
    if (cached) return cached;
    const svc = this.servicesByKey.get(key);
    const eps = this.endpointsByService.get(key);
    if (!svc || !eps) return EMPTY;
    const allowAll = svc.loadBalancer?.healthPolicy === 'AllowAll';
    const out = Object.freeze([...eps.values()].filter((e) => allowAll || e.status === 'Healthy'));
    this.endpointCache.set(key, out);
    return out;
  }

  /** Endpoints naming a Service the store does not hold yet (`stagedServices` in /config_dump). */
  stagedServices(): ReadonlyMap<string, readonly Endpoint[]> {
    const out = new Map<string, readonly Endpoint[]>();
    for (const [key, eps] of this.endpointsByService) {
      if (!this.servicesByKey.has(key)) out.set(key, [...eps.values()]);
    }
    return out;
  }

  workloads(): Iterable<Workload> {
    return this.workloadsByUid.values();
  }

  services(): Iterable<Service> {
    return this.servicesByKey.values();
  }

  policies(): Iterable<Authorization> {
    return this.policiesByKey.values();
  }

  /** policy.md §3; each unknown selector key is reported through `warn`. */
  policiesFor(workload: Workload): readonly ApplicablePolicy[] {
    let hit = this.applicableCache.get(workload);
    if (!hit || hit.generation !== this.policyGeneration) {
      const r = this.resolvePolicies(workload);
      hit = { generation: this.policyGeneration, policies: r.policies, skippedKeys: r.skippedKeys };
      Object.freeze(r.policies);
      this.applicableCache.set(workload, hit);
    }
    for (const key of hit.skippedKeys) this.warn(`skipping unknown policy ${key}`);
    return hit.policies;
  }

  /**
   * The policies that apply to `workload` (policy.md §3): NAMESPACE-scope ones of its namespace,
   * every GLOBAL one, then each key it lists; a policy reached twice is listed once, with the
   * first reason. `skippedKeys` are listed keys the store does not hold (for explain / tests).
   */
  resolvePolicies(workload: Workload): { policies: ApplicablePolicy[]; skippedKeys: string[] } {
    const policies: ApplicablePolicy[] = [];
    const skippedKeys: string[] = [];
    const seen = new Set<string>();
    const add = (key: string, reason: PolicyAttachment): void => {
      if (seen.has(key)) return;
      const policy = this.policiesByKey.get(key);
      if (!policy) {
        if (reason === 'selector') skippedKeys.push(key);
        return;
      }
      seen.add(key);
      policies.push({ key, policy, reason });
    };
    for (const key of this.policiesByNamespace.get(workload.namespace) ?? EMPTY) add(key, 'namespace');
    for (const key of this.globalPolicies) add(key, 'global');
    for (const key of workload.authorizationPolicies) add(key, 'selector');
    return { policies, skippedKeys };
  }

  /**
   * The local workload a ZDS / PROXY_WORKLOAD_INFO identity names: exact namespace, name and
   * service account (empty = `default`), on `node` ('' = any node).
   */
  findLocalWorkload(namespace: string, name: string, serviceAccount: string, node: string): Workload | undefined {
    const uids = this.workloadsByName.get(`${namespace}/${name}`);
    if (uids === undefined) return undefined;
    const sa = normalSa(serviceAccount);
    for (const uid of eachUid(uids)) {
      const w = this.workloadsByUid.get(uid)!;
      if (normalSa(w.serviceAccount) !== sa) continue;
      if (node !== '' && w.node !== node) continue;
      return w;
    }
    return undefined;
  }

  size(): StateSize {
    let staged = 0;
    for (const key of this.endpointsByService.keys()) if (!this.servicesByKey.has(key)) staged++;
    return {
      workloads: this.workloadsByUid.size,
      services: this.servicesByKey.size,
      policies: this.policiesByKey.size,
      stagedServices: staged,
    };
  }
}

/** Runs a validator on untrusted input; a value so malformed that the check throws is rejected. */
function safeCheck<T>(check: (v: T) => string | null, v: T): string | null {
  try {
    return check(v);
  } catch (e) {
    return `malformed resource: ${e instanceof Error ? e.message : String(e)}`;
  }
}
