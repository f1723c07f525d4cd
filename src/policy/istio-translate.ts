// istiod's translation of Istio AuthorizationPolicy / PeerAuthentication into ztunnel's
// Authorization form, for the local file (config.md "Beyond the reference" (b)). Reproduces
// policy.md §5–§6 (istio/istio pilot/pkg/serviceregistry/ambient authorization.go, policies.go,
// workloads.go) with two local-mode substitutions: document order replaces creationTimestamp (a
// lower `index` is older) and the dry-run annotation is honoured (as istiod does with
// AMBIENT_ENABLE_DRY_RUN_AUTHORIZATION_POLICY=true).
//
// Pure: malformed documents become `errors` (file, line, message), never exceptions; the caller
// decides whether errors reject the whole file. Statuses istiod would write on the resource become
// `warnings`.
import { isIPv4, isIPv6 } from 'node:net';
import { cidrFromBytes, ipToBytes, type Cidr } from '../core/net.js';
import {
  emptyMatch,
  policyKey,
  type Authorization,
  type Match,
  type PolicyAction,
  type ServiceAccountMatch,
  type StringMatch,
} from './model.js';

export interface IstioDocument {
  readonly kind: 'AuthorizationPolicy' | 'PeerAuthentication';
  /** The parsed YAML document (plain JS values). */
  readonly doc: unknown;
  readonly line: number;
  readonly file: string;
  /** Position in the file's document stream; lower = older (replaces creationTimestamp). */
  readonly index: number;
}

export interface TranslateWorkload {
  readonly uid: string;
  readonly namespace: string;
  readonly labels: ReadonlyMap<string, string>;
}

export interface TranslateInput {
  readonly documents: readonly IstioDocument[];
  readonly workloads: readonly TranslateWorkload[];
  readonly rootNamespace: string;
  /** Accepted for the waypoint allowance of policy.md §6; not needed by the translations here. */
  readonly trustDomain?: string;
}

export interface TranslateIssue {
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

export interface TranslateResult {
  readonly policies: Authorization[];
  /**
   * Workload uid → keys to put in its `authorizationPolicies`, in istiod's order: the sorted keys
   * of the selector AuthorizationPolicies, then the sorted PeerAuthentication-derived keys
   * (static strict and/or the workload's derived port-level policy). Every workload has an entry.
   */
  readonly attachments: Map<string, string[]>;
  readonly warnings: TranslateIssue[];
  readonly errors: TranslateIssue[];
}

export const STATIC_STRICT_NAME = 'istio_converted_static_strict';
export const derivedPeerAuthName = (name: string): string => `converted_peer_authentication_${name}`;

const HTTP_RULE_PREFIX = 'ztunnel does not support HTTP attributes (found: ';
const HTTP_RULE_MIDDLE = '). In ambient mode you must use a waypoint proxy to enforce HTTP rules. ';
const HTTP_ALLOW =
  'Within an ALLOW policy, rules matching HTTP attributes are omitted. This will be more restrictive than requested.';
const HTTP_DENY_MIXED =
  'DENY policy with HTTP attributes is enforced without the HTTP rules. This will be more restrictive than requested.';
const HTTP_DENY_NO_EFFECT =
  'After omitting unsupported HTTP attributes, this DENY policy has no enforceable rules at ztunnel ' +
  'and will have no effect. Deploy a waypoint proxy and use a targetRef to enforce this policy.';

/** `when` keys ztunnel can enforce (policy.md §5 clause 3); any other key is an HTTP attribute. */
const L4_WHEN_KEYS = new Set(['source.ip', 'source.namespace', 'source.principal', 'destination.ip', 'destination.port']);

const SOURCE_FIELDS = [
  'principals', 'notPrincipals', 'requestPrincipals', 'notRequestPrincipals',
  'namespaces', 'notNamespaces', 'ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks',
  'serviceAccounts', 'notServiceAccounts', 'trustDomains', 'notTrustDomains',
] as const;
type SourceField = (typeof SOURCE_FIELDS)[number];
const SOURCE_L7: readonly SourceField[] = ['remoteIpBlocks', 'notRemoteIpBlocks', 'requestPrincipals', 'notRequestPrincipals'];

const OPERATION_FIELDS = ['hosts', 'notHosts', 'ports', 'notPorts', 'methods', 'notMethods', 'paths', 'notPaths'] as const;
type OperationField = (typeof OPERATION_FIELDS)[number];
const OPERATION_L7: readonly OperationField[] = ['hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths'];

type MtlsMode = 'UNSET' | 'DISABLE' | 'PERMISSIVE' | 'STRICT';
const MTLS_MODES: readonly MtlsMode[] = ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'];

// ---------------------------------------------------------------------------------------------
// Parsed (validated) documents

interface Meta {
  readonly index: number;
  readonly file: string;
  readonly line: number;
  readonly name: string;
  readonly namespace: string;
}

/** `null`: no selector at all; otherwise the matchLabels (empty when absent or `{}`). */
type Selector = ReadonlyMap<string, string> | null;

interface ParsedCondition { readonly key: string; readonly values: string[]; readonly notValues: string[] }
interface ParsedRule {
  readonly from: Array<Record<SourceField, string[]>>;
  readonly to: Array<Record<OperationField, string[]>>;
  readonly when: ParsedCondition[];
}
interface ParsedAuthz extends Meta {
  readonly dryRunAnnotation: string | undefined;
  readonly selector: Selector;
  readonly hasTargetRefs: boolean;
  readonly action: string;
  readonly rules: ParsedRule[];
}
interface ParsedPeerAuth extends Meta {
  readonly selector: Selector;
  readonly mode: MtlsMode;
  /** Ascending by port (istiod iterates maps.SeqStable). null when `portLevelMtls` is absent. */
  readonly portLevel: Array<{ port: number; mode: MtlsMode }> | null;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Collects the errors of one document; every message names the resource and the field path. */
class DocReader {
  ok = true;
  label: string;
  constructor(readonly d: IstioDocument, private readonly errors: TranslateIssue[]) {
    this.label = `${d.kind} (document ${d.index + 1})`;
  }
  fail(path: string, message: string): void {
    this.ok = false;
    this.errors.push({ file: this.d.file, line: this.d.line, message: `${this.label}: ${path ? `${path}: ` : ''}${message}` });
  }
  record(v: unknown, path: string): Record<string, unknown> | undefined {
    if (v === undefined || v === null) return undefined;
    if (!isRecord(v)) { this.fail(path, 'expected a map'); return undefined; }
    return v;
  }
  known(r: Record<string, unknown>, path: string, keys: readonly string[]): void {
    for (const k of Object.keys(r)) if (!keys.includes(k)) this.fail(path ? `${path}.${k}` : k, 'unknown field');
  }
  /** A list of strings; numbers are accepted as their decimal text (YAML `ports: [8080]`). */
  strings(v: unknown, path: string): string[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) { this.fail(path, 'expected a list of strings'); return []; }
    const out: string[] = [];
    v.forEach((x, i) => {
      if (typeof x === 'string') out.push(x);
      else if (typeof x === 'number' && Number.isFinite(x)) out.push(String(x));
      else this.fail(`${path}[${i}]`, 'expected a string');
    });
    return out;
  }
  list(v: unknown, path: string): unknown[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) { this.fail(path, 'expected a list'); return []; }
    return v;
  }
  labels(v: unknown, path: string): Map<string, string> {
    const out = new Map<string, string>();
    const r = this.record(v, path);
    if (r) for (const [k, x] of Object.entries(r)) {
      if (typeof x === 'string') out.set(k, x);
      else if (typeof x === 'number' || typeof x === 'boolean') out.set(k, String(x));
      else this.fail(`${path}.${k}`, 'expected a string');
    }
    return out;
  }
  selector(spec: Record<string, unknown>): Selector {
    if (spec.selector === undefined || spec.selector === null) return null;
    const sel = this.record(spec.selector, 'spec.selector');
    if (!sel) return null;
    this.known(sel, 'spec.selector', ['matchLabels']);
    return this.labels(sel.matchLabels, 'spec.selector.matchLabels');
  }
  meta(): Meta | undefined {
    const doc = this.d.doc;
    if (!isRecord(doc)) { this.fail('', 'expected a map'); return undefined; }
    const md = this.record(doc.metadata, 'metadata');
    const name = md?.name;
    const namespace = md?.namespace;
    if (typeof name !== 'string' || name === '') this.fail('metadata.name', 'required (a non-empty string)');
    if (typeof namespace !== 'string' || namespace === '') {
      this.fail('metadata.namespace', 'required (a non-empty string; the local file has no default namespace)');
    }
    if (typeof name !== 'string' || typeof namespace !== 'string' || !name || !namespace) return undefined;
    this.label = `${this.d.kind} ${namespace}/${name}`;
    return { index: this.d.index, file: this.d.file, line: this.d.line, name, namespace };
  }
}

function parseAuthz(d: IstioDocument, errors: TranslateIssue[]): ParsedAuthz | undefined {
  const r = new DocReader(d, errors);
  const meta = r.meta();
  if (!meta) return undefined;
  const doc = d.doc as Record<string, unknown>;
  const md = doc.metadata as Record<string, unknown>;
  const annotations = r.labels(md.annotations, 'metadata.annotations');
  const spec = r.record(doc.spec, 'spec') ?? {};
  r.known(spec, 'spec', ['selector', 'targetRef', 'targetRefs', 'action', 'provider', 'rules']);
  const selector = r.selector(spec);
  const hasTargetRefs =
    (Array.isArray(spec.targetRefs) && spec.targetRefs.length > 0) || (spec.targetRef !== undefined && spec.targetRef !== null);
  let action = 'ALLOW';
  if (spec.action !== undefined && spec.action !== null) {
    if (typeof spec.action !== 'string' || !['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'].includes(spec.action)) {
      r.fail('spec.action', `must be one of ALLOW, DENY, AUDIT, CUSTOM (got ${JSON.stringify(spec.action)})`);
    } else {
      action = spec.action;
    }
  }
  const rules: ParsedRule[] = [];
  r.list(spec.rules, 'spec.rules').forEach((raw, i) => {
    const path = `spec.rules[${i}]`;
    const rule = r.record(raw, path) ?? {};
    r.known(rule, path, ['from', 'to', 'when']);
    const from = r.list(rule.from, `${path}.from`).map((f, j) => {
      const fp = `${path}.from[${j}]`;
      const fr = r.record(f, fp) ?? {};
      r.known(fr, fp, ['source']);
      const src = r.record(fr.source, `${fp}.source`);
      if (!src) r.fail(`${fp}.source`, 'required');
      const s = src ?? {};
      r.known(s, `${fp}.source`, SOURCE_FIELDS);
      return Object.fromEntries(SOURCE_FIELDS.map((k) => [k, r.strings(s[k], `${fp}.source.${k}`)])) as Record<SourceField, string[]>;
    });
    const to = r.list(rule.to, `${path}.to`).map((t, j) => {
      const tp = `${path}.to[${j}]`;
      const tr = r.record(t, tp) ?? {};
      r.known(tr, tp, ['operation']);
      const op = r.record(tr.operation, `${tp}.operation`);
      if (!op) r.fail(`${tp}.operation`, 'required');
      const o = op ?? {};
      r.known(o, `${tp}.operation`, OPERATION_FIELDS);
      return Object.fromEntries(OPERATION_FIELDS.map((k) => [k, r.strings(o[k], `${tp}.operation.${k}`)])) as Record<OperationField, string[]>;
    });
    const when = r.list(rule.when, `${path}.when`).map((w, j) => {
      const wp = `${path}.when[${j}]`;
      const wr = r.record(w, wp) ?? {};
      r.known(wr, wp, ['key', 'values', 'notValues']);
      if (typeof wr.key !== 'string' || wr.key === '') r.fail(`${wp}.key`, 'required (a non-empty string)');
      return { key: typeof wr.key === 'string' ? wr.key : '', values: r.strings(wr.values, `${wp}.values`), notValues: r.strings(wr.notValues, `${wp}.notValues`) };
    });
    rules.push({ from, to, when });
  });
  if (!r.ok) return undefined;
  return { ...meta, dryRunAnnotation: annotations.get('istio.io/dry-run'), selector, hasTargetRefs, action, rules };
}

function parseMode(r: DocReader, v: unknown, path: string): MtlsMode {
  const m = r.record(v, path);
  if (!m) return 'UNSET';
  r.known(m, path, ['mode']);
  if (m.mode === undefined || m.mode === null) return 'UNSET';
  if (typeof m.mode !== 'string' || !MTLS_MODES.includes(m.mode as MtlsMode)) {
    r.fail(`${path}.mode`, `must be one of ${MTLS_MODES.join(', ')} (got ${JSON.stringify(m.mode)})`);
    return 'UNSET';
  }
  return m.mode as MtlsMode;
}

function parsePeerAuth(d: IstioDocument, errors: TranslateIssue[]): ParsedPeerAuth | undefined {
  const r = new DocReader(d, errors);
  const meta = r.meta();
  if (!meta) return undefined;
  const doc = d.doc as Record<string, unknown>;
  const spec = r.record(doc.spec, 'spec') ?? {};
  r.known(spec, 'spec', ['selector', 'mtls', 'portLevelMtls']);
  const selector = r.selector(spec);
  const mode = parseMode(r, spec.mtls, 'spec.mtls');
  let portLevel: ParsedPeerAuth['portLevel'] = null;
  if (spec.portLevelMtls !== undefined && spec.portLevelMtls !== null) {
    const pl = r.record(spec.portLevelMtls, 'spec.portLevelMtls') ?? {};
    portLevel = [];
    for (const [k, v] of Object.entries(pl)) {
      const path = `spec.portLevelMtls.${k}`;
      const port = /^\d{1,5}$/.test(k) ? Number(k) : NaN;
      if (!(port >= 1 && port <= 65535)) { r.fail(path, 'the key must be a port number 1-65535'); continue; }
      portLevel.push({ port, mode: parseMode(r, v, path) });
    }
    portLevel.sort((a, b) => a.port - b.port);
  }
  if (!r.ok) return undefined;
  return { ...meta, selector, mode, portLevel };
}

// ---------------------------------------------------------------------------------------------
// Value conversions (policy.md §5 "Value conversion")

/** `*` → presence; leading `*` → suffix; trailing `*` → prefix; else exact (istiod stringToMatch). */
export function toStringMatch(v: string): StringMatch {
  if (v === '*') return { kind: 'presence' };
  if (v.startsWith('*')) return { kind: 'suffix', value: v.slice(1) };
  if (v.endsWith('*')) return { kind: 'prefix', value: v.slice(0, -1) };
  return { kind: 'exact', value: v };
}

function toServiceAccount(v: string, policyNamespace: string): ServiceAccountMatch {
  const slash = v.indexOf('/');
  return slash >= 0
    ? { namespace: v.slice(0, slash), serviceAccount: v.slice(slash + 1) }
    : { namespace: policyNamespace, serviceAccount: v };
}

/** Decimal port (Go strconv.ParseUint base 10); unparsable or > 65535 → null (dropped). */
export function toPort(v: string): number | null {
  if (!/^\d+$/.test(v)) return null;
  const n = Number(v);
  return n <= 65535 ? n : null;
}

/** Go netip.ParseAddr: dotted quad without leading zeros, or IPv6 (an IPv4-mapped one stays IPv6). */
function parseGoAddr(s: string, allowZone: boolean): Uint8Array | null {
  let a = s;
  const zone = a.indexOf('%');
  if (zone >= 0) {
    if (!allowZone || zone === a.length - 1) return null;
    a = a.slice(0, zone);
    if (!isIPv6(a)) return null;
  }
  if (!isIPv4(a) && !isIPv6(a)) return null;
  return ipToBytes(a);
}

/** `a/n` → that prefix; bare IP → full-length prefix; unparsable → null (dropped). istiod stringToIP. */
export function toCidr(v: string): Cidr | null {
  if (v.length === 0) return null;
  const slash = v.indexOf('/');
  if (slash < 0) {
    const bytes = parseGoAddr(v, true);
    return bytes ? cidrFromBytes(bytes, bytes.length * 8) : null;
  }
  const bytes = parseGoAddr(v.slice(0, slash), false);
  const bits = v.slice(slash + 1);
  if (!bytes || !/^(0|[1-9]\d{0,2})$/.test(bits)) return null;
  const n = Number(bits);
  return n <= bytes.length * 8 ? cidrFromBytes(bytes, n) : null;
}

// ---------------------------------------------------------------------------------------------
// AuthorizationPolicy → Authorization (policy.md §5)

type Warn = (message: string) => void;

function convertList<T>(values: readonly string[], conv: (v: string) => T | null, what: string, path: string, warn: Warn): T[] {
  const out: T[] = [];
  for (const v of values) {
    const x = conv(v);
    if (x === null) warn(`${path}: ${JSON.stringify(v)} is not ${what}; dropped (as istiod does)`);
    else out.push(x);
  }
  return out;
}

function translateRule(
  action: PolicyAction, rule: ParsedRule, ns: string, path: string, l7: Set<string>, warn: Warn,
): Match[][] | null {
  let l7Found = false as boolean;
  const ports = (v: string[], p: string): number[] => convertList(v, toPort, 'a port', p, warn);
  const cidrs = (v: string[], p: string): Cidr[] => convertList(v, toCidr, 'an IP or CIDR', p, warn);
  const clauses: Match[][] = [];

  const toMatches = rule.to.map((op, j): Match => {
    for (const f of OPERATION_L7) if (op[f].length > 0) { l7Found = true; l7.add(f); }
    const p = `${path}.to[${j}].operation`;
    return { ...emptyMatch(), destinationPorts: ports(op.ports, `${p}.ports`), notDestinationPorts: ports(op.notPorts, `${p}.notPorts`) };
  });
  const fromMatches = rule.from.map((s, j): Match => {
    for (const f of SOURCE_L7) if (s[f].length > 0) { l7Found = true; l7.add(f); }
    // trustDomains / notTrustDomains are not translated at all (policy.md §5).
    const p = `${path}.from[${j}].source`;
    return {
      ...emptyMatch(),
      sourceIps: cidrs(s.ipBlocks, `${p}.ipBlocks`),
      notSourceIps: cidrs(s.notIpBlocks, `${p}.notIpBlocks`),
      namespaces: s.namespaces.map(toStringMatch),
      notNamespaces: s.notNamespaces.map(toStringMatch),
      serviceAccounts: s.serviceAccounts.map((v) => toServiceAccount(v, ns)),
      notServiceAccounts: s.notServiceAccounts.map((v) => toServiceAccount(v, ns)),
      principals: s.principals.map(toStringMatch),
      notPrincipals: s.notPrincipals.map(toStringMatch),
    };
  });
  if (toMatches.length > 0) clauses.push(toMatches);
  if (fromMatches.length > 0) clauses.push(fromMatches);
  rule.when.forEach((w, j) => {
    const p = `${path}.when[${j}]`;
    const m = emptyMatch() as { -readonly [K in keyof Match]: Match[K] };
    switch (w.key) {
      case 'source.namespace': m.namespaces = w.values.map(toStringMatch); m.notNamespaces = w.notValues.map(toStringMatch); break;
      case 'source.principal': m.principals = w.values.map(toStringMatch); m.notPrincipals = w.notValues.map(toStringMatch); break;
      case 'source.ip': m.sourceIps = cidrs(w.values, `${p}.values`); m.notSourceIps = cidrs(w.notValues, `${p}.notValues`); break;
      case 'destination.port':
        m.destinationPorts = ports(w.values, `${p}.values`); m.notDestinationPorts = ports(w.notValues, `${p}.notValues`); break;
      case 'destination.ip':
        m.destinationIps = cidrs(w.values, `${p}.values`); m.notDestinationIps = cidrs(w.notValues, `${p}.notValues`); break;
      default: break; // HTTP attribute: its Match stays empty
    }
    if (!L4_WHEN_KEYS.has(w.key)) { l7Found = true; l7.add(w.key); }
    clauses.push([m]);
  });
  // ALLOW: a rule with any HTTP attribute never matches, so it is dropped entirely.
  if (action === 'Allow' && l7Found) return null;
  return clauses;
}

const matchIsEmpty = (m: Match): boolean =>
  m.namespaces.length + m.notNamespaces.length + m.principals.length + m.notPrincipals.length +
  m.serviceAccounts.length + m.notServiceAccounts.length + m.sourceIps.length + m.notSourceIps.length +
  m.destinationIps.length + m.notDestinationIps.length + m.destinationPorts.length + m.notDestinationPorts.length === 0;

/** istiod hasEffectiveRules: some rule has no clauses, or every clause has a non-empty match. */
function hasEffectiveRules(rules: readonly Match[][][]): boolean {
  return rules.some((rule) => rule.length === 0 || rule.every((clause) => clause.some((m) => !matchIsEmpty(m))));
}

/** Go strconv.ParseBool. */
function parseGoBool(v: string): boolean | null {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return null;
}

function translateAuthz(ap: ParsedAuthz, rootNamespace: string, warn: Warn): Authorization | null {
  let dryRun = false;
  if (ap.dryRunAnnotation !== undefined && ap.dryRunAnnotation !== '') {
    const b = parseGoBool(ap.dryRunAnnotation);
    if (b === null) warn(`annotation istio.io/dry-run: ${JSON.stringify(ap.dryRunAnnotation)} is not a boolean; treated as false (as istiod does)`);
    dryRun = b ?? false;
  }
  if (ap.hasTargetRefs) {
    warn('targetRefs: this policy binds to a waypoint or gateway, not to ztunnel; ignored');
    return null;
  }
  if (ap.action === 'AUDIT' || ap.action === 'CUSTOM') {
    warn(`ztunnel does not support the ${ap.action} action`);
    return null;
  }
  const action: PolicyAction = ap.action === 'DENY' ? 'Deny' : 'Allow';
  const scope = ap.selector !== null ? 'WorkloadSelector' : ap.namespace === rootNamespace ? 'Global' : 'Namespace';
  const l7 = new Set<string>();
  const rules: Match[][][] = [];
  ap.rules.forEach((rule, i) => {
    const r = translateRule(action, rule, ap.namespace, `spec.rules[${i}]`, l7, warn);
    if (r !== null) rules.push(r);
  });
  if (l7.size > 0) {
    const tail = action === 'Deny' ? (hasEffectiveRules(rules) ? HTTP_DENY_MIXED : HTTP_DENY_NO_EFFECT) : HTTP_ALLOW;
    warn(`${HTTP_RULE_PREFIX}${[...l7].sort().join(', ')}${HTTP_RULE_MIDDLE}${tail}`);
  }
  return { name: ap.name, namespace: ap.namespace, scope, action, dryRun, rules };
}

// ---------------------------------------------------------------------------------------------
// PeerAuthentication (policy.md §6)

const presenceDenyMatch = (): Match => ({ ...emptyMatch(), notPrincipals: [{ kind: 'presence' }] });

function staticStrictPolicy(rootNamespace: string): Authorization {
  return {
    name: STATIC_STRICT_NAME, namespace: rootNamespace, scope: 'WorkloadSelector', action: 'Deny', dryRun: false,
    rules: [[[presenceDenyMatch()]]],
  };
}

const oldest = <T extends { index: number }>(list: readonly T[]): T | undefined =>
  list.reduce<T | undefined>((a, b) => (a === undefined || b.index < a.index ? b : a), undefined);

const labelsMatch = (sel: ReadonlyMap<string, string>, labels: ReadonlyMap<string, string>): boolean => {
  for (const [k, v] of sel) if (labels.get(k) !== v) return false;
  return true;
};

/**
 * The derived DENY policy of a selector PA with portLevelMtls (policy.md §6 steps 1–6; istiod
 * convertPeerAuthentication). N and M are the oldest selector-less PAs of the namespace / root.
 */
function derivedPeerAuthPolicy(pa: ParsedPeerAuth, all: readonly ParsedPeerAuth[], root: string): Authorization | null {
  if (pa.namespace === root || pa.selector === null || pa.portLevel === null || pa.portLevel.length === 0) return null;
  const nsPa = oldest(all.filter((x) => x.namespace === pa.namespace && x.selector === null));
  const rootPa = oldest(all.filter((x) => x.namespace === root && x.selector === null));
  const P = pa.mode;
  const N = nsPa?.mode; // undefined = absent
  const M = rootPa?.mode;
  const combined: Match[][] = []; // C: clauses of one combined Rule
  const extra: Match[][][] = []; // R: one Rule per STRICT port
  if (P === 'STRICT') combined.push([presenceDenyMatch()]);
  let exemption = false;
  for (const { port, mode } of pa.portLevel) {
    if (mode === 'STRICT') {
      // The last test applies whatever P is (istiod's operator precedence; policy.md §6 step 2).
      if (P === 'STRICT' || (P === 'UNSET' && N === 'STRICT') || ((N === undefined || N === 'UNSET') && M === 'STRICT')) continue;
      extra.push([[{ ...presenceDenyMatch(), destinationPorts: [port] }]]);
    } else if (mode === 'PERMISSIVE' || mode === 'DISABLE') {
      if (P === 'PERMISSIVE' || P === 'DISABLE') continue;
      if (P === 'UNSET' && !(N === 'STRICT' || (N === undefined && M === 'STRICT'))) continue;
      exemption = true;
      combined.push([{ ...emptyMatch(), notDestinationPorts: [port] }]);
    }
  }
  if (P === 'STRICT' && !exemption) return null;
  if (combined.length === 0 && extra.length === 0) return null;
  const mergeStrict = (M === 'STRICT' && (N === undefined || N === 'UNSET' || N === 'STRICT')) || N === 'STRICT';
  if (mergeStrict && exemption) combined.push([presenceDenyMatch()]);
  const rules = combined.length > 0 ? [...extra, combined] : extra;
  return {
    name: derivedPeerAuthName(pa.name), namespace: pa.namespace, scope: 'WorkloadSelector', action: 'Deny', dryRun: false, rules,
  };
}

/** PA keys a workload lists (policy.md §6 table; istiod convertedSelectorPeerAuthentications). */
function peerAuthKeysFor(w: TranslateWorkload, all: readonly ParsedPeerAuth[], root: string): string[] {
  // fetchPeerAuthentications: selector-less root PAs, and the workload namespace's PAs that select it.
  const relevant = all.filter((pa) =>
    (pa.namespace === root && pa.selector === null) ||
    (pa.namespace === w.namespace && (pa.selector === null || labelsMatch(pa.selector, w.labels))));
  const levelLess = (pa: ParsedPeerAuth): boolean => pa.selector === null || pa.selector.size === 0;
  const mesh = oldest(relevant.filter((pa) => levelLess(pa) && pa.namespace === root));
  const nsPa = oldest(relevant.filter((pa) => levelLess(pa) && pa.namespace !== root));
  const wl = oldest(relevant.filter((pa) => !levelLess(pa) && pa.namespace !== root));

  let strict = mesh ? mesh.mode === 'STRICT' : false;
  if (nsPa && nsPa.mode !== 'UNSET') strict = nsPa.mode === 'STRICT';
  let derived = '';
  if (wl) {
    if (wl.mode === 'STRICT') strict = true;
    if (wl.mode === 'PERMISSIVE' || wl.mode === 'DISABLE') strict = false;
    if (wl.portLevel !== null) {
      const ports = wl.portLevel;
      const key = `${wl.namespace}/${derivedPeerAuthName(wl.name)}`;
      if (wl.mode === 'STRICT') {
        if (ports.some((p) => p.mode === 'PERMISSIVE' || p.mode === 'DISABLE')) { derived = key; strict = false; }
      } else if (wl.mode === 'PERMISSIVE' || wl.mode === 'DISABLE') {
        if (ports.some((p) => p.mode === 'STRICT')) derived = key;
      } else if (strict) {
        // Only PERMISSIVE exceptions: DISABLE-only ports keep the static strict policy.
        if (ports.some((p) => p.mode === 'PERMISSIVE')) { derived = key; strict = false; }
      } else {
        strict = false;
        if (ports.some((p) => p.mode === 'STRICT')) derived = key;
      }
    }
  }
  const keys = new Set<string>();
  if (strict) keys.add(`${root}/${STATIC_STRICT_NAME}`);
  if (derived) keys.add(derived);
  return [...keys].sort();
}

// ---------------------------------------------------------------------------------------------

export function translateIstio(input: TranslateInput): TranslateResult {
  const warnings: TranslateIssue[] = [];
  const errors: TranslateIssue[] = [];
  const root = input.rootNamespace;
  const docs = [...input.documents].sort((a, b) => a.index - b.index);

  const authz: ParsedAuthz[] = [];
  const peerAuths: ParsedPeerAuth[] = [];
  const seen = new Set<string>();
  for (const d of docs) {
    const parsed = d.kind === 'AuthorizationPolicy' ? parseAuthz(d, errors) : parsePeerAuth(d, errors);
    if (!parsed) continue;
    const id = `${d.kind} ${parsed.namespace}/${parsed.name}`;
    if (seen.has(id)) {
      errors.push({ file: d.file, line: d.line, message: `${id}: defined twice (an earlier document has the same namespace/name)` });
      continue;
    }
    seen.add(id);
    if (d.kind === 'AuthorizationPolicy') authz.push(parsed as ParsedAuthz);
    else peerAuths.push(parsed as ParsedPeerAuth);
  }

  const policies: Authorization[] = [];
  const selectorPolicies: Array<{ key: string; namespace: string; selector: ReadonlyMap<string, string> }> = [];
  for (const ap of authz) {
    const warn: Warn = (message) => warnings.push({ file: ap.file, line: ap.line, message: `AuthorizationPolicy ${ap.namespace}/${ap.name}: ${message}` });
    const pol = translateAuthz(ap, root, warn);
    if (!pol) continue;
    policies.push(pol);
    if (pol.scope === 'WorkloadSelector' && ap.selector) {
      selectorPolicies.push({ key: policyKey(pol), namespace: pol.namespace, selector: ap.selector });
    }
  }
  for (const pa of peerAuths) {
    const pol = derivedPeerAuthPolicy(pa, peerAuths, root);
    if (pol) policies.push(pol);
  }
  if (peerAuths.length > 0) policies.push(staticStrictPolicy(root));

  const attachments = new Map<string, string[]>();
  for (const w of input.workloads) {
    const keys = selectorPolicies
      .filter((s) => (s.namespace === root || s.namespace === w.namespace) && labelsMatch(s.selector, w.labels))
      .map((s) => s.key)
      .sort();
    attachments.set(w.uid, [...keys, ...peerAuthKeysFor(w, peerAuths, root)]);
  }
  return { policies, attachments, warnings, errors };
}
