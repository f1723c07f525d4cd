// Builders for model values in tests (state, load balancing, routing). Not used by production code.
import { emptyMatch, type Authorization } from '../policy/model.js';
import type { PortMap, Service, Workload } from './model.js';

type Mutable<T> = { -readonly [K in keyof T]?: T[K] };

export function ports(entries: Record<number, number>): PortMap {
  return new Map(Object.entries(entries).map(([k, v]) => [Number(k), v]));
}

/** A healthy HBONE pod in namespace `default` on network '' unless overridden. */
export function workload(over: Mutable<Workload> & { uid: string }): Workload {
  return {
    name: over.uid.split('/').pop() ?? over.uid,
    namespace: 'default',
    workloadIps: [],
    hostname: '',
    network: '',
    protocol: 'HBONE',
    trustDomain: 'cluster.local',
    serviceAccount: 'default',
    node: 'node-a',
    canonicalName: '',
    canonicalRevision: '',
    workloadType: 'pod',
    workloadName: '',
    nativeTunnel: false,
    services: new Map(),
    authorizationPolicies: [],
    status: 'Healthy',
    clusterId: 'Kubernetes',
    networkMode: 'Standard',
    capacity: 1,
    labels: new Map(),
    ...over,
  } as Workload;
}

export function service(over: Mutable<Service> & { hostname: string }): Service {
  return {
    name: over.hostname.split('.')[0] ?? over.hostname,
    namespace: 'default',
    vips: [],
    ports: new Map(),
    subjectAltNames: [],
    canonical: true,
    visibility: 'Public',
    ...over,
  } as Service;
}

export function policy(over: Mutable<Authorization> & { name: string }): Authorization {
  return {
    namespace: 'default',
    scope: 'Namespace',
    action: 'Allow',
    dryRun: false,
    rules: [[[{ ...emptyMatch(), destinationPorts: [80] }]]],
    ...over,
  } as Authorization;
}

/** mulberry32: a small deterministic PRNG so load-balancing tests are reproducible. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
