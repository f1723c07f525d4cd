// /config_dump (telemetry.md §5): the internal model in camelCase so `istioctl ztunnel-config`
// can read it. Maps become plain objects; CIDRs and string matches use the local-file spelling.
import { X509Certificate } from 'node:crypto';
import type { Authorization, Match, StringMatch } from '../policy/model.js';
import type { Endpoint, GatewayAddress, PortMap, Service, Workload } from '../state/model.js';
import { serviceKey } from '../state/model.js';
import type { StateView } from '../state/view.js';
import { formatIdentity } from '../core/spiffe.js';
import { yamlLib } from '../core/yaml-lib.js';
import type { WorkloadCertificate } from '../tls/certificate.js';
import type { LiveConnection } from '../telemetry/connection-record.js';
import type { Config } from '../config/config.js';

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
  /** The settings in force (partial in tests). */
  readonly config: Partial<Config>;
  readonly version: Record<string, string>;
  /** Shared mode: the pods, each with its live connections among `connections` (every worker's). */
  readonly workloadState?: (connections: readonly LiveConnection[]) => Record<string, unknown>;
  readonly stagedServices?: () => ReadonlyMap<string, readonly Endpoint[]>;
  readonly localConfigErrors?: () => string[];
  /** The DNS proxy: on/off, upstreams, and the listeners actually open. */
  readonly dns?: () => Record<string, unknown>;
}

const ports = (m: PortMap) => Object.fromEntries([...m].map(([k, v]) => [String(k), v]));
const gatewayDestination = (g: GatewayAddress) =>
  g.destination.kind === 'address' ? `${g.destination.address.network}/${g.destination.address.ip}` : `${g.destination.namespace}/${g.destination.hostname}`;
const gateway = (g: GatewayAddress | undefined) => (g === undefined ? undefined : { destination: gatewayDestination(g), hboneMtlsPort: g.hboneMtlsPort });

/** Adds `key: value` unless the value is the type's default ('' / false / []), as Istio's ztunnel omits them. */
function putUnlessDefault(out: Record<string, unknown>, key: string, value: string | boolean | readonly unknown[] | undefined): void {
  if (value === undefined || value === '' || value === false || (Array.isArray(value) && value.length === 0)) return;
  out[key] = value;
}

/**
 * A workload as Istio's ztunnel prints it (its `Workload` serialization): empty strings, false and
 * empty lists left out; `services` a list of `namespace/hostname`; labels (local mode only) last.
 */
export function dumpWorkload(w: Workload): Record<string, unknown> {
  const out: Record<string, unknown> = { workloadIps: w.workloadIps };
  if (w.waypoint) out['waypoint'] = gateway(w.waypoint);
  if (w.networkGateway) out['networkGateway'] = gateway(w.networkGateway);
  out['protocol'] = w.protocol;
  out['networkMode'] = w.networkMode;
  putUnlessDefault(out, 'uid', w.uid);
  out['name'] = w.name;
  out['namespace'] = w.namespace;
  putUnlessDefault(out, 'trustDomain', w.trustDomain);
  putUnlessDefault(out, 'serviceAccount', w.serviceAccount);
  putUnlessDefault(out, 'network', w.network);
  putUnlessDefault(out, 'workloadName', w.workloadName);
  putUnlessDefault(out, 'workloadType', w.workloadType);
  putUnlessDefault(out, 'canonicalName', w.canonicalName);
  putUnlessDefault(out, 'canonicalRevision', w.canonicalRevision);
  putUnlessDefault(out, 'hostname', w.hostname);
  putUnlessDefault(out, 'node', w.node);
  putUnlessDefault(out, 'nativeTunnel', w.nativeTunnel);
  if (w.applicationTunnel) out['applicationTunnel'] = { protocol: w.applicationTunnel.protocol, port: w.applicationTunnel.port ?? null };
  putUnlessDefault(out, 'authorizationPolicies', w.authorizationPolicies);
  out['status'] = w.status;
  out['clusterId'] = w.clusterId;
  const l = w.locality;
  if (l && (l.region || l.zone || l.subzone)) out['locality'] = { region: l.region, zone: l.zone, subzone: l.subzone };
  putUnlessDefault(out, 'services', [...w.services.keys()]);
  out['capacity'] = w.capacity;
  if (w.labels.size) out['labels'] = Object.fromEntries(w.labels);
  return out;
}

const dumpEndpoint = (e: Endpoint) => ({ workloadUid: e.workloadUid, port: ports(e.ports), status: e.status });

/** A service as Istio's ztunnel prints it (its `Service` serialization). */
export function dumpService(s: Service, state: StateView): Record<string, unknown> {
  const endpoints: Record<string, unknown> = {};
  for (const e of state.endpointsOf(serviceKey(s))) endpoints[e.workloadUid] = dumpEndpoint(e);
  return {
    name: s.name,
    namespace: s.namespace,
    hostname: s.hostname,
    vips: s.vips.map((v) => `${v.network}/${v.ip}`),
    ...(s.cidrVips?.length ? { cidrVips: s.cidrVips.map((c) => ({ network: c.network, cidr: c.cidr })) } : {}),
    ports: ports(s.ports),
    endpoints,
    subjectAltNames: s.subjectAltNames,
    ...(s.waypoint ? { waypoint: gateway(s.waypoint) } : {}),
    ...(s.weightedWaypoints?.length ? { weightedWaypoints: s.weightedWaypoints.map((w) => ({ destination: gateway(w.destination), weight: w.weight })) } : {}),
    ...(s.loadBalancer ? { loadBalancer: s.loadBalancer } : {}),
    ...(s.ipFamilies ? { ipFamilies: s.ipFamilies } : {}),
    canonical: s.canonical,
    visibility: s.visibility,
  };
}

/** `stagedServices`: `namespace/hostname` → endpoint uid → endpoint (Istio's shape). */
export function dumpStagedServices(staged: ReadonlyMap<string, readonly Endpoint[]>): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [key, eps] of staged) out[key] = Object.fromEntries(eps.map((e) => [e.workloadUid, dumpEndpoint(e)]));
  return out;
}

// A presence match is Istio's empty tuple variant: `{"Presence": []}`.
const sm = (m: StringMatch) => (m.kind === 'presence' ? { Presence: [] } : { [m.kind[0]!.toUpperCase() + m.kind.slice(1)]: m.value });

function dumpMatch(m: Match): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const put = (k: string, v: readonly unknown[]) => {
    if (v.length) out[k] = v;
  };
  put('namespaces', m.namespaces.map(sm));
  put('notNamespaces', m.notNamespaces.map(sm));
  put('serviceAccounts', m.serviceAccounts);
  put('notServiceAccounts', m.notServiceAccounts);
  put('principals', m.principals.map(sm));
  put('notPrincipals', m.notPrincipals.map(sm));
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
    rules: p.rules.map((r) => r.map((c) => c.map(dumpMatch))),
    dryRun: p.dryRun,
  };
}

/** RFC 3339 in whole seconds, UTC (`2026-12-06T03:00:00Z`), as Istio's ztunnel prints certificate times. */
export const rfc3339Seconds = (d: Date): string => d.toISOString().replace(/\.\d+Z$/, 'Z');

/** A certificate serial number in decimal (Istio's ztunnel; `istioctl ztunnel-config certificates` parses it so). */
export const decimalSerial = (hex: string): string => BigInt(`0x${hex.replace(/[^0-9a-fA-F]/g, '') || '0'}`).toString(10);

function dumpCert(pem: string): Record<string, unknown> {
  try {
    const x = new X509Certificate(pem);
    return {
      pem: Buffer.from(pem).toString('base64'),
      serialNumber: decimalSerial(x.serialNumber),
      validFrom: rfc3339Seconds(new Date(x.validFrom)),
      expirationTime: rfc3339Seconds(new Date(x.validTo)),
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
  const unreadable: string[] = [];
  if (text !== undefined) {
    for (const doc of yamlLib().parseAllDocuments(text, { logLevel: 'silent', uniqueKeys: false })) {
      if (doc.errors.length) continue;
      // The text in force passed the validator, which bounds what its aliases expand to by the
      // size of the text (local-file.ts); the package's default (100 expansions) would refuse an
      // ordinary file that shares one anchor among a few hundred workloads.
      let value: unknown;
      try {
        value = doc.toJS({ maxAliasCount: text.length + 100_000 });
      } catch (e) {
        unreadable.push(`line ${doc.range[0] === 0 ? 1 : text.slice(0, doc.range[0]).split('\n').length}: ${e instanceof Error ? e.message : String(e)}`);
        continue;
      }
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
  return { ...out, ...(istio.length ? { istioResources: istio } : {}), ...(unreadable.length ? { unreadableDocuments: unreadable } : {}) };
}

/** Header names whose values may be credentials (authorization, *token*, *key*…): printed as `<redacted>`. */
const SECRET_HEADER = /auth|token|secret|passw|cookie|credential|key|signature/i;
export const REDACTED = '<redacted>';

/** Maps as plain objects, recursively (JSON.stringify would print `{}`). */
function plain(v: unknown): unknown {
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), plain(x)]));
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

/**
 * The `config` section: every setting with its value, map-valued ones included, and no secret.
 * As in Istio's ztunnel, the token source (AUTH_TOKEN) is left out (and so are the start-up
 * warnings, which are logs), and the xDS/CA headers are a
 * list of `[name, value]` pairs; a header that carries a credential (authorization, token, …)
 * shows `<redacted>` where Istio's ztunnel would print the value.
 */
export function dumpConfig(config: Partial<Config>): Record<string, unknown> {
  const { authToken: _token, warnings: _warnings, xdsHeaders, caHeaders, workerThreads, ...rest } = config;
  const headers = (m: ReadonlyMap<string, string> | undefined) => [...(m ?? [])].map(([k, v]) => [k, SECRET_HEADER.test(k) ? REDACTED : v]);
  return {
    ...(plain(rest) as Record<string, unknown>),
    // Istio's field name for the data-plane worker count (docs/workers.md).
    ...(workerThreads !== undefined ? { numWorkerThreads: workerThreads } : {}),
    xdsHeaders: headers(xdsHeaders),
    caHeaders: headers(caHeaders),
  };
}

const byKey = <T>(key: (x: T) => string) => (a: T, b: T) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);

export function buildConfigDump(src: ConfigDumpSources, connections: readonly LiveConnection[] = []): Record<string, unknown> {
  const state = src.state;
  // Sorted as Istio's ztunnel sorts them: workloads by uid, services by hostname, policies by key.
  return {
    workloads: [...state.workloads()].sort(byKey((w) => w.uid)).map(dumpWorkload),
    services: [...state.services()].sort(byKey((s) => s.hostname)).map((s) => dumpService(s, state)),
    policies: [...state.policies()].sort(byKey((p) => `${p.namespace}/${p.name}`)).map(dumpPolicy),
    stagedServices: dumpStagedServices(src.stagedServices?.() ?? new Map()),
    staticConfig: staticConfigObject(src.staticConfig()),
    ...(src.localConfigErrors ? { localConfigErrors: src.localConfigErrors() } : {}),
    version: src.version,
    config: dumpConfig(src.config),
    certificates: [...src.certificates()].sort(byKey((c) => c.identity)).map((c) => ({
      identity: c.identity,
      state: c.state,
      certChain: c.cert ? c.cert.chainPem.map(dumpCert) : [],
      rootCerts: c.cert ? c.cert.rootsPem.map(dumpCert) : [],
    })),
    ...(src.workloadState ? { workloadState: src.workloadState(connections) } : {}),
    ...(src.dns ? { dns: src.dns() } : {}),
  };
}

export { formatIdentity };
