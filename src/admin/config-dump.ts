// /config_dump (telemetry.md §5): the internal model in camelCase so `istioctl ztunnel-config`
// can read it. Maps become plain objects; CIDRs and string matches use the local-file spelling.
import { X509Certificate } from 'node:crypto';
import type { Authorization, Match, StringMatch } from '../policy/model.js';
import type { GatewayAddress, PortMap, Service, Workload } from '../state/model.js';
import { serviceKey } from '../state/model.js';
import type { StateView } from '../state/view.js';
import { formatIdentity } from '../core/spiffe.js';
import { yamlLib } from '../core/yaml-lib.js';
import type { WorkloadCertificate } from '../tls/certificate.js';

export interface CertState {
  readonly identity: string;
  readonly state: string;
  readonly cert?: WorkloadCertificate;
}

export interface ConfigDumpSources {
  readonly state: StateView;
  readonly certificates: () => CertState[];
  /** Text of the local config in force (undefined: no local config). */
  readonly staticConfig: () => string | undefined;
  readonly config: unknown;
  readonly version: Record<string, string>;
  readonly workloadState?: () => Record<string, unknown>;
  readonly stagedServices?: () => unknown;
  readonly localConfigErrors?: () => string[];
}

const ports = (m: PortMap) => Object.fromEntries([...m].map(([k, v]) => [String(k), v]));
const gateway = (g: GatewayAddress | undefined) =>
  g === undefined
    ? undefined
    : {
        destination: g.destination.kind === 'address' ? `${g.destination.address.network}/${g.destination.address.ip}` : `${g.destination.namespace}/${g.destination.hostname}`,
        hboneMtlsPort: g.hboneMtlsPort,
      };

export function dumpWorkload(w: Workload): Record<string, unknown> {
  return {
    uid: w.uid,
    workloadIps: w.workloadIps,
    ...(w.waypoint ? { waypoint: gateway(w.waypoint) } : {}),
    ...(w.networkGateway ? { networkGateway: gateway(w.networkGateway) } : {}),
    protocol: w.protocol,
    networkMode: w.networkMode,
    name: w.name,
    namespace: w.namespace,
    trustDomain: w.trustDomain,
    serviceAccount: w.serviceAccount,
    network: w.network,
    workloadName: w.workloadName,
    workloadType: w.workloadType,
    canonicalName: w.canonicalName,
    canonicalRevision: w.canonicalRevision,
    hostname: w.hostname,
    node: w.node,
    nativeTunnel: w.nativeTunnel,
    ...(w.applicationTunnel ? { applicationTunnel: w.applicationTunnel } : {}),
    authorizationPolicies: w.authorizationPolicies,
    status: w.status,
    clusterId: w.clusterId,
    ...(w.locality ? { locality: w.locality } : {}),
    capacity: w.capacity,
    services: Object.fromEntries([...w.services].map(([k, v]) => [k, ports(v)])),
    ...(w.labels.size ? { labels: Object.fromEntries(w.labels) } : {}),
  };
}

export function dumpService(s: Service, state: StateView): Record<string, unknown> {
  const endpoints: Record<string, unknown> = {};
  for (const e of state.endpointsOf(serviceKey(s))) endpoints[e.workloadUid] = { workloadUid: e.workloadUid, port: ports(e.ports), status: e.status };
  return {
    name: s.name,
    namespace: s.namespace,
    hostname: s.hostname,
    vips: s.vips.map((v) => `${v.network}/${v.ip}`),
    ports: ports(s.ports),
    endpoints,
    subjectAltNames: s.subjectAltNames,
    ...(s.waypoint ? { waypoint: gateway(s.waypoint) } : {}),
    ...(s.loadBalancer ? { loadBalancer: s.loadBalancer } : {}),
    ...(s.ipFamilies ? { ipFamilies: s.ipFamilies } : {}),
    canonical: s.canonical,
    visibility: s.visibility,
  };
}

const sm = (m: StringMatch) => (m.kind === 'presence' ? { Presence: {} } : { [m.kind[0]!.toUpperCase() + m.kind.slice(1)]: m.value });

function dumpMatch(m: Match): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const put = (k: string, v: readonly unknown[]) => {
    if (v.length) out[k] = v;
  };
  put('namespaces', m.namespaces.map(sm));
  put('notNamespaces', m.notNamespaces.map(sm));
  put('principals', m.principals.map(sm));
  put('notPrincipals', m.notPrincipals.map(sm));
  put('serviceAccounts', m.serviceAccounts);
  put('notServiceAccounts', m.notServiceAccounts);
  put('sourceIps', m.sourceIps.map((c) => c.text));
  put('notSourceIps', m.notSourceIps.map((c) => c.text));
  put('destinationIps', m.destinationIps.map((c) => c.text));
  put('notDestinationIps', m.notDestinationIps.map((c) => c.text));
  put('destinationPorts', m.destinationPorts);
  put('notDestinationPorts', m.notDestinationPorts);
  return out;
}

export function dumpPolicy(p: Authorization): Record<string, unknown> {
  return {
    name: p.name,
    namespace: p.namespace,
    scope: p.scope,
    action: p.action,
    dryRun: p.dryRun,
    rules: p.rules.map((r) => r.map((c) => c.map(dumpMatch))),
  };
}

function dumpCert(pem: string): Record<string, unknown> {
  try {
    const x = new X509Certificate(pem);
    return {
      pem: Buffer.from(pem).toString('base64'),
      serialNumber: x.serialNumber,
      validFrom: new Date(x.validFrom).toISOString(),
      expirationTime: new Date(x.validTo).toISOString(),
    };
  } catch {
    return { pem: Buffer.from(pem).toString('base64') };
  }
}

/**
 * `staticConfig` as Rust ztunnel emits it: the local file as an object with `workloads`,
 * `policies` and `services` (empty lists without a local file). ztunnel-ts watches the file, so
 * this is the text in force; a rejected edit shows under `localConfigErrors`. Istio documents
 * translated from the same file (config.md "Beyond" b) are listed under `istioResources`.
 */
export function staticConfigObject(text: string | undefined): Record<string, unknown> {
  const out: Record<string, unknown[]> = { workloads: [], policies: [], services: [] };
  const istio: unknown[] = [];
  if (text !== undefined) {
    for (const doc of yamlLib().parseAllDocuments(text, { logLevel: 'silent' })) {
      if (doc.errors.length) continue;
      const value: unknown = doc.toJS();
      if (value === null || typeof value !== 'object' || Array.isArray(value)) continue;
      const obj = value as Record<string, unknown>;
      if (typeof obj['kind'] === 'string') {
        istio.push(obj);
        continue;
      }
      for (const k of ['workloads', 'policies', 'services'] as const) {
        const list = obj[k];
        if (Array.isArray(list)) out[k]!.push(...(list as unknown[]));
      }
    }
  }
  return istio.length ? { ...out, istioResources: istio } : out;
}

export function buildConfigDump(src: ConfigDumpSources): Record<string, unknown> {
  const state = src.state;
  return {
    workloads: [...state.workloads()].map(dumpWorkload),
    services: [...state.services()].map((s) => dumpService(s, state)),
    policies: [...state.policies()].map(dumpPolicy),
    stagedServices: src.stagedServices?.() ?? {},
    staticConfig: staticConfigObject(src.staticConfig()),
    ...(src.localConfigErrors ? { localConfigErrors: src.localConfigErrors() } : {}),
    version: src.version,
    config: src.config,
    certificates: src.certificates().map((c) => ({
      identity: c.identity,
      state: c.state,
      certChain: c.cert ? c.cert.chainPem.map(dumpCert) : [],
      rootCerts: c.cert ? c.cert.rootsPem.map(dumpCert) : [],
    })),
    ...(src.workloadState ? { workloadState: src.workloadState() } : {}),
  };
}

export { formatIdentity };
