// Parser and validator for the local config file (LOCAL_XDS_PATH / LOCAL_XDS), config.md §2.
// The file is ztunnel's internal model in camelCase. We walk the YAML AST rather than a plain JS
// object so that every problem names file, line and field path (config.md "Beyond" (a)).
// Validation is table-driven: each object is a table of keys → parser (+ required / default).
// Bad input is a value (problems), never a throw.
import type { Document, LineCounter, Scalar, YAMLMap, YAMLSeq } from 'yaml';
import { yamlLib } from '../core/yaml-lib.js';
import { isAlias, isMap, isScalar, isSeq, readFastYaml } from './fast-yaml.js';
import { isCanonicalIpv4 } from '../state/validate.js';
import { canonicalIp, parseCidr, type Cidr } from '../core/net.js';
import type {
  ApplicationTunnel,
  GatewayAddress,
  GatewayDestination,
  LoadBalancer,
  Locality,
  NetworkAddress,
  PortMap,
  Service,
  Workload,
} from '../state/model.js';
import type { Authorization, Match, ServiceAccountMatch, StringMatch } from '../policy/model.js';

export interface LocalConfigProblem {
  file: string;
  line: number;
  path: string;
  message: string;
  severity: 'error' | 'warning';
}

/** An Istio resource document, returned untouched for the Istio-YAML translator (config.md "Beyond" (b)). */
export interface IstioDocument {
  apiVersion: string;
  kind: string;
  line: number;
  doc: unknown;
}

export interface LocalConfigSnapshot {
  workloads: Workload[];
  services: Service[];
  policies: Authorization[];
  rootNamespace: string;
  istioDocuments: IstioDocument[];
}

export type LocalConfigResult =
  | { ok: true; value: LocalConfigSnapshot; warnings: LocalConfigProblem[] }
  | { ok: false; errors: LocalConfigProblem[]; warnings: LocalConfigProblem[] };

export const DEFAULT_ROOT_NAMESPACE = 'istio-system';
const ISTIO_API_VERSIONS = ['security.istio.io/v1', 'security.istio.io/v1beta1'];
const ISTIO_KINDS = ['AuthorizationPolicy', 'PeerAuthentication'];

/** `local.yaml:42 policies[1].rules[0][0][0].destinationPorts[0]: 70000 is not a u16` */
export function formatProblem(p: LocalConfigProblem): string {
  return p.path ? `${p.file}:${p.line} ${p.path}: ${p.message}` : `${p.file}:${p.line}: ${p.message}`;
}

// ---------------------------------------------------------------------------------------------
// Walking machinery

type YNode = Scalar | YAMLMap | YAMLSeq | null; // null: key absent, empty or `null`
interface At {
  readonly path: string;
  readonly line: number;
}
/** Returns the value, or undefined after reporting at least one error. */
type Parser<T> = (node: YNode, at: At, ctx: Ctx) => T | undefined;

class Ctx {
  readonly errors: LocalConfigProblem[] = [];
  readonly warnings: LocalConfigProblem[] = [];
  doc: Document | null = null;
  constructor(
    readonly file: string,
    private readonly lc: Pick<LineCounter, 'linePos'>,
    /** False on the fast path: a problem there means a full re-parse, so field paths are not built. */
    readonly paths = true,
  ) {}

  lineOf(node: unknown, fallback: number): number {
    const range = (node as { range?: readonly number[] | null } | null | undefined)?.range;
    return range && typeof range[0] === 'number' ? this.lc.linePos(range[0]).line : fallback;
  }
  error(at: At, message: string): undefined {
    this.errors.push({ file: this.file, line: at.line, path: at.path, message, severity: 'error' });
    return undefined;
  }
  warn(at: At, message: string): void {
    this.warnings.push({ file: this.file, line: at.line, path: at.path, message, severity: 'warning' });
  }
}

const fieldPath = (path: string, key: string): string => (path ? `${path}.${key}` : key);
const indexPath = (path: string, i: number): string => `${path}[${i}]`;
const dataKeyPath = (path: string, k: string | number): string =>
  typeof k === 'number' ? `${path}[${k}]` : `${path}[${JSON.stringify(k)}]`;

/** Resolves aliases and normalises null scalars, then runs the parser at the node's own line. */
function sub<T>(ctx: Ctx, raw: unknown, path: string, fallbackLine: number, parse: Parser<T>, parent?: At): T | undefined {
  let node: unknown = raw;
  if (isAlias(node)) {
    let target: unknown;
    try {
      target = ctx.doc ? node.resolve(ctx.doc) : undefined;
    } catch {
      target = undefined;
    }
    if (!target) return ctx.error({ path, line: ctx.lineOf(node, fallbackLine) }, `unknown alias *${node.source}`);
    node = target;
  }
  const line = ctx.lineOf(node, fallbackLine);
  // The parent's position when it is the same one (always, on the fast path: no paths, no lines).
  const at = parent !== undefined && parent.path === path && parent.line === line ? parent : { path, line };
  if (node === null || node === undefined || (isScalar(node) && node.value === null)) return parse(null, at, ctx);
  if (isScalar(node) || isMap(node) || isSeq(node)) return parse(node, at, ctx);
  return ctx.error(at, 'unsupported YAML node');
}

function describe(n: YNode): string {
  if (n === null) return 'nothing (null)';
  if (isMap(n)) return 'a map';
  if (isSeq(n)) return 'a list';
  return typeof n.value === 'string' ? JSON.stringify(n.value) : String(n.source ?? n.value);
}

function isNullish(raw: unknown): boolean {
  return raw === null || raw === undefined || (isScalar(raw) && raw.value === null);
}

// ---------------------------------------------------------------------------------------------
// Primitive parsers

/** Plain scalars that YAML resolves as numbers/bools are read as their source text, as serde_yaml
 *  does for string fields (e.g. `canonicalRevision: 1`). */
const str: Parser<string> = (n, at, ctx) => {
  if (isScalar(n)) {
    if (typeof n.value === 'string') return n.value;
    if (typeof n.value === 'number' || typeof n.value === 'boolean') return n.source ?? String(n.value);
  }
  return ctx.error(at, `expected a string, got ${describe(n)}`);
};

const bool: Parser<boolean> = (n, at, ctx) =>
  isScalar(n) && typeof n.value === 'boolean' ? n.value : ctx.error(at, `expected true or false, got ${describe(n)}`);

/** `/^[-+]?[0-9]+$/` as a loop (it runs for every number of a large file). */
function isDecimalText(t: string): boolean {
  const first = t.charCodeAt(0);
  let i = first === 43 || first === 45 ? 1 : 0; // + -
  if (i >= t.length) return false;
  for (; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

function intScalar(n: YNode): number | undefined {
  if (!isScalar(n) || typeof n.value !== 'number' || !Number.isInteger(n.value)) return undefined;
  // `80.0` and `8e1` are floats in the file even though they are integral numbers.
  if (n.format !== 'HEX' && n.format !== 'OCT' && n.source !== undefined && !isDecimalText(n.source)) return undefined;
  return n.value;
}

function uint(max: number, name: string): Parser<number> {
  return (n, at, ctx) => {
    const v = intScalar(n);
    return v !== undefined && v >= 0 && v <= max ? v : ctx.error(at, `${describe(n)} is not a ${name}`);
  };
}
const u16 = uint(0xffff, 'u16');
const u32 = uint(0xffffffff, 'u32');

function oneOf<const T extends string>(values: readonly T[]): Parser<T> {
  return (n, at, ctx) => {
    const s = str(n, at, ctx);
    if (s === undefined) return undefined;
    return (values as readonly string[]).includes(s) ? (s as T) : ctx.error(at, `${JSON.stringify(s)} is not one of ${values.join(', ')}`);
  };
}

/** A string parser followed by a conversion that returns null when the text is invalid. */
function convert<T>(what: string, fn: (s: string) => T | null): Parser<T> {
  return (n, at, ctx) => {
    const s = str(n, at, ctx);
    if (s === undefined) return undefined;
    const v = fn(s);
    return v === null ? ctx.error(at, `${JSON.stringify(s)} is not ${what}`) : v;
  };
}

/** An IP in canonical form; canonicalIp is skipped for the common canonical IPv4 text. */
const canonical = (s: string): string | null => (isCanonicalIpv4(s) ? s : canonicalIp(s));
const ip = convert('an IP address', canonical);
const cidr: Parser<Cidr> = convert('a CIDR (e.g. 10.0.0.0/8) or an IP address', (s) => parseCidr(s));

/** `"<a>/<b>"` with both halves non-empty (service keys, policy keys). */
function slashPair(what: string): Parser<string> {
  return convert(what, (s) => {
    const i = s.indexOf('/');
    return i > 0 && i < s.length - 1 ? s : null;
  });
}

/** `"<network>/<ip>"`; the network may be empty (`/10.96.0.10`), config.md §2.2. */
const networkAddress: Parser<NetworkAddress> = convert('"<network>/<ip>" (e.g. "/10.96.0.10")', (s) => {
  const i = s.indexOf('/');
  const addr = i >= 0 ? canonical(s.slice(i + 1)) : null;
  return addr ? { network: s.slice(0, i), ip: addr } : null;
});

/** config.md §2.3: tried as `<network>/<ip>` first, then as `<namespace>/<hostname>`. */
const gatewayDestination: Parser<GatewayDestination> = convert(
  '"<network>/<ip>" or "<namespace>/<hostname>"',
  (s): GatewayDestination | null => {
    const i = s.indexOf('/');
    if (i < 0) return null;
    const left = s.slice(0, i);
    const right = s.slice(i + 1);
    const addr = canonical(right);
    if (addr) return { kind: 'address', address: { network: left, ip: addr } };
    if (left && right && !right.includes('/')) return { kind: 'hostname', namespace: left, hostname: right };
    return null;
  },
);

function list<T>(item: Parser<T>, unique?: { key: (v: T) => string; what: string }): Parser<T[]> {
  return (n, at, ctx) => {
    if (!isSeq(n)) return ctx.error(at, `expected a list, got ${describe(n)}`);
    const out: T[] = [];
    const seen = unique ? new Map<string, number>() : undefined;
    let ok = true;
    // for-of, not an index: the fast path's top-level lists are read while they are walked.
    let i = 0;
    for (const raw of n.items) {
      const path = ctx.paths ? indexPath(at.path, i) : at.path;
      i++;
      const v = sub(ctx, raw, path, at.line, item, at);
      if (v === undefined) {
        ok = false;
        continue;
      }
      if (unique && seen) {
        const k = unique.key(v);
        const first = seen.get(k);
        const line = ctx.lineOf(raw, at.line);
        if (first !== undefined) {
          ok = false;
          ctx.error({ path, line }, `duplicate ${unique.what} ${JSON.stringify(k)} (first defined at line ${first})`);
          continue;
        }
        seen.set(k, line);
      }
      out.push(v);
    }
    return ok ? out : undefined;
  };
}

/** A map whose keys are data (not field names); keys parsed by `key`, paths as `x["k"]` / `x[80]`. */
function dataMap<K extends string | number, V>(key: Parser<K>, value: Parser<V>): Parser<Map<K, V>> {
  return (n, at, ctx) => {
    if (!isMap(n)) return ctx.error(at, `expected a map, got ${describe(n)}`);
    const out = new Map<K, V>();
    let ok = true;
    for (const pair of n.items) {
      const keyLine = ctx.lineOf(pair.key, at.line);
      const keyNode = pair.key;
      const keyText = isScalar(keyNode) ? (typeof keyNode.value === 'number' ? keyNode.value : String(keyNode.value)) : '?';
      const path = ctx.paths ? dataKeyPath(at.path, keyText) : at.path;
      const k = sub(ctx, keyNode, path, keyLine, key, at);
      const v = sub(ctx, pair.value, path, keyLine, value, at);
      if (k === undefined || v === undefined) {
        ok = false;
        continue;
      }
      if (out.has(k)) {
        ok = false;
        ctx.error({ path, line: keyLine }, `duplicate key ${JSON.stringify(k)}`);
        continue;
      }
      out.set(k, v);
    }
    return ok ? out : undefined;
  };
}

/** Port keys may be written `80` or `"80"`. */
const portKey: Parser<number> = (n, at, ctx) => {
  if (isScalar(n) && typeof n.value === 'string' && /^[0-9]{1,5}$/.test(n.value) && Number(n.value) <= 0xffff) return Number(n.value);
  return u16(n, at, ctx);
};
/** `servicePort: targetPort`; targetPort 0 = named port (config.md §2.2). */
const portMap: Parser<PortMap> = dataMap(portKey, u16);

// ---------------------------------------------------------------------------------------------
// Objects: a table of field specs

interface FieldSpec<T> {
  readonly parse: Parser<T>;
  readonly required: boolean;
  /** Used when the key is absent (and for `maybe` fields, when it is null). */
  readonly fallback: () => T;
  readonly nullIsAbsent: boolean;
}
const required = <T>(parse: Parser<T>): FieldSpec<T> => ({
  parse,
  required: true,
  nullIsAbsent: false,
  fallback: () => {
    throw new Error('unreachable');
  },
});
const withDefault = <T>(parse: Parser<T>, def: () => T): FieldSpec<T> => ({ parse, required: false, nullIsAbsent: false, fallback: def });
/** Optional with no default (`Option<T>` in Rust): absent or null → undefined. */
const maybe = <T>(parse: Parser<T>): FieldSpec<T | undefined> => ({ parse, required: false, nullIsAbsent: true, fallback: () => undefined });

type Shape<S> = { [K in keyof S]: S[K] extends FieldSpec<infer T> ? T : never };

/** Damerau-free Levenshtein, for "did you mean" on unknown keys. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

function suggestion(key: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestD = 3;
  for (const k of known) {
    const d = distance(key, k);
    if (d < bestD) {
      best = k;
      bestD = d;
    }
  }
  return best ? ` (did you mean "${best}"?)` : '';
}

/**
 * A map with known keys. Unknown keys are errors, except inside a Match where Rust ignores them
 * and we warn (config.md §2, "Beyond" (a)).
 */
function object<S extends Record<string, FieldSpec<unknown>>>(
  spec: S,
  what: string,
  unknownKeys: 'error' | 'warning' = 'error',
): Parser<Shape<S>> {
  const known = Object.keys(spec);
  const fields = known.map((k) => spec[k]!);
  const indexOf = new Map(known.map((k, i) => [k, i] as const));
  // Every result is a copy of this template (it has all the keys; Object.fromEntries keeps fast
  // properties), filled in by index. Adding the keys one by one by computed name would turn each
  // result into a slow dictionary-mode object once it has more than a dozen of them.
  const template: Record<string, unknown> = Object.fromEntries(known.map((k) => [k, undefined]));
  // The key names met at each position of the last map: the objects of a long list repeat their
  // keys in the same order (the fast reader even shares the strings), so most lookups are one
  // comparison instead of a hash lookup.
  const lastNames: string[] = [];
  const lastIndexes: number[] = [];
  return (n, at, ctx) => {
    if (!isMap(n)) return ctx.error(at, `expected ${what} (a map), got ${describe(n)}`);
    // The pair of each field, by index (this runs once per object of a large file).
    const pairs = new Array<(typeof n.items)[number] | undefined>(known.length);
    let ok = true;
    for (let pos = 0; pos < n.items.length; pos++) {
      const pair = n.items[pos]!;
      const k = isScalar(pair.key) ? pair.key.value : undefined;
      const name = typeof k === 'string' ? k : typeof k === 'number' || typeof k === 'boolean' ? String(k) : undefined;
      if (name === undefined) {
        ok = false;
        ctx.error({ path: at.path, line: ctx.lineOf(pair.key, at.line) }, `keys of ${what} must be strings`);
        continue;
      }
      let idx: number | undefined;
      if (lastNames[pos] === name) idx = lastIndexes[pos];
      else {
        idx = indexOf.get(name); // own keys of the spec only
        if (idx !== undefined && pos < 64) {
          lastNames[pos] = name;
          lastIndexes[pos] = idx;
        }
      }
      if (idx === undefined) {
        const msg = `unknown key ${JSON.stringify(name)} in ${what}${suggestion(name, known)}`;
        const keyAt = { path: fieldPath(at.path, name), line: ctx.lineOf(pair.key, at.line) };
        if (unknownKeys === 'error') {
          ok = false;
          ctx.error(keyAt, msg);
        } else {
          ctx.warn(keyAt, `${msg}; it is ignored`);
        }
        continue;
      }
      pairs[idx] = pair;
    }
    const out: Record<string, unknown> = { ...template };
    for (let i = 0; i < known.length; i++) {
      const key = known[i]!;
      const field = fields[i]!;
      const pair = pairs[i];
      if (pair === undefined || (field.nullIsAbsent && isNullish(pair.value))) {
        if (field.required) {
          ok = false;
          ctx.error(at, `missing required key ${JSON.stringify(key)} in ${what}`);
        } else {
          out[key] = field.fallback();
        }
        continue;
      }
      // The key's line is where a problem with a null value is reported.
      const v = sub(ctx, pair.value, ctx.paths ? fieldPath(at.path, key) : at.path, ctx.lineOf(pair.key, at.line), field.parse, at);
      if (v === undefined) ok = false;
      else out[key] = v;
    }
    return ok ? (out as Shape<S>) : undefined;
  };
}

function mapped<A, B>(p: Parser<A>, fn: (a: A, at: At, ctx: Ctx) => B | undefined): Parser<B> {
  return (n, at, ctx) => {
    const a = p(n, at, ctx);
    return a === undefined ? undefined : fn(a, at, ctx);
  };
}

// ---------------------------------------------------------------------------------------------
// Schema (config.md §2)

const gatewayAddress: Parser<GatewayAddress> = mapped(
  object({ destination: required(gatewayDestination), hboneMtlsPort: required(u16) }, 'a gateway address'),
  (g) => Object.freeze({ destination: g.destination, hboneMtlsPort: g.hboneMtlsPort }),
);

const applicationTunnel: Parser<ApplicationTunnel> = mapped(
  object({ protocol: required(oneOf(['NONE', 'PROXY'])), port: maybe(u16) }, 'an application tunnel'),
  (a) => Object.freeze(a.port === undefined ? { protocol: a.protocol } : { protocol: a.protocol, port: a.port }),
);

const locality: Parser<Locality> = mapped(
  object({ region: required(str), zone: required(str), subzone: required(str) }, 'a locality'),
  (l) => Object.freeze({ ...l }),
);

const labels: Parser<Map<string, string>> = dataMap(str, str);

/**
 * Defaults shared by every workload that leaves these keys out, rather than a new empty Map and
 * array each (issue 7: 10,000 workloads); the model's fields are read-only.
 */
const NO_LABELS = new Map<string, string>();
const NO_POLICIES: string[] = Object.freeze([]) as unknown as string[];

const WORKLOAD = object(
  {
    workloadIps: required(list(ip)),
    namespace: required(str),
    services: required(dataMap(slashPair('"<namespace>/<hostname>"'), portMap)),
    uid: withDefault(str, () => ''),
    name: withDefault(str, () => ''),
    // Defaults as the Rust deserializer has them, not the proto's (config.md §2.1).
    serviceAccount: withDefault(str, () => ''),
    trustDomain: withDefault(str, () => ''),
    network: withDefault(str, () => ''),
    protocol: withDefault(oneOf(['TCP', 'HBONE']), () => 'TCP' as const),
    networkMode: withDefault(oneOf(['Standard', 'HostNetwork']), () => 'Standard' as const),
    node: withDefault(str, () => ''),
    waypoint: maybe(gatewayAddress),
    networkGateway: maybe(gatewayAddress),
    hostname: withDefault(str, () => ''),
    workloadName: withDefault(str, () => ''),
    workloadType: withDefault(str, () => ''),
    canonicalName: withDefault(str, () => ''),
    canonicalRevision: withDefault(str, () => ''),
    nativeTunnel: withDefault(bool, () => false),
    applicationTunnel: maybe(applicationTunnel),
    authorizationPolicies: withDefault(list(slashPair('"<namespace>/<name>"')), () => NO_POLICIES),
    status: withDefault(oneOf(['Healthy', 'Unhealthy']), () => 'Healthy' as const),
    clusterId: withDefault(str, () => ''),
    locality: maybe(locality),
    capacity: withDefault(u32, () => 1),
    labels: withDefault(labels, () => NO_LABELS), // ztunnel-ts extension ("Beyond" (b))
  },
  'a workload',
);

const workload: Parser<Workload> = mapped(WORKLOAD, (w) => {
  // One literal with every key in a fixed order is several times faster to build than spreads
  // (issue 7); the four optional keys, rare in practice, are appended only when present.
  const out: Workload = {
    uid: w.uid,
    name: w.name,
    namespace: w.namespace,
    workloadIps: Object.freeze(w.workloadIps),
    hostname: w.hostname,
    network: w.network,
    protocol: w.protocol,
    trustDomain: w.trustDomain,
    serviceAccount: w.serviceAccount,
    node: w.node,
    canonicalName: w.canonicalName,
    canonicalRevision: w.canonicalRevision,
    workloadType: w.workloadType.toLowerCase(),
    workloadName: w.workloadName,
    nativeTunnel: w.nativeTunnel,
    services: w.services,
    authorizationPolicies: Object.freeze(w.authorizationPolicies),
    status: w.status,
    clusterId: w.clusterId,
    networkMode: w.networkMode,
    capacity: w.capacity,
    labels: w.labels,
  };
  if (!w.waypoint && !w.networkGateway && !w.applicationTunnel && !w.locality) return Object.freeze(out);
  return Object.freeze({
    ...out,
    ...(w.waypoint ? { waypoint: w.waypoint } : {}),
    ...(w.networkGateway ? { networkGateway: w.networkGateway } : {}),
    ...(w.applicationTunnel ? { applicationTunnel: w.applicationTunnel } : {}),
    ...(w.locality ? { locality: w.locality } : {}),
  });
});

const loadBalancer: Parser<LoadBalancer> = mapped(
  object(
    {
      routingPreferences: required(list(oneOf(['Region', 'Zone', 'Subzone', 'Node', 'Cluster', 'Network']))),
      mode: required(oneOf(['Standard', 'Strict', 'Failover', 'Passthrough'])),
      healthPolicy: required(oneOf(['OnlyHealthy', 'AllowAll'])),
    },
    'a load balancer',
  ),
  (lb) => Object.freeze({ ...lb, routingPreferences: Object.freeze(lb.routingPreferences) }),
);

/** Any value: for keys we accept and validate loosely but do not model. */
const anything: Parser<true> = () => true;

const cidrVip = object({ network: required(str), cidr: required(cidr) }, 'a CIDR VIP');
const weightedWaypoint = object({ destination: required(gatewayAddress), weight: required(u32) }, 'a weighted waypoint');

const SERVICE = object(
  {
    name: required(str),
    namespace: required(str),
    hostname: required(str),
    vips: required(list(networkAddress)),
    ports: required(portMap),
    subjectAltNames: withDefault(list(str), () => []),
    waypoint: maybe(gatewayAddress),
    loadBalancer: maybe(loadBalancer),
    ipFamilies: maybe(oneOf(['Dual', 'IPv4', 'IPv6'])),
    canonical: withDefault(bool, () => false),
    endpoints: maybe(anything),
    cidrVips: maybe(list(cidrVip)),
    weightedWaypoints: maybe(list(weightedWaypoint)),
    visibility: withDefault(oneOf(['Public', 'Namespace']), () => 'Public' as const),
  },
  'a service',
);

const service: Parser<Service> = mapped(SERVICE, (s, at, ctx) => {
  // Accepted for compatibility with Rust's file format, but the Service model has no place for them.
  if (s.endpoints) ctx.warn(at, '"endpoints" is ignored; endpoints are built from the workloads\' "services" maps');
  if (s.cidrVips?.length) ctx.warn(at, '"cidrVips" is not supported by ztunnel-ts yet and is ignored');
  const out: Service = {
    name: s.name,
    namespace: s.namespace,
    hostname: s.hostname,
    vips: Object.freeze(s.vips),
    ports: s.ports,
    subjectAltNames: Object.freeze(s.subjectAltNames),
    ...(s.waypoint ? { waypoint: s.waypoint } : {}),
    ...(s.weightedWaypoints?.length ? { weightedWaypoints: Object.freeze(s.weightedWaypoints) } : {}),
    ...(s.loadBalancer ? { loadBalancer: s.loadBalancer } : {}),
    ...(s.ipFamilies ? { ipFamilies: s.ipFamilies } : {}),
    canonical: s.canonical,
    visibility: s.visibility,
  };
  return Object.freeze(out);
});

const STRING_MATCH_KINDS = { Exact: 'exact', Prefix: 'prefix', Suffix: 'suffix' } as const;

/** `{Exact|Prefix|Suffix: "x"}` or `{Presence: <anything>}` (config.md §2.4). */
const stringMatch: Parser<StringMatch> = (n, at, ctx) => {
  const expected = 'expected a single-key map {Exact|Prefix|Suffix: "<value>"} or {Presence: []}';
  if (!isMap(n) || n.items.length !== 1) return ctx.error(at, `${expected}, got ${isMap(n) ? `a map with ${n.items.length} keys` : describe(n)}`);
  const pair = n.items[0]!;
  const k = isScalar(pair.key) ? pair.key.value : undefined;
  const keyLine = ctx.lineOf(pair.key, at.line);
  if (k === 'Presence') return { kind: 'presence' };
  if (k === 'Exact' || k === 'Prefix' || k === 'Suffix') {
    const v = sub(ctx, pair.value, ctx.paths ? fieldPath(at.path, k) : at.path, keyLine, str, at);
    return v === undefined ? undefined : { kind: STRING_MATCH_KINDS[k], value: v };
  }
  return ctx.error({ path: at.path, line: keyLine }, `${JSON.stringify(String(k))} is not a StringMatch kind; ${expected}`);
};

/** Principals are written without `spiffe://` (config.md §2.4); with it they can never match. */
const principal: Parser<StringMatch> = mapped(stringMatch, (m, at, ctx) => {
  if ((m.kind === 'exact' || m.kind === 'prefix') && m.value.startsWith('spiffe://')) {
    ctx.warn(at, `principal ${JSON.stringify(m.value)} starts with "spiffe://"; principals are written without it, so this never matches`);
  }
  return m;
});

const serviceAccountMatch: Parser<ServiceAccountMatch> = mapped(
  object({ namespace: required(str), serviceAccount: required(str) }, 'a service account match', 'warning'),
  (s) => Object.freeze({ ...s }),
);

const MATCH = object(
  {
    namespaces: withDefault(list(stringMatch), () => []),
    notNamespaces: withDefault(list(stringMatch), () => []),
    principals: withDefault(list(principal), () => []),
    notPrincipals: withDefault(list(principal), () => []),
    serviceAccounts: withDefault(list(serviceAccountMatch), () => []),
    notServiceAccounts: withDefault(list(serviceAccountMatch), () => []),
    sourceIps: withDefault(list(cidr), () => []),
    notSourceIps: withDefault(list(cidr), () => []),
    destinationIps: withDefault(list(cidr), () => []),
    notDestinationIps: withDefault(list(cidr), () => []),
    destinationPorts: withDefault(list(u16), () => []),
    notDestinationPorts: withDefault(list(u16), () => []),
  },
  'a match',
  'warning', // Rust ignores unknown Match keys silently; we report them (config.md "Beyond" (a))
);
const match: Parser<Match> = mapped(MATCH, (m) => Object.freeze({ ...m }) as Match);

const POLICY = object(
  {
    name: required(str),
    namespace: required(str),
    scope: required(oneOf(['Global', 'Namespace', 'WorkloadSelector'])),
    action: required(oneOf(['Allow', 'Deny'])),
    dryRun: required(bool),
    rules: required(list(list(list(match)))),
  },
  'a policy',
);
const policy: Parser<Authorization> = mapped(POLICY, (p) => Object.freeze({ ...p }));

/** Top-level lists: `workloads:` with nothing after it is an empty list. */
function topList<T>(item: Parser<T>, unique: { key: (v: T) => string; what: string }): FieldSpec<T[]> {
  const l = list(item, unique);
  return withDefault<T[]>((n, at, ctx) => (n === null ? [] : l(n, at, ctx)), () => []);
}

const TOP_LEVEL = object(
  {
    workloads: topList(workload, { key: (w) => w.uid, what: 'workload uid' }),
    services: topList(service, { key: (s) => `${s.namespace}/${s.hostname}`, what: 'service' }),
    policies: topList(policy, { key: (p) => `${p.namespace}/${p.name}`, what: 'policy' }),
    rootNamespace: withDefault(str, () => DEFAULT_ROOT_NAMESPACE), // ztunnel-ts extension ("Beyond" (b))
  },
  'the ztunnel config document',
);

// ---------------------------------------------------------------------------------------------
// Documents

function parseIstioDocument(map: YAMLMap, docLine: number, ctx: Ctx): IstioDocument | undefined {
  const field = (name: string): { text: string | undefined; line: number } => {
    const pair = map.items.find((p) => isScalar(p.key) && p.key.value === name);
    const text = pair && isScalar(pair.value) && typeof pair.value.value === 'string' ? pair.value.value : undefined;
    return { text, line: ctx.lineOf(pair?.key, docLine) };
  };
  const apiVersion = field('apiVersion');
  const kind = field('kind');
  let ok = true;
  if (!apiVersion.text || !ISTIO_API_VERSIONS.includes(apiVersion.text)) {
    ok = false;
    ctx.error(
      { path: 'apiVersion', line: apiVersion.line },
      `${apiVersion.text === undefined ? 'missing or non-string apiVersion' : `unsupported apiVersion ${JSON.stringify(apiVersion.text)}`}; expected ${ISTIO_API_VERSIONS.join(' or ')}`,
    );
  }
  if (!kind.text || !ISTIO_KINDS.includes(kind.text)) {
    ok = false;
    ctx.error(
      { path: 'kind', line: kind.line },
      `${kind.text === undefined ? 'missing or non-string kind' : `unsupported kind ${JSON.stringify(kind.text)}`}; expected ${ISTIO_KINDS.join(' or ')}`,
    );
  }
  if (!ok || !ctx.doc) return undefined;
  let doc: unknown;
  try {
    doc = ctx.doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return ctx.error({ path: '', line: docLine }, `cannot read document: ${e instanceof Error ? e.message : String(e)}`);
  }
  return { apiVersion: apiVersion.text!, kind: kind.text!, line: docLine, doc };
}

function parseStream(text: string, fileName: string): LocalConfigResult {
  const { LineCounter, parseAllDocuments } = yamlLib();
  const lc = new LineCounter();
  const ctx = new Ctx(fileName, lc);
  const docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true, logLevel: 'error' });
  const yamlProblem = (e: { pos: [number, number]; message: string }, severity: 'error' | 'warning'): void => {
    const line = lc.linePos(e.pos[0]).line;
    if (severity === 'error') ctx.error({ path: '', line }, `YAML syntax: ${e.message}`);
    else ctx.warn({ path: '', line }, `YAML: ${e.message}`);
  };
  if ('empty' in docs) {
    for (const e of docs.errors) yamlProblem(e, 'error');
    for (const w of docs.warnings) yamlProblem(w, 'warning');
  }

  const snapshot: LocalConfigSnapshot = { workloads: [], services: [], policies: [], rootNamespace: DEFAULT_ROOT_NAMESPACE, istioDocuments: [] };
  let ztunnelDocLine: number | undefined;
  for (const doc of docs) {
    for (const w of doc.warnings) yamlProblem(w, 'warning');
    if (doc.errors.length > 0) {
      // A broken document is not validated further: its tree is partial and would add noise.
      for (const e of doc.errors) yamlProblem(e, 'error');
      continue;
    }
    ctx.doc = doc;
    let contents: unknown = doc.contents;
    if (isAlias(contents)) contents = contents.resolve(doc);
    if (isNullish(contents)) continue; // empty document (`---` alone, comments only)
    const line = ctx.lineOf(contents, 1);
    if (!isMap(contents)) {
      ctx.error({ path: '', line }, `a document must be a map (the ztunnel form or an Istio resource), got ${describe(isScalar(contents) || isSeq(contents) ? contents : null)}`);
      continue;
    }
    if (contents.items.some((p) => isScalar(p.key) && (p.key.value === 'apiVersion' || p.key.value === 'kind'))) {
      const istio = parseIstioDocument(contents, line, ctx);
      if (istio) snapshot.istioDocuments.push(istio);
      continue;
    }
    if (ztunnelDocLine !== undefined) {
      ctx.error({ path: '', line }, `only one document in the ztunnel form (workloads/services/policies) is allowed; the first one starts at line ${ztunnelDocLine}`);
      continue;
    }
    ztunnelDocLine = line;
    const top = sub(ctx, contents, '', line, TOP_LEVEL);
    if (top) {
      snapshot.workloads = top.workloads;
      snapshot.services = top.services;
      snapshot.policies = top.policies;
      snapshot.rootNamespace = top.rootNamespace;
    }
  }
  if (ctx.errors.length > 0) return { ok: false, errors: ctx.errors, warnings: ctx.warnings };
  return { ok: true, value: snapshot, warnings: ctx.warnings };
}

/** The fast reader's nodes carry no source range, so Ctx.lineOf never asks this. */
const NO_LINE_COUNTER: Pick<LineCounter, 'linePos'> = { linePos: () => ({ line: 0, col: 0 }) };

/**
 * The fast path (issue 7): the plain-subset reader of fast-yaml.ts, then the same validator. Only
 * a clean result is used; on any problem (or text outside the subset, or Istio documents) the
 * caller parses again with the full YAML parser, so messages and their lines come from there.
 */
function parseFast(text: string, fileName: string): LocalConfigResult | null {
  return readFastYaml(text, (contents): LocalConfigResult | null => {
    if (!isMap(contents)) return null;
    if (contents.items.some((p) => isScalar(p.key) && (p.key.value === 'apiVersion' || p.key.value === 'kind'))) return null;
    const ctx = new Ctx(fileName, NO_LINE_COUNTER, false);
    const top = sub(ctx, contents, '', 1, TOP_LEVEL);
    if (!top || ctx.errors.length > 0 || ctx.warnings.length > 0) return null;
    return {
      ok: true,
      value: { workloads: top.workloads, services: top.services, policies: top.policies, rootNamespace: top.rootNamespace, istioDocuments: [] },
      warnings: [],
    };
  });
}

/** The full parser alone, without the fast path (for tests comparing the two). */
export function parseLocalConfigFully(text: string, fileName: string): LocalConfigResult {
  return parseStream(text, fileName);
}

/**
 * Parses and fully validates a local config file (config.md §2; multi-document per "Beyond" (b)).
 * Never throws: every problem is returned with file, line and field path.
 */
export function parseLocalConfig(text: string, fileName: string): LocalConfigResult {
  try {
    return parseFast(text, fileName) ?? parseStream(text, fileName);
  } catch (e) {
    // Defensive: the walker is written not to throw; if it does, report instead of crashing.
    const message = `internal error while reading the file: ${e instanceof Error ? e.message : String(e)}`;
    return { ok: false, errors: [{ file: fileName, line: 1, path: '', message, severity: 'error' }], warnings: [] };
  }
}
