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

/** Baggage values (hbone.md §3) as telemetry sees them: used when the source came via an E/W gateway. */
export function peerInfoFromBaggage(b: Partial<Record<'clusterId' | 'namespace' | 'workloadName' | 'canonicalName' | 'canonicalRevision' | 'region' | 'zone', string>>): PeerInfo {
  return {
    podName: '',
    workloadName: b.workloadName ?? '',
    namespace: b.namespace ?? '',
    canonicalName: b.canonicalName ?? '',
    canonicalRevision: b.canonicalRevision ?? '',
    clusterId: b.clusterId ?? '',
    region: b.region ?? '',
    zone: b.zone ?? '',
    // telemetry.md §3 "from baggage": app = the workload name.
    app: b.workloadName ?? '',
  };
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
