// Compiles an Authorization (ztunnel form, policy/model.ts) once into matcher objects, and holds
// the ONE implementation of the match semantics of policy.md §4. evaluate.ts and explain.ts both
// walk policies with the functions exported here, so explain can never disagree with the data path.
//
// Shape of the walk (policy.md §4, istio/ztunnel rbac.rs):
//   policy: rules empty → never matches; else any rule matches
//   rule:   every clause matches; no clauses → matches
//   clause: any non-empty match matches; no matches → satisfied; only empty matches → NOT satisfied
//   match:  all 12 lists empty → skipped; else every (positive, negative) pair passes:
//           positive empty → pass, else any element; negative empty → pass, else no element.
// The fields of a match are checked in Rust's order (destination IPs, source IPs, destination
// ports, service accounts, principals, namespaces) so "the first field that failed" is stable.
import { canonicalIp, ipToBytes, type Cidr } from '../core/net.js';
import { principalOf, type Identity } from '../core/spiffe.js';
import {
  policyKey,
  type Authorization,
  type Match,
  type PolicyAction,
  type ServiceAccountMatch,
  type StringMatch,
} from './model.js';

/** Field names of a Match, in evaluation order (positive before its negative). */
export const MATCH_FIELDS = [
  'destinationIps', 'notDestinationIps',
  'sourceIps', 'notSourceIps',
  'destinationPorts', 'notDestinationPorts',
  'serviceAccounts', 'notServiceAccounts',
  'principals', 'notPrincipals',
  'namespaces', 'notNamespaces',
] as const;
export type MatchField = (typeof MATCH_FIELDS)[number];

/** Why a match did not match: a failing field, or 'empty' (all 12 lists empty → skipped). */
export type MatchFailure = MatchField | 'empty';

/** An IP as 1 (IPv4) or 4 (IPv6) unsigned 32-bit words. */
export interface PreparedIp {
  readonly v6: boolean;
  readonly w: readonly number[];
}

interface CompiledCidr {
  readonly v6: boolean;
  readonly net: readonly number[]; // masked
  readonly mask: readonly number[];
}

type CidrSet = readonly CompiledCidr[];

export interface CompiledMatch {
  readonly source: Match;
  readonly empty: boolean;
  // null ⇔ the list is empty (the pair half passes)
  readonly destinationIps: CidrSet | null;
  readonly notDestinationIps: CidrSet | null;
  readonly sourceIps: CidrSet | null;
  readonly notSourceIps: CidrSet | null;
  readonly destinationPorts: PortSet | null;
  readonly notDestinationPorts: PortSet | null;
  readonly serviceAccounts: readonly ServiceAccountMatch[] | null;
  readonly notServiceAccounts: readonly ServiceAccountMatch[] | null;
  readonly principals: readonly StringMatch[] | null;
  readonly notPrincipals: readonly StringMatch[] | null;
  readonly namespaces: readonly StringMatch[] | null;
  readonly notNamespaces: readonly StringMatch[] | null;
}

export type CompiledClause = readonly CompiledMatch[];
export type CompiledRule = readonly CompiledClause[];

export interface CompiledPolicy {
  readonly key: string;
  readonly source: Authorization;
  readonly action: PolicyAction;
  readonly dryRun: boolean;
  readonly rules: readonly CompiledRule[];
}

/** The connection being judged, parsed once per decision (policy.md §4 "The connection being judged"). */
export interface PreparedConn {
  readonly src: PreparedIp | null; // null: unparsable → matches no CIDR
  readonly dst: PreparedIp | null;
  readonly dstPort: number;
  readonly identity: Identity | null;
  /** `<td>/ns/<ns>/sa/<sa>` (spiffe:// stripped); null without identity → no StringMatch matches. */
  readonly principal: string | null;
  /** Peer namespace; "" without identity (so only Exact "" / Prefix "" / Suffix "" match it). */
  readonly namespace: string;
}

// ---------------------------------------------------------------------------------------------
// IPs and CIDRs

/** Fast path for dotted-quad IPv4; falls back to core/net for everything else. */
export function prepareIp(ip: string): PreparedIp | null {
  const v4 = parseDottedQuad(ip);
  if (v4 !== null) return { v6: false, w: [v4] };
  const canon = canonicalIp(ip); // maps ::ffff:a.b.c.d to IPv4 (capture.md §3)
  if (!canon) return null;
  const bytes = ipToBytes(canon);
  return bytes ? wordsOf(bytes) : null;
}

function parseDottedQuad(s: string): number | null {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    if (ch >= 48 && ch <= 57) {
      if (digits > 0 && octet === 0) return null; // leading zero
      octet = octet * 10 + (ch - 48);
      if (++digits > 3 || octet > 255) return null;
    } else if (ch === 46) {
      if (digits === 0 || ++dots > 3) return null;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
    } else {
      return null;
    }
  }
  if (dots !== 3 || digits === 0) return null;
  return (value * 256 + octet) >>> 0;
}

function wordsOf(bytes: Uint8Array): PreparedIp | null {
  if (bytes.length !== 4 && bytes.length !== 16) return null;
  const w: number[] = [];
  for (let i = 0; i < bytes.length; i += 4) {
    w.push(((bytes[i]! << 24) | (bytes[i + 1]! << 16) | (bytes[i + 2]! << 8) | bytes[i + 3]!) >>> 0);
  }
  return { v6: bytes.length === 16, w };
}

function compileCidr(c: Cidr): CompiledCidr | null {
  const ip = wordsOf(c.bytes);
  if (!ip) return null;
  const mask: number[] = [];
  const net: number[] = [];
  let bits = c.prefix;
  for (const word of ip.w) {
    const take = Math.max(0, Math.min(32, bits));
    const m = take === 0 ? 0 : (0xffffffff << (32 - take)) >>> 0;
    mask.push(m);
    net.push((word & m) >>> 0);
    bits -= take;
  }
  return { v6: ip.v6, net, mask };
}

function cidrSetOf(list: readonly Cidr[]): CidrSet | null {
  if (list.length === 0) return null;
  // An invalid address is dropped from its Match (xds.md §6); the list still counts as declared.
  const out: CompiledCidr[] = [];
  for (const c of list) {
    const cc = compileCidr(c);
    if (cc) out.push(cc);
  }
  return out;
}

/** CIDR containment; an address of the other family never matches (Rust IpNet::contains). */
function cidrSetHas(set: CidrSet, ip: PreparedIp | null): boolean {
  if (ip === null) return false;
  for (let i = 0; i < set.length; i++) {
    const c = set[i]!;
    if (c.v6 !== ip.v6) continue;
    if (!ip.v6) {
      if (((ip.w[0]! & c.mask[0]!) >>> 0) === c.net[0]) return true;
      continue;
    }
    if (
      ((ip.w[0]! & c.mask[0]!) >>> 0) === c.net[0] &&
      ((ip.w[1]! & c.mask[1]!) >>> 0) === c.net[1] &&
      ((ip.w[2]! & c.mask[2]!) >>> 0) === c.net[2] &&
      ((ip.w[3]! & c.mask[3]!) >>> 0) === c.net[3]
    ) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Ports, strings, service accounts

/** Small port lists are scanned (a plain array, no wrapper: one pointer less per check); long ones use a Set. */
type PortSet = readonly number[] | ReadonlySet<number>;

function portSetOf(list: readonly number[]): PortSet | null {
  if (list.length === 0) return null;
  return list.length <= 8 ? list.slice() : new Set(list);
}

function portSetHas(p: PortSet, port: number): boolean {
  if (!Array.isArray(p)) return (p as ReadonlySet<number>).has(port);
  for (let i = 0; i < p.length; i++) if (p[i] === port) return true;
  return false;
}

/** StringMatch semantics (policy.md §4): exact / starts-with / ends-with / non-empty. */
export function stringMatches(m: StringMatch, s: string): boolean {
  switch (m.kind) {
    case 'exact': return s === m.value;
    case 'prefix': return s.startsWith(m.value);
    case 'suffix': return s.endsWith(m.value);
    case 'presence': return s.length > 0;
  }
}

function anyString(list: readonly StringMatch[], s: string | null): boolean {
  if (s === null) return false; // no identity: principals never match (rbac.rs matches_principal)
  for (let i = 0; i < list.length; i++) if (stringMatches(list[i]!, s)) return true;
  return false;
}

function anyServiceAccount(list: readonly ServiceAccountMatch[], id: Identity | null): boolean {
  if (id === null) return false; // no identity → no service-account match
  for (let i = 0; i < list.length; i++) {
    const sa = list[i]!;
    if (sa.namespace === id.namespace && sa.serviceAccount === id.serviceAccount) return true;
  }
  return false;
}

const nonEmpty = <T>(l: readonly T[]): readonly T[] | null => (l.length === 0 ? null : l);

function compileMatch(m: Match): CompiledMatch {
  const empty = MATCH_FIELDS.every((f) => m[f].length === 0);
  return {
    source: m,
    empty,
    destinationIps: cidrSetOf(m.destinationIps),
    notDestinationIps: cidrSetOf(m.notDestinationIps),
    sourceIps: cidrSetOf(m.sourceIps),
    notSourceIps: cidrSetOf(m.notSourceIps),
    destinationPorts: portSetOf(m.destinationPorts),
    notDestinationPorts: portSetOf(m.notDestinationPorts),
    serviceAccounts: nonEmpty(m.serviceAccounts),
    notServiceAccounts: nonEmpty(m.notServiceAccounts),
    principals: nonEmpty(m.principals),
    notPrincipals: nonEmpty(m.notPrincipals),
    namespaces: nonEmpty(m.namespaces),
    notNamespaces: nonEmpty(m.notNamespaces),
  };
}

// ---------------------------------------------------------------------------------------------
// Compilation cache

const cache = new WeakMap<Authorization, CompiledPolicy>();

/**
 * Compiles a policy once; later calls with the same object return the cached result (keyed by
 * object identity, so a store that replaces a policy object gets a fresh compile and the old one
 * is collected with it). Policies are frozen values, never mutated in place.
 */
export function compilePolicy(p: Authorization): CompiledPolicy {
  const hit = cache.get(p);
  if (hit) return hit;
  const compiled: CompiledPolicy = {
    key: policyKey(p),
    source: p,
    action: p.action,
    dryRun: p.dryRun,
    rules: p.rules.map((rule) => rule.map((clause) => clause.map(compileMatch))),
  };
  cache.set(p, compiled);
  return compiled;
}

export interface ConnInfo {
  readonly srcIp: string;
  readonly srcIdentity: Identity | null;
  readonly dstIp: string;
  /** The resolved target port (never 15008, never the Service port; policy.md §4). */
  readonly dstPort: number;
}

export function prepareConn(conn: ConnInfo): PreparedConn {
  const id = conn.srcIdentity;
  return {
    src: prepareIp(conn.srcIp),
    dst: prepareIp(conn.dstIp),
    dstPort: conn.dstPort,
    identity: id,
    principal: id ? principalOf(id) : null,
    namespace: id ? id.namespace : '',
  };
}

// ---------------------------------------------------------------------------------------------
// The walk. Every caller (evaluate, explain) goes through these four functions.

/** null when the match matches; otherwise the first failing field, or 'empty'. */
export function matchFailure(m: CompiledMatch, c: PreparedConn): MatchFailure | null {
  if (m.empty) return 'empty';
  if (m.destinationIps && !cidrSetHas(m.destinationIps, c.dst)) return 'destinationIps';
  if (m.notDestinationIps && cidrSetHas(m.notDestinationIps, c.dst)) return 'notDestinationIps';
  if (m.sourceIps && !cidrSetHas(m.sourceIps, c.src)) return 'sourceIps';
  if (m.notSourceIps && cidrSetHas(m.notSourceIps, c.src)) return 'notSourceIps';
  if (m.destinationPorts && !portSetHas(m.destinationPorts, c.dstPort)) return 'destinationPorts';
  if (m.notDestinationPorts && portSetHas(m.notDestinationPorts, c.dstPort)) return 'notDestinationPorts';
  if (m.serviceAccounts && !anyServiceAccount(m.serviceAccounts, c.identity)) return 'serviceAccounts';
  if (m.notServiceAccounts && anyServiceAccount(m.notServiceAccounts, c.identity)) return 'notServiceAccounts';
  if (m.principals && !anyString(m.principals, c.principal)) return 'principals';
  if (m.notPrincipals && anyString(m.notPrincipals, c.principal)) return 'notPrincipals';
  if (m.namespaces && !anyString(m.namespaces, c.namespace)) return 'namespaces';
  if (m.notNamespaces && anyString(m.notNamespaces, c.namespace)) return 'notNamespaces';
  return null;
}

/** Clause result: index of the first satisfying match, CLAUSE_EMPTY, or CLAUSE_FAILED. */
export const CLAUSE_EMPTY = -2;
export const CLAUSE_FAILED = -1;

export function clauseResult(clause: CompiledClause, c: PreparedConn): number {
  if (clause.length === 0) return CLAUSE_EMPTY; // a clause with no matches is satisfied
  for (let i = 0; i < clause.length; i++) {
    if (matchFailure(clause[i]!, c) === null) return i;
  }
  return CLAUSE_FAILED; // includes "every match empty"
}

/** -1 when every clause is satisfied (the rule matches), else the index of the first failing clause. */
export function firstFailingClause(rule: CompiledRule, c: PreparedConn): number {
  for (let i = 0; i < rule.length; i++) {
    if (clauseResult(rule[i]!, c) === CLAUSE_FAILED) return i;
  }
  return -1;
}

/** Index of the first matching rule, or -1 (always -1 when the policy has no rules). */
export function firstMatchingRule(p: CompiledPolicy, c: PreparedConn): number {
  const rules = p.rules;
  for (let i = 0; i < rules.length; i++) {
    if (firstFailingClause(rules[i]!, c) === -1) return i;
  }
  return -1;
}
