// Converts state values into the plain descriptions telemetry records (telemetry.md §3).
import type { Identity } from '../core/spiffe.js';
import { buildBaggage } from '../hbone/headers.js';
import type { Service, Workload } from '../state/model.js';
import type { PeerInfo, ServiceInfo } from '../telemetry/connection-record.js';

// Workloads are immutable values, so each one's PeerInfo is built once and shared by its
// connections (issue 7: memory per connection); a call with another identity object builds anew.
const peers = new WeakMap<Workload, PeerInfo>();

export function peerInfo(w: Workload, identity?: Identity): PeerInfo {
  const cached = peers.get(w);
  if (cached && cached.identity === identity) return cached;
  const info = buildPeerInfo(w, identity);
  peers.set(w, info);
  return info;
}

function buildPeerInfo(w: Workload, identity?: Identity): PeerInfo {
  return {
    podName: w.name,
    workloadName: w.workloadName,
    namespace: w.namespace,
    canonicalName: w.canonicalName,
    canonicalRevision: w.canonicalRevision,
    clusterId: w.clusterId,
    region: w.locality?.region ?? '',
    zone: w.locality?.zone ?? '',
    ...(identity ? { identity } : {}),
  };
}

type BaggageFields = Partial<Record<'clusterId' | 'namespace' | 'workloadName' | 'canonicalName' | 'canonicalRevision' | 'region' | 'zone', string>>;

/**
 * Bounds on what a peer's `baggage` can put in metric labels (issue 16). As Istio's ztunnel, the
 * labels come from baggage only when the source workload is not known from our own state, and
 * the principal is always the verified certificate identity. Values are names (Kubernetes names,
 * cluster ids, regions, zones): anything longer than a DNS name or with other characters is
 * dropped, and at most BAGGAGE_SOURCES_MAX distinct baggage-derived sources label metrics per
 * process; past that, baggage is ignored (source labels "unknown") and Istio's labels stay bounded.
 */
export const BAGGAGE_VALUE_MAX_CHARS = 253;
export const BAGGAGE_SOURCES_MAX = 1000;
const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;
const baggageSources = new Map<string, PeerInfo>();

function nameOrEmpty(v: string | undefined): string {
  return v !== undefined && v.length <= BAGGAGE_VALUE_MAX_CHARS && NAME.test(v) ? v : '';
}

/**
 * Baggage values (hbone.md §3) as telemetry sees them (used when the source is not a known
 * workload), or undefined when nothing usable is left or the distinct-source bound is reached.
 * Equal baggage gives the same shared PeerInfo.
 */
export function peerInfoFromBaggage(b: BaggageFields): PeerInfo | undefined {
  const clusterId = nameOrEmpty(b.clusterId);
  const namespace = nameOrEmpty(b.namespace);
  const workloadName = nameOrEmpty(b.workloadName);
  const canonicalName = nameOrEmpty(b.canonicalName);
  const canonicalRevision = nameOrEmpty(b.canonicalRevision);
  const region = nameOrEmpty(b.region);
  const zone = nameOrEmpty(b.zone);
  const key = `${clusterId}/${namespace}/${workloadName}/${canonicalName}/${canonicalRevision}/${region}/${zone}`;
  if (key === '//////') return undefined;
  const known = baggageSources.get(key);
  if (known) return known;
  if (baggageSources.size >= BAGGAGE_SOURCES_MAX) return undefined;
  const info: PeerInfo = {
    podName: '',
    workloadName,
    namespace,
    canonicalName,
    canonicalRevision,
    clusterId,
    region,
    zone,
    // telemetry.md §3 "from baggage": app = the workload name.
    app: workloadName,
  };
  baggageSources.set(key, info);
  return info;
}

const services = new WeakMap<Service, ServiceInfo>();

export function serviceInfo(s: Service): ServiceInfo {
  let info = services.get(s);
  if (!info) services.set(s, (info = { hostname: s.hostname, name: s.name, namespace: s.namespace }));
  return info;
}

// The baggage header a workload sends (hbone.md §3), built once per workload value (issue 7).
const baggages = new WeakMap<Workload, string>();

export function workloadBaggage(w: Workload): string {
  let b = baggages.get(w);
  if (b === undefined) {
    b = buildBaggage({
      clusterId: w.clusterId,
      namespace: w.namespace,
      workloadType: w.workloadType,
      workloadName: w.workloadName,
      canonicalName: w.canonicalName,
      canonicalRevision: w.canonicalRevision,
      region: w.locality?.region ?? '',
      zone: w.locality?.zone ?? '',
    });
    baggages.set(w, b);
  }
  return b;
}
