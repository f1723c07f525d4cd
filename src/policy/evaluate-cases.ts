// The shared table of authorization cases (policy.md §3–§4). evaluate.test.ts checks each row's
// decision; explain.test.ts checks that explain agrees with evaluate on every row.
import { parseCidr, type Cidr } from '../core/net.js';
import type { Identity } from '../core/spiffe.js';
import type { ConnInfo } from './compile.js';
import type { DecisionLog } from './evaluate.js';
import { emptyMatch, type Authorization, type Match, type ServiceAccountMatch, type StringMatch } from './model.js';

export interface EvaluateCase {
  readonly name: string;
  readonly policies: readonly Authorization[];
  readonly conn: ConnInfo;
  readonly allowed: boolean;
  readonly message: string;
  /** Expected deciding policy and rule (when given). */
  readonly deciding?: { readonly key: string; readonly ruleIndex: number };
  /** Expected log lines, exactly (when given). */
  readonly logs?: readonly DecisionLog[];
}

// --- builders ---------------------------------------------------------------------------------

export const exact = (value: string): StringMatch => ({ kind: 'exact', value });
export const prefix = (value: string): StringMatch => ({ kind: 'prefix', value });
export const suffix = (value: string): StringMatch => ({ kind: 'suffix', value });
export const presence: StringMatch = { kind: 'presence' };
export const sa = (namespace: string, serviceAccount: string): ServiceAccountMatch => ({ namespace, serviceAccount });

function cidr(s: string): Cidr {
  const c = parseCidr(s);
  if (!c) throw new Error(`bad CIDR in test table: ${s}`);
  return c;
}

type CidrKeys = 'sourceIps' | 'notSourceIps' | 'destinationIps' | 'notDestinationIps';
export type MatchInput = Partial<Omit<Match, CidrKeys> & Record<CidrKeys, readonly string[]>>;

export function match(spec: MatchInput): Match {
  const { sourceIps, notSourceIps, destinationIps, notDestinationIps, ...rest } = spec;
  return {
    ...emptyMatch(),
    ...rest,
    sourceIps: (sourceIps ?? []).map(cidr),
    notSourceIps: (notSourceIps ?? []).map(cidr),
    destinationIps: (destinationIps ?? []).map(cidr),
    notDestinationIps: (notDestinationIps ?? []).map(cidr),
  };
}

type Rules = Authorization['rules'];
interface PolicyOpts { readonly namespace?: string; readonly dryRun?: boolean; readonly scope?: Authorization['scope'] }

export function allow(name: string, rules: Rules, o: PolicyOpts = {}): Authorization {
  return { name, namespace: o.namespace ?? 'shop', scope: o.scope ?? 'Namespace', action: 'Allow', dryRun: o.dryRun ?? false, rules };
}
export function deny(name: string, rules: Rules, o: PolicyOpts = {}): Authorization {
  return { name, namespace: o.namespace ?? 'shop', scope: o.scope ?? 'Namespace', action: 'Deny', dryRun: o.dryRun ?? false, rules };
}
/** One rule, one clause, one match. */
export const one = (spec: MatchInput): Rules => [[[match(spec)]]];
export const ALL: Rules = [[]]; // one rule with no clauses: matches everything
export const NOTHING: Rules = []; // no rules: matches nothing

export const id = (namespace: string, serviceAccount: string, trustDomain = 'cluster.local'): Identity =>
  ({ trustDomain, namespace, serviceAccount });
export const FRONTEND = id('shop', 'frontend');

/** Default connection: frontend (10.1.0.5, mTLS) → 10.2.0.7:8080. */
export const conn = (o: Partial<ConnInfo> = {}): ConnInfo =>
  ({ srcIp: '10.1.0.5', srcIdentity: FRONTEND, dstIp: '10.2.0.7', dstPort: 8080, ...o });
export const plaintext = (o: Partial<ConnInfo> = {}): ConnInfo => conn({ srcIdentity: null, ...o });

const NO_ALLOW = 'no allow policies';
const NONE_ALLOWED = 'allow policies exist, but none allowed';
const by = (key: string): string => `allowed by: ${key}`;
const deniedBy = (key: string): string => `explicitly denied by: ${key}`;

/** Allowed by shop/a (rule 0). */
function allowedA(name: string, spec: MatchInput, c: ConnInfo = conn()): EvaluateCase {
  return { name, policies: [allow('a', one(spec))], conn: c, allowed: true, message: by('shop/a'), deciding: { key: 'shop/a', ruleIndex: 0 } };
}
/** The single ALLOW shop/a does not match. */
function refusedA(name: string, spec: MatchInput, c: ConnInfo = conn()): EvaluateCase {
  return { name, policies: [allow('a', one(spec))], conn: c, allowed: false, message: NONE_ALLOWED };
}
/** The single DENY shop/d matches. */
function deniedD(name: string, spec: MatchInput, c: ConnInfo = conn()): EvaluateCase {
  return { name, policies: [deny('d', one(spec))], conn: c, allowed: false, message: deniedBy('shop/d'), deciding: { key: 'shop/d', ruleIndex: 0 } };
}
/** The single DENY shop/d does not match (and there is no ALLOW). */
function passesD(name: string, spec: MatchInput, c: ConnInfo = conn()): EvaluateCase {
  return { name, policies: [deny('d', one(spec))], conn: c, allowed: true, message: NO_ALLOW };
}

const STATIC_STRICT = deny('istio_converted_static_strict', one({ notPrincipals: [presence] }), { namespace: 'istio-system', scope: 'WorkloadSelector' });

export const EVALUATE_CASES: readonly EvaluateCase[] = [
  // --- decision order (policy.md §3) ----------------------------------------------------------
  { name: 'no policies at all allows the connection', policies: [], conn: conn(), allowed: true, message: NO_ALLOW,
    logs: [{ msg: 'no allow policies, allow' }] },
  passesD('a DENY that does not match and no ALLOW policies allows', { destinationPorts: [9090] }),
  { name: 'allow-all (one rule with no clauses) allows', policies: [allow('a', ALL)], conn: conn(), allowed: true, message: by('shop/a'),
    deciding: { key: 'shop/a', ruleIndex: 0 }, logs: [{ msg: 'allow policy match', policy: 'shop/a' }] },
  { name: 'allow-nothing (ALLOW with no rules) denies everything', policies: [allow('a', NOTHING)], conn: conn(), allowed: false,
    message: NONE_ALLOWED, logs: [{ msg: 'no allow policies matched' }] },
  { name: 'deny-all beats allow-all', policies: [allow('a', ALL), deny('d', ALL)], conn: conn(), allowed: false, message: deniedBy('shop/d'),
    deciding: { key: 'shop/d', ruleIndex: 0 }, logs: [{ msg: 'deny policy match', policy: 'shop/d' }] },
  { name: 'a DENY with no rules never matches', policies: [deny('d', NOTHING)], conn: conn(), allowed: true, message: NO_ALLOW },
  { name: 'a DENY with no rules does not stop a matching ALLOW', policies: [deny('d', NOTHING), allow('a', ALL)], conn: conn(), allowed: true, message: by('shop/a') },
  { name: 'a DENY that matches wins over an ALLOW that also matches', policies: [allow('a', one({ destinationPorts: [8080] })), deny('d', one({ destinationPorts: [8080] }))],
    conn: conn(), allowed: false, message: deniedBy('shop/d') },
  { name: 'a DENY that does not match lets a matching ALLOW allow', policies: [deny('d', one({ destinationPorts: [9090] })), allow('a', one({ destinationPorts: [8080] }))],
    conn: conn(), allowed: true, message: by('shop/a') },
  { name: 'allow policies exist but none matches: denied', policies: [allow('a', one({ destinationPorts: [1] })), allow('b', one({ destinationPorts: [2] }))],
    conn: conn(), allowed: false, message: NONE_ALLOWED },
  { name: 'the second ALLOW that matches is named as the allowing policy', policies: [allow('a', one({ destinationPorts: [1] })), allow('b', one({ destinationPorts: [8080] }))],
    conn: conn(), allowed: true, message: by('shop/b'), deciding: { key: 'shop/b', ruleIndex: 0 } },
  { name: 'the second DENY that matches is named as the denying policy', policies: [deny('d1', one({ destinationPorts: [1] })), deny('d2', one({ destinationPorts: [8080] }))],
    conn: conn(), allowed: false, message: deniedBy('shop/d2') },
  { name: 'when two DENYs match, the first in order is named', policies: [deny('d1', ALL), deny('d2', ALL)], conn: conn(), allowed: false, message: deniedBy('shop/d1') },
  { name: 'a global DENY beats a namespace ALLOW', policies: [allow('a', ALL), deny('mesh-deny', one({ destinationPorts: [8080] }), { namespace: 'istio-system', scope: 'Global' })],
    conn: conn(), allowed: false, message: deniedBy('istio-system/mesh-deny') },
  { name: 'a selector ALLOW opens a workload closed by a namespace allow-nothing', policies: [allow('closed', NOTHING), allow('cart-open', ALL, { scope: 'WorkloadSelector' })],
    conn: conn(), allowed: true, message: by('shop/cart-open') },
  { name: 'a global ALLOW from another namespace allows', policies: [allow('mesh-allow', one({ namespaces: [exact('shop')] }), { namespace: 'istio-system', scope: 'Global' })],
    conn: conn(), allowed: true, message: by('istio-system/mesh-allow') },

  // --- rule / clause / match structure (policy.md §4) ---------------------------------------
  { name: 'a clause with no matches is satisfied', policies: [allow('a', [[[]]])], conn: conn(), allowed: true, message: by('shop/a') },
  { name: 'a clause whose only match is empty is not satisfied', policies: [allow('a', [[[emptyMatch()]]])], conn: conn(), allowed: false, message: NONE_ALLOWED },
  { name: 'a clause with several empty matches is not satisfied', policies: [allow('a', [[[emptyMatch(), emptyMatch()]]])], conn: conn(), allowed: false, message: NONE_ALLOWED },
  { name: 'an empty match is skipped and a later match in the clause can satisfy it',
    policies: [allow('a', [[[emptyMatch(), match({ destinationPorts: [8080] })]]])], conn: conn(), allowed: true, message: by('shop/a') },
  { name: 'an empty match does not satisfy a DENY (deny with only empty matches never fires)',
    policies: [deny('d', [[[emptyMatch()]]])], conn: plaintext(), allowed: true, message: NO_ALLOW },
  { name: 'all clauses of a rule must match (second clause fails)',
    policies: [allow('a', [[[match({ principals: [presence] })], [match({ destinationPorts: [9090] })]]])], conn: conn(), allowed: false, message: NONE_ALLOWED },
  { name: 'a rule with two satisfied clauses matches',
    policies: [allow('a', [[[match({ principals: [presence] })], [match({ destinationPorts: [8080] })]]])], conn: conn(), allowed: true, message: by('shop/a') },
  { name: 'any rule may match: the second rule allows',
    policies: [allow('a', [[[match({ destinationPorts: [1] })]], [[match({ destinationPorts: [8080] })]]])], conn: conn(), allowed: true, message: by('shop/a'),
    deciding: { key: 'shop/a', ruleIndex: 1 } },
  { name: 'matches in one clause are OR-ed: the second match satisfies',
    policies: [allow('a', [[[match({ destinationPorts: [1] }), match({ principals: [exact('cluster.local/ns/shop/sa/frontend')] })]]])],
    conn: conn(), allowed: true, message: by('shop/a') },
  { name: 'fields of one match are AND-ed: principal right but port wrong fails',
    policies: [allow('a', one({ principals: [exact('cluster.local/ns/shop/sa/frontend')], destinationPorts: [9090] }))], conn: conn(), allowed: false, message: NONE_ALLOWED },
  allowedA('fields of one match are AND-ed: principal, port, source and destination all right',
    { principals: [exact('cluster.local/ns/shop/sa/frontend')], destinationPorts: [8080], sourceIps: ['10.1.0.0/16'], destinationIps: ['10.2.0.7'] }),

  // --- principals -----------------------------------------------------------------------------
  allowedA('principals Exact matches the identity without spiffe://', { principals: [exact('cluster.local/ns/shop/sa/frontend')] }),
  refusedA('principals Exact with another service account does not match', { principals: [exact('cluster.local/ns/shop/sa/cart')] }),
  refusedA('principals written with spiffe:// never match', { principals: [exact('spiffe://cluster.local/ns/shop/sa/frontend')] }),
  refusedA('principals Exact of another trust domain does not match', { principals: [exact('other.domain/ns/shop/sa/frontend')] }),
  allowedA('principals Prefix matches', { principals: [prefix('cluster.local/ns/shop/')] }),
  refusedA('principals Prefix of another namespace does not match', { principals: [prefix('cluster.local/ns/pay/')] }),
  allowedA('principals Suffix matches', { principals: [suffix('/sa/frontend')] }),
  refusedA('principals Suffix of another account does not match', { principals: [suffix('/sa/admin')] }),
  allowedA('principals Presence matches any identity', { principals: [presence] }),
  refusedA('principals Presence does not match a plaintext connection', { principals: [presence] }, plaintext()),
  refusedA('principals Exact "" does not match a plaintext connection (no identity never matches)', { principals: [exact('')] }, plaintext()),
  refusedA('principals Prefix "" does not match a plaintext connection', { principals: [prefix('')] }, plaintext()),
  allowedA('principals Prefix "" matches any identity', { principals: [prefix('')] }),
  allowedA('principals list is OR-ed: the second entry matches', { principals: [exact('cluster.local/ns/a/sa/b'), exact('cluster.local/ns/shop/sa/frontend')] }),
  refusedA('principals matched but also listed in notPrincipals fails',
    { principals: [prefix('cluster.local/')], notPrincipals: [exact('cluster.local/ns/shop/sa/frontend')] }),
  deniedD('notPrincipals [Presence] matches a plaintext connection (STRICT idiom)', { notPrincipals: [presence] }, plaintext()),
  passesD('notPrincipals [Presence] does not match an mTLS connection', { notPrincipals: [presence] }),
  deniedD('notPrincipals Exact of someone else matches', { notPrincipals: [exact('cluster.local/ns/shop/sa/cart')] }),
  passesD('notPrincipals Exact of the peer itself does not match', { notPrincipals: [exact('cluster.local/ns/shop/sa/frontend')] }),
  allowedA('notPrincipals alone allows everyone else', { notPrincipals: [suffix('/sa/admin')] }),

  // --- namespaces -----------------------------------------------------------------------------
  allowedA('namespaces Exact matches the peer namespace', { namespaces: [exact('shop')] }),
  refusedA('namespaces Exact of another namespace does not match', { namespaces: [exact('pay')] }),
  allowedA('namespaces Prefix matches', { namespaces: [prefix('sh')] }),
  allowedA('namespaces Suffix matches', { namespaces: [suffix('op')] }),
  refusedA('namespaces Suffix that differs does not match', { namespaces: [suffix('-prod')] }),
  allowedA('namespaces Presence matches any identity', { namespaces: [presence] }),
  refusedA('namespaces Presence does not match a plaintext connection', { namespaces: [presence] }, plaintext()),
  allowedA('namespaces Exact "" matches a plaintext connection (namespace is the empty string)', { namespaces: [exact('')] }, plaintext()),
  refusedA('namespaces Exact does not match a plaintext connection', { namespaces: [exact('shop')] }, plaintext()),
  allowedA('namespaces ignore the trust domain', { namespaces: [exact('shop')] }, conn({ srcIdentity: id('shop', 'frontend', 'other.domain') })),
  deniedD('notNamespaces matches a peer from another namespace', { notNamespaces: [exact('pay')] }),
  passesD('notNamespaces does not match a peer from the listed namespace', { notNamespaces: [exact('shop')] }),
  deniedD('notNamespaces Exact matches a plaintext connection', { notNamespaces: [exact('shop')] }, plaintext()),

  // --- service accounts ----------------------------------------------------------------------
  allowedA('serviceAccounts matches namespace and account', { serviceAccounts: [sa('shop', 'frontend')] }),
  refusedA('serviceAccounts with another account does not match', { serviceAccounts: [sa('shop', 'cart')] }),
  refusedA('serviceAccounts with another namespace does not match', { serviceAccounts: [sa('pay', 'frontend')] }),
  refusedA('serviceAccounts never match a plaintext connection', { serviceAccounts: [sa('shop', 'frontend')] }, plaintext()),
  allowedA('serviceAccounts ignore the trust domain', { serviceAccounts: [sa('shop', 'frontend')] }, conn({ srcIdentity: id('shop', 'frontend', 'td2') })),
  passesD('notServiceAccounts listing the peer does not match', { notServiceAccounts: [sa('shop', 'frontend')] }),
  deniedD('notServiceAccounts matches another peer', { notServiceAccounts: [sa('shop', 'cart')] }),
  deniedD('notServiceAccounts matches a plaintext connection', { notServiceAccounts: [sa('shop', 'frontend')] }, plaintext()),

  // --- source IPs ---------------------------------------------------------------------------
  allowedA('sourceIps /32 matches the exact source', { sourceIps: ['10.1.0.5/32'] }),
  refusedA('sourceIps /32 of another address does not match', { sourceIps: ['10.1.0.6/32'] }),
  allowedA('sourceIps /16 contains the source', { sourceIps: ['10.1.0.0/16'] }),
  allowedA('sourceIps /24 contains its last address', { sourceIps: ['10.1.0.0/24'] }, conn({ srcIp: '10.1.0.255' })),
  refusedA('sourceIps /24 does not contain the next network', { sourceIps: ['10.1.0.0/24'] }, conn({ srcIp: '10.1.1.0' })),
  allowedA('sourceIps with host bits set still match by prefix', { sourceIps: ['10.9.9.9/8'] }),
  allowedA('sourceIps 0.0.0.0/0 matches any IPv4 source', { sourceIps: ['0.0.0.0/0'] }, conn({ srcIp: '203.0.113.9' })),
  refusedA('sourceIps 0.0.0.0/0 does not match an IPv6 source', { sourceIps: ['0.0.0.0/0'] }, conn({ srcIp: 'fd00::5' })),
  refusedA('sourceIps ::/0 does not match an IPv4 source', { sourceIps: ['::/0'] }),
  allowedA('sourceIps ::/0 matches any IPv6 source', { sourceIps: ['::/0'] }, conn({ srcIp: '2001:db8::1' })),
  allowedA('sourceIps IPv6 /64 contains the source', { sourceIps: ['fd00:1:2:3::/64'] }, conn({ srcIp: 'fd00:1:2:3:aaaa::9' })),
  refusedA('sourceIps IPv6 /64 does not contain another /64', { sourceIps: ['fd00:1:2:3::/64'] }, conn({ srcIp: 'fd00:1:2:4::9' })),
  allowedA('sourceIps IPv6 /128 matches the exact source', { sourceIps: ['fd00::5/128'] }, conn({ srcIp: 'fd00:0:0::5' })),
  refusedA('sourceIps IPv6 /128 of another address does not match', { sourceIps: ['fd00::5/128'] }, conn({ srcIp: 'fd00::6' })),
  allowedA('sourceIps IPv6 /65 boundary: address inside', { sourceIps: ['fd00::/65'] }, conn({ srcIp: 'fd00::7fff:ffff:ffff:ffff' })),
  refusedA('sourceIps IPv6 /65 boundary: address outside', { sourceIps: ['fd00::/65'] }, conn({ srcIp: 'fd00::8000:0:0:0' })),
  allowedA('sourceIps with mixed families match an IPv6 source', { sourceIps: ['10.0.0.0/8', 'fd00::/8'] }, conn({ srcIp: 'fd12::1' })),
  allowedA('sourceIps with mixed families match an IPv4 source', { sourceIps: ['fd00::/8', '10.0.0.0/8'] }),
  allowedA('an IPv4-mapped IPv6 source matches an IPv4 CIDR', { sourceIps: ['10.1.0.0/16'] }, conn({ srcIp: '::ffff:10.1.0.5' })),
  refusedA('notSourceIps excludes a source inside it', { notSourceIps: ['10.1.0.0/16'] }),
  allowedA('notSourceIps lets a source outside it through', { notSourceIps: ['192.168.0.0/16'] }),
  refusedA('sourceIps matched but also in notSourceIps fails', { sourceIps: ['10.0.0.0/8'], notSourceIps: ['10.1.0.5/32'] }),

  // --- destination IPs ----------------------------------------------------------------------
  allowedA('destinationIps matches the destination', { destinationIps: ['10.2.0.0/24'] }),
  refusedA('destinationIps of another network does not match', { destinationIps: ['10.3.0.0/24'] }),
  allowedA('destinationIps IPv6 /128 matches', { destinationIps: ['fd00::7/128'] }, conn({ dstIp: 'fd00::7' })),
  refusedA('destinationIps IPv4 does not match an IPv6 destination', { destinationIps: ['0.0.0.0/0'] }, conn({ dstIp: 'fd00::7' })),
  deniedD('notDestinationIps matches a destination outside it', { notDestinationIps: ['10.9.0.0/16'] }),
  passesD('notDestinationIps does not match a destination inside it', { notDestinationIps: ['10.2.0.7/32'] }),

  // --- destination ports ---------------------------------------------------------------------
  allowedA('destinationPorts matches the target port', { destinationPorts: [8080] }),
  refusedA('destinationPorts of another port does not match', { destinationPorts: [8081] }),
  allowedA('destinationPorts list is OR-ed', { destinationPorts: [80, 443, 8080] }),
  allowedA('a long destinationPorts list matches', { destinationPorts: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 8080, 12] }),
  refusedA('a long destinationPorts list without the port does not match', { destinationPorts: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] }),
  deniedD('notDestinationPorts matches every other port', { notDestinationPorts: [9090] }),
  passesD('notDestinationPorts does not match the excluded port', { notDestinationPorts: [8080] }),
  deniedD('a DENY scoped to one port hits that port', { destinationPorts: [8080], namespaces: [presence] }),
  passesD('a DENY scoped to one port spares other ports', { destinationPorts: [8080] }, conn({ dstPort: 8443 })),

  // --- dry run --------------------------------------------------------------------------------
  { name: 'a matching dry-run DENY does not deny, but is logged', policies: [deny('d', ALL, { dryRun: true })], conn: conn(), allowed: true, message: NO_ALLOW,
    logs: [{ msg: 'dry-run: deny policy match', policy: 'shop/d' }, { msg: 'no allow policies, allow' }] },
  { name: 'a dry-run DENY that does not match is not logged', policies: [deny('d', one({ destinationPorts: [1] }), { dryRun: true })], conn: conn(), allowed: true,
    message: NO_ALLOW, logs: [{ msg: 'no allow policies, allow' }] },
  { name: 'a dry-run allow-nothing does not close the workload, and says it would have', policies: [allow('a', NOTHING, { dryRun: true })], conn: conn(),
    allowed: true, message: NO_ALLOW, logs: [{ msg: 'dry-run: no allow policies match' }, { msg: 'no allow policies, allow' }] },
  { name: 'a matching dry-run ALLOW is logged and the decision is still "no allow policies"', policies: [allow('a', ALL, { dryRun: true })], conn: conn(),
    allowed: true, message: NO_ALLOW, logs: [{ msg: 'dry-run: allow policy match', policy: 'shop/a' }, { msg: 'no allow policies, allow' }] },
  { name: 'a dry-run DENY-all does not beat an enforced ALLOW', policies: [deny('d', ALL, { dryRun: true }), allow('a', ALL)], conn: conn(), allowed: true,
    message: by('shop/a'), logs: [{ msg: 'dry-run: deny policy match', policy: 'shop/d' }, { msg: 'allow policy match', policy: 'shop/a' }] },
  { name: 'an enforced DENY decides even when a dry-run DENY also matches', policies: [deny('dry', ALL, { dryRun: true }), deny('real', ALL)], conn: conn(),
    allowed: false, message: deniedBy('shop/real'),
    logs: [{ msg: 'dry-run: deny policy match', policy: 'shop/dry' }, { msg: 'deny policy match', policy: 'shop/real' }] },
  { name: 'a matching dry-run ALLOW does not rescue a connection no enforced ALLOW matches',
    policies: [allow('dry', ALL, { dryRun: true }), allow('real', one({ destinationPorts: [1] }))], conn: conn(), allowed: false, message: NONE_ALLOWED,
    logs: [{ msg: 'dry-run: allow policy match', policy: 'shop/dry' }, { msg: 'no allow policies matched' }] },
  { name: 'a dry-run allow-nothing next to an enforced allow-all changes nothing', policies: [allow('dry', NOTHING, { dryRun: true }), allow('real', ALL)],
    conn: conn(), allowed: true, message: by('shop/real'), logs: [{ msg: 'allow policy match', policy: 'shop/real' }] },

  // --- PeerAuthentication conversions and plaintext ---------------------------------------
  { name: 'STRICT: plaintext is denied by the static strict policy', policies: [STATIC_STRICT], conn: plaintext(), allowed: false,
    message: deniedBy('istio-system/istio_converted_static_strict') },
  { name: 'STRICT: an mTLS connection passes the static strict policy', policies: [STATIC_STRICT], conn: conn(), allowed: true, message: NO_ALLOW },
  { name: 'port-level PERMISSIVE exemption: plaintext on the exempt port passes',
    policies: [deny('converted_peer_authentication_pa', [[[match({ notDestinationPorts: [8080] })], [match({ notPrincipals: [presence] })]]])],
    conn: plaintext(), allowed: true, message: NO_ALLOW },
  { name: 'port-level PERMISSIVE exemption: plaintext on another port is denied',
    policies: [deny('converted_peer_authentication_pa', [[[match({ notDestinationPorts: [8080] })], [match({ notPrincipals: [presence] })]]])],
    conn: plaintext({ dstPort: 9000 }), allowed: false, message: deniedBy('shop/converted_peer_authentication_pa') },
  { name: 'plaintext never matches an identity-based ALLOW', policies: [allow('a', one({ namespaces: [exact('shop')] }))], conn: plaintext(),
    allowed: false, message: NONE_ALLOWED },
  allowedA('plaintext can be allowed by source IP', { sourceIps: ['10.1.0.0/16'] }, plaintext()),
];
