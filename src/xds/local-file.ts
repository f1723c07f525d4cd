// Parser and validator for the local config file (LOCAL_XDS_PATH / LOCAL_XDS), config.md §2.
// The file is ztunnel's internal model in camelCase, read with the `yaml` package. We walk its
// document tree rather than a plain JS object so that every problem names file, line and field
// path (config.md "Beyond" (a)); line numbers are worked out only for the problems reported.
// This module loads `yaml`; the daemon runs it on a worker thread (local-parse.ts).
// Validation is table-driven: each object is a table of keys → parser (+ required / default).
// Bad input is a value (problems), never a throw.
import { logSafe } from '../core/log-safe.js';
import { isAlias, isMap, isScalar, isSeq, parseAllDocuments, visit, type Alias, type Document, type Scalar, type YAMLMap, type YAMLSeq } from 'yaml';
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

import type { LocalConfigProblem } from './local-problem.js';

export { formatProblem, type LocalConfigProblem } from './local-problem.js';

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
  /** `documents`: how many non-empty YAML documents the file has (0: empty or comments only). */
  | { ok: true; value: LocalConfigSnapshot; warnings: LocalConfigProblem[]; documents: number }
  | { ok: false; errors: LocalConfigProblem[]; warnings: LocalConfigProblem[] };

export const DEFAULT_ROOT_NAMESPACE = 'istio-system';
const ISTIO_API_VERSIONS = ['security.istio.io/v1', 'security.istio.io/v1beta1'];
const ISTIO_KINDS = ['AuthorizationPolicy', 'PeerAuthentication'];

// ---------------------------------------------------------------------------------------------
// Walking machinery

type YNode = Scalar | YAMLMap | YAMLSeq | null; // null: key absent, empty or `null`
interface At {
  readonly path: string;
  /** Source offset; turned into a line number only when a problem is reported. */
  readonly pos: number;
}
/** Returns the value, or undefined after reporting at least one error. */
type Parser<T> = (node: YNode, at: At, ctx: Ctx) => T | undefined;

/** Problems listed in full per kind (errors, warnings); the rest are counted (issue 16 item 10). */
export const MAX_LISTED_PROBLEMS = 20;

/**
 * Nodes the validator may visit per document beyond one per source character. Without aliases a
 * document has fewer nodes than characters; past this, aliases expand it (a "billion laughs"
 * document) and the walk stops (issue 16 item 9).
 */
const ALIAS_EXPANSION_ALLOWANCE = 100_000;

class Ctx {
  readonly errors: LocalConfigProblem[] = [];
  readonly warnings: LocalConfigProblem[] = [];
  /** Problems beyond MAX_LISTED_PROBLEMS, counted only. */
  moreErrors = 0;
  moreWarnings = 0;
  doc: Document | null = null;
  /** Each alias of `doc` → its anchored node; built on the first alias met. */
  private aliasTargets: Map<Alias, unknown> | undefined;
  /** Nodes visited; bounded by `budget` so aliases cannot make the walk explode. */
  steps = 0;
  readonly budget: number;
  exhausted = false;
  private newlines: number[] | undefined;
  readonly paths = true;
  constructor(
    readonly file: string,
    private readonly text: string,
  ) {
    this.budget = text.length + ALIAS_EXPANSION_ALLOWANCE;
  }

  /** The node's source offset (turned into a line only if a problem is reported). */
  posOf(node: unknown, fallback: number): number {
    const range = (node as { range?: readonly number[] | null } | null | undefined)?.range;
    return range && typeof range[0] === 'number' ? range[0] : fallback;
  }
  /** 1-based line of a source offset; the index of line ends is built on first use. */
  line(pos: number): number {
    if (!this.newlines) {
      const nl: number[] = [];
      for (let i = this.text.indexOf('\n'); i >= 0; i = this.text.indexOf('\n', i + 1)) nl.push(i);
      this.newlines = nl;
    }
    let lo = 0;
    let hi = this.newlines.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.newlines[mid]! < pos) lo = mid + 1;
      else hi = mid;
    }
    return lo + 1;
  }
  setDoc(doc: Document): void {
    this.doc = doc;
    this.aliasTargets = undefined;
  }
  /** The node an alias names: the last node anchored with that name before it. */
  resolveAlias(alias: Alias): unknown {
    if (!this.doc) return undefined;
    if (!this.aliasTargets) {
      // One pass over the document for all of its aliases (Alias.resolve without a context walks
      // the whole document again for each alias).
      const targets = new Map<Alias, unknown>();
      const anchored = new Map<string, unknown>();
      visit(this.doc, {
        Node: (_key, node) => {
          if (isAlias(node)) targets.set(node, anchored.get(node.source));
          else if (node.anchor) anchored.set(node.anchor, node);
        },
      });
      this.aliasTargets = targets;
    }
    return this.aliasTargets.get(alias);
  }
  /** Counts one node visited; false (reported once) when the walk is over budget. */
  step(at: At): boolean {
    if (this.exhausted) return false;
    if (++this.steps <= this.budget) return true;
    this.exhausted = true;
    this.error(at, `aliases expand the document to more than ${this.budget} nodes (an alias bomb?); it is refused`);
    return false;
  }
  error(at: At, message: string): undefined {
    if (this.errors.length < MAX_LISTED_PROBLEMS) this.errors.push({ file: this.file, line: this.line(at.pos), ...problemText(at.path, message), severity: 'error' });
    else this.moreErrors++;
    return undefined;
  }
  warn(at: At, message: string): void {
    if (this.warnings.length < MAX_LISTED_PROBLEMS) this.warnings.push({ file: this.file, line: this.line(at.pos), ...problemText(at.path, message), severity: 'warning' });
    else this.moreWarnings++;
  }
}
/**
 * Problems quote the file's own text (values, keys, alias names), and they end up in log lines and
 * /config_dump: bounded and with control characters escaped (issue 16 item 13), so a hostile or
 * broken file cannot write megabytes or terminal sequences into the logs.
 */
function problemText(path: string, message: string): { path: string; message: string } {
  return { path: logSafe(path, PROBLEM_PATH_MAX_CHARS), message: logSafe(message, PROBLEM_MESSAGE_MAX_CHARS) };
}
const PROBLEM_PATH_MAX_CHARS = 512;
const PROBLEM_MESSAGE_MAX_CHARS = 1024;
const fieldPath = (path: string, key: string): string => (path ? `${path}.${key}` : key);
const indexPath = (path: string, i: number): string => `${path}[${i}]`;
const dataKeyPath = (path: string, k: string | number): string =>
  typeof k === 'number' ? `${path}[${k}]` : `${path}[${JSON.stringify(k)}]`;

/** Resolves aliases and normalises null scalars, then runs the parser at the node's own line. */
function sub<T>(ctx: Ctx, raw: unknown, path: string, fallbackPos: number, parse: Parser<T>, parent?: At): T | undefined {
  let node: unknown = raw;
  if (!ctx.step({ path, pos: ctx.posOf(node, fallbackPos) })) return undefined;
  if (isAlias(node)) {
    const target = ctx.resolveAlias(node);
    if (!target) return ctx.error({ path, pos: ctx.posOf(node, fallbackPos) }, `unknown alias *${node.source}`);
    node = target;
  }
  const pos = ctx.posOf(node, fallbackPos);
  // The parent's position when it is the same one.
  const at = parent !== undefined && parent.path === path && parent.pos === pos ? parent : { path, pos };
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
    let i = 0;
    for (const raw of n.items) {
      const path = ctx.paths ? indexPath(at.path, i) : at.path;
      i++;
      const v = sub(ctx, raw, path, at.pos, item, at);
      if (v === undefined) {
        ok = false;
        continue;
      }
      if (unique && seen) {
        const k = unique.key(v);
        const first = seen.get(k);
        const pos = ctx.posOf(raw, at.pos);
        if (first !== undefined) {
          ok = false;
          ctx.error({ path, pos }, `duplicate ${unique.what} ${JSON.stringify(k)} (first defined at line ${ctx.line(first)})`);
          continue;
        }
        seen.set(k, pos);
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
      const keyPos = ctx.posOf(pair.key, at.pos);
      const keyNode = pair.key;
      const keyText = isScalar(keyNode) ? (typeof keyNode.value === 'number' ? keyNode.value : String(keyNode.value)) : '?';
      const path = ctx.paths ? dataKeyPath(at.path, keyText) : at.path;
      const k = sub(ctx, keyNode, path, keyPos, key, at);
      const v = sub(ctx, pair.value, path, keyPos, value, at);
      if (k === undefined || v === undefined) {
        ok = false;
        continue;
      }
      if (out.has(k)) {
        ok = false;
        ctx.error({ path, pos: keyPos }, `duplicate key ${JSON.stringify(k)}`);
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
  // keys in the same order, so most lookups are one
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
        ctx.error({ path: at.path, pos: ctx.posOf(pair.key, at.pos) }, `keys of ${what} must be strings`);
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
        const keyAt = { path: fieldPath(at.path, name), pos: ctx.posOf(pair.key, at.pos) };
        if (unknownKeys === 'error') {
          ok = false;
          ctx.error(keyAt, msg);
        } else {
          ctx.warn(keyAt, `${msg}; it is ignored`);
        }
        continue;
      }
      const earlier = pairs[idx];
      if (earlier !== undefined) {
        // Checked here rather than with the parser's uniqueKeys, which compares every key of a
        // map with every other one.
        ok = false;
        ctx.error(
          { path: fieldPath(at.path, name), pos: ctx.posOf(pair.key, at.pos) },
          `duplicate key ${JSON.stringify(name)} in ${what} (first at line ${ctx.line(ctx.posOf(earlier.key, at.pos))})`,
        );
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
      const v = sub(ctx, pair.value, ctx.paths ? fieldPath(at.path, key) : at.path, ctx.posOf(pair.key, at.pos), field.parse, at);
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
const anything: Parser<true> = (n, at, ctx) => {
  // Not modelled, but walked within the budget: aliases below it would expand in /config_dump.
  const stack: unknown[] = [n];
  while (stack.length > 0) {
    let node = stack.pop();
    if (!ctx.step(at)) return undefined;
    if (isAlias(node)) node = ctx.resolveAlias(node);
    if (isMap(node)) for (const p of node.items) stack.push(p.key, p.value);
    else if (isSeq(node)) for (const item of node.items) stack.push(item);
  }
  return true;
};

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
  const keyPos = ctx.posOf(pair.key, at.pos);
  if (k === 'Presence') return { kind: 'presence' };
  if (k === 'Exact' || k === 'Prefix' || k === 'Suffix') {
    const v = sub(ctx, pair.value, ctx.paths ? fieldPath(at.path, k) : at.path, keyPos, str, at);
    return v === undefined ? undefined : { kind: STRING_MATCH_KINDS[k], value: v };
  }
  return ctx.error({ path: at.path, pos: keyPos }, `${JSON.stringify(String(k))} is not a StringMatch kind; ${expected}`);
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

function parseIstioDocument(map: YAMLMap, docPos: number, ctx: Ctx): IstioDocument | undefined {
  const field = (name: string): { text: string | undefined; pos: number } => {
    const pair = map.items.find((p) => isScalar(p.key) && p.key.value === name);
    const text = pair && isScalar(pair.value) && typeof pair.value.value === 'string' ? pair.value.value : undefined;
    return { text, pos: ctx.posOf(pair?.key, docPos) };
  };
  const apiVersion = field('apiVersion');
  const kind = field('kind');
  let ok = true;
  if (!apiVersion.text || !ISTIO_API_VERSIONS.includes(apiVersion.text)) {
    ok = false;
    ctx.error(
      { path: 'apiVersion', pos: apiVersion.pos },
      `${apiVersion.text === undefined ? 'missing or non-string apiVersion' : `unsupported apiVersion ${JSON.stringify(apiVersion.text)}`}; expected ${ISTIO_API_VERSIONS.join(' or ')}`,
    );
  }
  if (!kind.text || !ISTIO_KINDS.includes(kind.text)) {
    ok = false;
    ctx.error(
      { path: 'kind', pos: kind.pos },
      `${kind.text === undefined ? 'missing or non-string kind' : `unsupported kind ${JSON.stringify(kind.text)}`}; expected ${ISTIO_KINDS.join(' or ')}`,
    );
  }
  if (!ok || !ctx.doc) return undefined;
  // Duplicate keys (toJS would keep the last one silently).
  visit(ctx.doc, {
    Map: (_key, m) => {
      const seen = new Set<unknown>();
      for (const p of m.items) {
        const k = isScalar(p.key) ? p.key.value : undefined;
        if (k === undefined) continue;
        if (seen.has(k)) {
          ok = false;
          ctx.error({ path: '', pos: ctx.posOf(p.key, docPos) }, `duplicate key ${JSON.stringify(k)}`);
        }
        seen.add(k);
      }
    },
  });
  if (!ok) return undefined;
  let doc: unknown;
  try {
    // The `yaml` package's own bound on alias expansion, the same budget as the walk's.
    doc = ctx.doc.toJS({ maxAliasCount: ctx.budget });
  } catch (e) {
    return ctx.error({ path: '', pos: docPos }, `cannot read document: ${e instanceof Error ? e.message : String(e)}`);
  }
  return { apiVersion: apiVersion.text!, kind: kind.text!, line: ctx.line(docPos), doc };
}

/** What the parser says when a document nests deeper than its recursion can follow. */
const STACK_EXHAUSTED = /Maximum call stack size exceeded/i;

/**
 * Options for the `yaml` package. Duplicate keys are checked by the validator (one lookup per key;
 * the package's uniqueKeys compares each key with every other of its map, quadratic for a hostile
 * map), the CST is not kept, and no LineCounter: lines come from node offsets when needed.
 */
const YAML_OPTIONS = { prettyErrors: false, uniqueKeys: false, keepSourceTokens: false, logLevel: 'silent' } as const;

function parseStream(text: string, fileName: string): LocalConfigResult {
  const ctx = new Ctx(fileName, text);
  const docs = parseAllDocuments(text, YAML_OPTIONS);
  const yamlProblem = (e: { pos: [number, number]; message: string }, severity: 'error' | 'warning'): void => {
    const at = { path: '', pos: e.pos[0] };
    if (severity === 'warning') ctx.warn(at, `YAML: ${e.message}`);
    else if (STACK_EXHAUSTED.test(e.message)) ctx.error(at, 'the YAML nests too deeply to be read (a ztunnel config nests fewer than 20 levels)');
    else ctx.error(at, `YAML syntax: ${e.message}`);
  };
  if ('empty' in docs) {
    for (const e of docs.errors) yamlProblem(e, 'error');
    for (const w of docs.warnings) yamlProblem(w, 'warning');
  }

  const snapshot: LocalConfigSnapshot = { workloads: [], services: [], policies: [], rootNamespace: DEFAULT_ROOT_NAMESPACE, istioDocuments: [] };
  let ztunnelDocLine: number | undefined;
  let documents = 0;
  for (const doc of docs) {
    for (const w of doc.warnings) yamlProblem(w, 'warning');
    if (doc.errors.length > 0) {
      // A broken document is not validated further: its tree is partial and would add noise.
      documents++;
      for (const e of doc.errors) yamlProblem(e, 'error');
      continue;
    }
    ctx.setDoc(doc);
    let contents: unknown = doc.contents;
    if (isAlias(contents)) contents = ctx.resolveAlias(contents);
    if (isNullish(contents)) continue; // empty document (`---` alone, comments only)
    documents++;
    const pos = ctx.posOf(contents, 0);
    if (!isMap(contents)) {
      ctx.error({ path: '', pos }, `a document must be a map (the ztunnel form or an Istio resource), got ${describe(isScalar(contents) || isSeq(contents) ? contents : null)}`);
      continue;
    }
    if (contents.items.some((p) => isScalar(p.key) && (p.key.value === 'apiVersion' || p.key.value === 'kind'))) {
      const istio = parseIstioDocument(contents, pos, ctx);
      if (istio) snapshot.istioDocuments.push(istio);
      continue;
    }
    if (ztunnelDocLine !== undefined) {
      ctx.error({ path: '', pos }, `only one document in the ztunnel form (workloads/services/policies) is allowed; the first one starts at line ${ztunnelDocLine}`);
      continue;
    }
    ztunnelDocLine = ctx.line(pos);
    const top = sub(ctx, contents, '', pos, TOP_LEVEL);
    if (top) {
      snapshot.workloads = top.workloads;
      snapshot.services = top.services;
      snapshot.policies = top.policies;
      snapshot.rootNamespace = top.rootNamespace;
    }
  }
  const warnings = withCount(ctx.warnings, ctx.moreWarnings, fileName, 'warning');
  if (ctx.errors.length > 0) return { ok: false, errors: withCount(ctx.errors, ctx.moreErrors, fileName, 'error'), warnings };
  return { ok: true, value: snapshot, warnings, documents };
}

/** The listed problems, plus one line counting those left out. */
function withCount(listed: LocalConfigProblem[], more: number, file: string, severity: 'error' | 'warning'): LocalConfigProblem[] {
  if (more === 0) return listed;
  const kind = severity === 'error' ? 'errors' : 'warnings';
  const message = `${more} more ${kind} not listed (${listed.length + more} in all; the first ${listed.length} are listed)`;
  return [...listed, { file, line: listed[listed.length - 1]?.line ?? 1, path: '', message, severity }];
}

/**
 * Parses and fully validates a local config file (config.md §2; multi-document per "Beyond" (b)).
 * Never throws: every problem is returned with file, line and field path. Synchronous and
 * CPU-bound (about 1 s for 10,000 workloads): the daemon calls it through local-parse.ts, on a
 * worker thread with a deadline.
 */
export function parseLocalConfig(text: string, fileName: string): LocalConfigResult {
  try {
    return parseStream(text, fileName);
  } catch (e) {
    // Defensive: the walker is written not to throw; if it does, report instead of crashing.
    const message =
      e instanceof RangeError && STACK_EXHAUSTED.test(e.message)
        ? 'the YAML nests too deeply to be read (a ztunnel config nests fewer than 20 levels)'
        : `internal error while reading the file: ${e instanceof Error ? e.message : String(e)}`;
    return { ok: false, errors: [{ file: fileName, line: 1, path: '', message, severity: 'error' }], warnings: [] };
  }
}
