// `ztunnel explain` engine (policy.md "Beyond the reference"): the decision plus, per applicable
// policy, why it applies and whether it matched — and for a policy that did not match, per rule,
// the first clause that failed and the failing field with expected vs actual. Uses the walk of
// compile.ts (matchFailure / clauseResult / firstFailingClause / firstMatchingRule) and the decision
// of evaluate.ts; nothing here re-implements matching, it only describes what those returned.
//
// Stable JSON shape (version 1; also documented in docs/explain-json.md). `Explanation` is plain
// data: JSON.stringify(explanation) is the `--json` output body.
//
// {
//   "version": 1,
//   "connection": { "srcIp": "10.0.0.1", "srcIdentity": "spiffe://td/ns/a/sa/b" | null,
//                   "dstIp": "10.0.0.2", "dstPort": 8080 },
//   "decision": { "allowed": false, "action": "DENY",
//                 "message": "allow policies exist, but none allowed",
//                 "deciding": { "key": "ns/name", "ruleIndex": 0, "clauseIndex": 0, "matchIndex": 1,
//                               "clauseMatches": [1, 0] } | null,
//                 "logs": [ { "msg": "dry-run: deny policy match", "policy": "ns/name" } ] },
//   "policies": [ {
//       "key": "ns/name", "action": "ALLOW" | "DENY", "dryRun": false,
//       "reason": "namespace" | "global" | "selector",
//       "matched": false,
//       "matchedRule": { "ruleIndex": 0, "clauseMatches": [0, -1] } | null,
//       "emptyRules": false,
//       "ruleFailures": [ {
//           "ruleIndex": 0, "clauseIndex": 1, "allMatchesEmpty": false,
//           "matches": [ { "matchIndex": 0, "field": "principals", "negated": false,
//                          "got": "cluster.local/ns/shop/sa/cart",
//                          "want": ["Exact cluster.local/ns/shop/sa/frontend"] },
//                        { "matchIndex": 1, "field": "empty", "negated": false, "got": "", "want": [] } ],
//           "text": ["rule[0] clause[1] principals: got cluster.local/ns/shop/sa/cart, want Exact cluster.local/ns/shop/sa/frontend"] } ]
//   } ]
// }
//
// `clauseMatches[i]` is the index of the match that satisfied clause i (-1: the clause has no
// matches). `ruleFailures` is empty for a matched policy; `emptyRules` true means "rules: empty
// (never matches)". `got` is `<none>` for identity fields when the connection has no identity.
import { formatIdentity } from '../core/spiffe.js';
import type { Authorization, ServiceAccountMatch, StringMatch } from './model.js';
import {
  CLAUSE_EMPTY,
  clauseResult,
  compilePolicy,
  firstFailingClause,
  firstMatchingRule,
  matchFailure,
  prepareConn,
  type CompiledMatch,
  type CompiledPolicy,
  type ConnInfo,
  type MatchFailure,
  type PreparedConn,
} from './compile.js';
import { evaluateCompiled, type DecisionLog } from './evaluate.js';

export type ApplicableReason = 'namespace' | 'global' | 'selector';

export interface ExplainedMatchFailure {
  readonly matchIndex: number;
  readonly field: MatchFailure;
  /** The failing field is a `not…` list: the value was found in it. */
  readonly negated: boolean;
  readonly got: string;
  readonly want: readonly string[];
}

export interface ExplainedRuleFailure {
  readonly ruleIndex: number;
  readonly clauseIndex: number;
  readonly allMatchesEmpty: boolean;
  readonly matches: readonly ExplainedMatchFailure[];
  readonly text: readonly string[];
}

export interface ExplainedPolicy {
  readonly key: string;
  readonly action: 'ALLOW' | 'DENY';
  readonly dryRun: boolean;
  readonly reason: ApplicableReason;
  readonly matched: boolean;
  readonly matchedRule: { readonly ruleIndex: number; readonly clauseMatches: readonly number[] } | null;
  readonly emptyRules: boolean;
  readonly ruleFailures: readonly ExplainedRuleFailure[];
}

export interface Explanation {
  readonly version: 1;
  readonly connection: {
    readonly srcIp: string;
    readonly srcIdentity: string | null;
    readonly dstIp: string;
    readonly dstPort: number;
  };
  readonly decision: {
    readonly allowed: boolean;
    readonly action: 'ALLOW' | 'DENY';
    readonly message: string;
    readonly deciding: {
      readonly key: string;
      readonly ruleIndex: number;
      readonly clauseIndex?: number;
      readonly matchIndex?: number;
      readonly clauseMatches: readonly number[];
    } | null;
    readonly logs: readonly DecisionLog[];
  };
  readonly policies: readonly ExplainedPolicy[];
}

const NONE = '<none>';

function formatStringMatch(m: StringMatch): string {
  switch (m.kind) {
    case 'exact': return `Exact ${m.value}`;
    case 'prefix': return `Prefix ${m.value}`;
    case 'suffix': return `Suffix ${m.value}`;
    case 'presence': return 'Presence';
  }
}

const formatSa = (s: ServiceAccountMatch): string => `${s.namespace}/${s.serviceAccount}`;

/** Expected values (the source list of the failing field) and the actual connection value. */
function describe(field: MatchFailure, m: CompiledMatch, conn: ConnInfo, c: PreparedConn): { got: string; want: string[] } {
  const src = m.source;
  switch (field) {
    case 'empty': return { got: '', want: [] };
    case 'destinationIps':
    case 'notDestinationIps': return { got: conn.dstIp, want: src[field].map((x) => x.text) };
    case 'sourceIps':
    case 'notSourceIps': return { got: conn.srcIp, want: src[field].map((x) => x.text) };
    case 'destinationPorts':
    case 'notDestinationPorts': return { got: String(conn.dstPort), want: src[field].map(String) };
    case 'serviceAccounts':
    case 'notServiceAccounts':
      return { got: c.identity ? `${c.identity.namespace}/${c.identity.serviceAccount}` : NONE, want: src[field].map(formatSa) };
    case 'principals':
    case 'notPrincipals': return { got: c.principal ?? NONE, want: src[field].map(formatStringMatch) };
    case 'namespaces':
    case 'notNamespaces': return { got: c.identity ? c.namespace : NONE, want: src[field].map(formatStringMatch) };
  }
}

function wantText(want: readonly string[], negated: boolean): string {
  if (negated) return want.length === 1 ? `not ${want[0]}` : `none of [${want.join(', ')}]`;
  return want.length === 1 ? want[0]! : `one of [${want.join(', ')}]`;
}

function explainRuleFailure(p: CompiledPolicy, ruleIndex: number, clauseIndex: number, conn: ConnInfo, c: PreparedConn): ExplainedRuleFailure {
  const clause = p.rules[ruleIndex]![clauseIndex]!;
  const where = `rule[${ruleIndex}] clause[${clauseIndex}]`;
  const matches: ExplainedMatchFailure[] = clause.map((m, matchIndex) => {
    const field = matchFailure(m, c) ?? 'empty'; // never null: the clause failed
    const { got, want } = describe(field, m, conn, c);
    return { matchIndex, field, negated: field.startsWith('not'), got, want };
  });
  const allMatchesEmpty = matches.every((f) => f.field === 'empty');
  const text: string[] = [];
  if (allMatchesEmpty) {
    text.push(`${where}: every match is empty (clause never satisfied)`);
  } else {
    for (const f of matches) {
      const at = clause.length === 1 ? where : `${where} match[${f.matchIndex}]`;
      text.push(f.field === 'empty'
        ? `${at}: empty match (skipped)`
        : `${at} ${f.field}: got ${f.got}, want ${wantText(f.want, f.negated)}`);
    }
  }
  return { ruleIndex, clauseIndex, allMatchesEmpty, matches, text };
}

function clauseMatchesOf(p: CompiledPolicy, ruleIndex: number, c: PreparedConn): number[] {
  return p.rules[ruleIndex]!.map((clause) => {
    const r = clauseResult(clause, c);
    return r === CLAUSE_EMPTY ? -1 : r;
  });
}

function explainPolicy(key: string, p: CompiledPolicy, reason: ApplicableReason, conn: ConnInfo, c: PreparedConn): ExplainedPolicy {
  const base = { key, action: p.action === 'Allow' ? 'ALLOW' as const : 'DENY' as const, dryRun: p.dryRun, reason };
  const ruleIndex = firstMatchingRule(p, c);
  if (ruleIndex >= 0) {
    return { ...base, matched: true, matchedRule: { ruleIndex, clauseMatches: clauseMatchesOf(p, ruleIndex, c) }, emptyRules: false, ruleFailures: [] };
  }
  const ruleFailures = p.rules.map((rule, i) => explainRuleFailure(p, i, firstFailingClause(rule, c), conn, c));
  return { ...base, matched: false, matchedRule: null, emptyRules: p.rules.length === 0, ruleFailures };
}

export function explainDecision(
  conn: ConnInfo,
  applicable: ReadonlyArray<{ key: string; policy: Authorization; reason: ApplicableReason }>,
): Explanation {
  const c = prepareConn(conn);
  const compiled = applicable.map((a) => compilePolicy(a.policy));
  const d = evaluateCompiled(c, compiled);
  return {
    version: 1,
    connection: {
      srcIp: conn.srcIp,
      srcIdentity: conn.srcIdentity ? formatIdentity(conn.srcIdentity) : null,
      dstIp: conn.dstIp,
      dstPort: conn.dstPort,
    },
    decision: {
      allowed: d.allowed,
      action: d.allowed ? 'ALLOW' : 'DENY',
      message: d.message,
      deciding: d.deciding ?? null,
      logs: d.logs,
    },
    policies: compiled.map((p, i) => explainPolicy(applicable[i]!.key, p, applicable[i]!.reason, conn, c)),
  };
}

/** Human-readable form of an explanation (the non-`--json` output of `ztunnel explain`). */
export function formatExplanation(e: Explanation): string {
  const lines: string[] = [];
  const conn = e.connection;
  const dst = conn.dstIp.includes(':') ? `[${conn.dstIp}]:${conn.dstPort}` : `${conn.dstIp}:${conn.dstPort}`;
  lines.push(`connection: ${conn.srcIp} (${conn.srcIdentity ?? 'no identity'}) -> ${dst}`);
  lines.push(`decision: ${e.decision.action} (${e.decision.message})`);
  const dec = e.decision.deciding;
  if (dec) {
    const at = dec.clauseIndex !== undefined ? ` clause[${dec.clauseIndex}] match[${dec.matchIndex}]` : '';
    lines.push(`deciding policy: ${dec.key} rule[${dec.ruleIndex}]${at}`);
  }
  lines.push(e.policies.length === 0 ? 'policies: none apply' : `policies (${e.policies.length}):`);
  for (const p of e.policies) {
    const flags = [p.action, `applies: ${p.reason}`];
    if (p.dryRun) flags.push('dry-run');
    const state = p.matched
      ? `matched rule[${p.matchedRule!.ruleIndex}]`
      : 'not matched';
    lines.push(`  ${p.key}  ${flags.join(', ')}  ${state}`);
    if (p.emptyRules) lines.push('    rules: empty (never matches)');
    for (const f of p.ruleFailures) for (const t of f.text) lines.push(`    ${t}`);
  }
  for (const l of e.decision.logs) {
    if (l.msg.startsWith('dry-run:')) lines.push(`${l.msg}${l.policy ? ` (${l.policy})` : ''}`);
  }
  return lines.join('\n') + '\n';
}
