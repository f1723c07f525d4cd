// The authorization decision of policy.md §3 (istio/ztunnel state.rs assert_rbac, with dry-run).
// Pure: the caller chooses the applicable policies (namespace, global, selector; unknown keys
// already skipped) and logs `logs` — dry-run lines at INFO, the others at DEBUG (or INFO with
// AUTHZ_POLICY_INFO_LOGGING=true; config.md §5).
import type { Authorization } from './model.js';
import {
  CLAUSE_EMPTY,
  clauseResult,
  firstMatchingRule,
  prepareConn,
  type CompiledPolicy,
  type ConnInfo,
  type PreparedConn,
} from './compile.js';

import { compilePolicySet } from './policy-set.js';

export type { ConnInfo } from './compile.js';

export interface DecisionLog {
  /** One of the messages of policy.md §3, e.g. `dry-run: deny policy match`, `allow policy match`. */
  readonly msg: string;
  /** Policy key `<ns>/<name>` for the per-policy lines. */
  readonly policy?: string;
}

export interface DecidingPolicy {
  readonly key: string;
  readonly ruleIndex: number;
  /**
   * The first clause of the matching rule and the index of the match that satisfied it; absent
   * when the rule has no clauses (or that clause has no matches). `clauseMatches` has one entry
   * per clause: the satisfying match index, or -1 for a clause with no matches.
   */
  readonly clauseIndex?: number;
  readonly matchIndex?: number;
  readonly clauseMatches: readonly number[];
}

export interface Decision {
  readonly allowed: boolean;
  /**
   * Denied: `explicitly denied by: <ns>/<name>` | `allow policies exist, but none allowed`
   * (the texts of policy.md §3, used in the HBONE 401 and the access log).
   * Allowed: `no allow policies` (no enforced ALLOW applies) | `allowed by: <ns>/<name>`.
   */
  readonly message: string;
  /** The enforced policy that decided (DENY match or ALLOW match); undefined otherwise. */
  readonly deciding?: DecidingPolicy;
  readonly logs: readonly DecisionLog[];
}

export const MSG_NO_ALLOW_POLICIES = 'no allow policies';
export const MSG_NONE_ALLOWED = 'allow policies exist, but none allowed';
export const deniedByMessage = (key: string): string => `explicitly denied by: ${key}`;
export const allowedByMessage = (key: string): string => `allowed by: ${key}`;

function deciding(p: CompiledPolicy, ruleIndex: number, c: PreparedConn): DecidingPolicy {
  const rule = p.rules[ruleIndex]!;
  const clauseMatches = rule.map((clause) => {
    const r = clauseResult(clause, c);
    return r === CLAUSE_EMPTY ? -1 : r;
  });
  const first = clauseMatches[0];
  return first === undefined || first < 0
    ? { key: p.key, ruleIndex, clauseMatches }
    : { key: p.key, ruleIndex, clauseIndex: 0, matchIndex: first, clauseMatches };
}

/**
 * Decides one connection against the policies that apply to its destination (policy.md §3):
 * 1. dry-run DENYs that match are logged; the first enforced DENY that matches rejects;
 * 2. dry-run ALLOWs that match are logged; no enforced ALLOW → allow;
 * 3. the first enforced ALLOW that matches allows; otherwise reject.
 * Dry-run policies never change the result.
 */
export function evaluate(conn: ConnInfo, policies: readonly Authorization[]): Decision {
  const c = prepareConn(conn);
  const set = compilePolicySet(policies);
  // Only the policies that can match this port are walked; the others can never match, log or
  // decide, and the ALLOW counts of step 3 come from the whole set (policy-set.ts).
  return decide(c, set.candidates(c.dstPort), set.enforcedAllows, set.dryRunAllows);
}

/** Same decision over already compiled policies and a prepared connection. */
export function evaluateCompiled(c: PreparedConn, policies: readonly CompiledPolicy[]): Decision {
  let enforcedAllows = 0;
  let dryRunAllows = 0;
  for (const p of policies) {
    if (p.action !== 'Allow') continue;
    if (p.dryRun) dryRunAllows++;
    else enforcedAllows++;
  }
  return decide(c, policies, enforcedAllows, dryRunAllows);
}

/**
 * The walk of policy.md §3 over `policies`; `enforcedAllows` / `dryRunAllows` count every ALLOW
 * that applies, including ones left out of `policies` because they cannot match.
 */
function decide(c: PreparedConn, policies: readonly CompiledPolicy[], enforcedAllows: number, dryRunAllows: number): Decision {
  const logs: DecisionLog[] = [];

  // Step 2: DENY. Every dry-run DENY is evaluated (and logged when it matches); enforced DENYs
  // are evaluated in order until one matches.
  let denyBy: CompiledPolicy | undefined;
  let denyRule = -1;
  for (const p of policies) {
    if (p.action !== 'Deny') continue;
    if (p.dryRun) {
      if (firstMatchingRule(p, c) >= 0) logs.push({ msg: 'dry-run: deny policy match', policy: p.key });
    } else if (!denyBy) {
      const r = firstMatchingRule(p, c);
      if (r >= 0) { denyBy = p; denyRule = r; }
    }
  }
  if (denyBy) {
    logs.push({ msg: 'deny policy match', policy: denyBy.key });
    return { allowed: false, message: deniedByMessage(denyBy.key), deciding: deciding(denyBy, denyRule, c), logs };
  }

  // Step 3: dry-run ALLOWs, then "no enforced ALLOW → allow".
  let dryRunAllowMatched = false;
  for (const p of policies) {
    if (p.action !== 'Allow' || !p.dryRun) continue;
    if (firstMatchingRule(p, c) >= 0) {
      dryRunAllowMatched = true;
      logs.push({ msg: 'dry-run: allow policy match', policy: p.key });
    }
  }
  if (enforcedAllows === 0) {
    if (dryRunAllows > 0 && !dryRunAllowMatched) logs.push({ msg: 'dry-run: no allow policies match' });
    logs.push({ msg: 'no allow policies, allow' });
    return { allowed: true, message: MSG_NO_ALLOW_POLICIES, logs };
  }

  // Step 4–5.
  for (const p of policies) {
    if (p.action !== 'Allow' || p.dryRun) continue;
    const r = firstMatchingRule(p, c);
    if (r >= 0) {
      logs.push({ msg: 'allow policy match', policy: p.key });
      return { allowed: true, message: allowedByMessage(p.key), deciding: deciding(p, r, c), logs };
    }
  }
  logs.push({ msg: 'no allow policies matched' });
  return { allowed: false, message: MSG_NONE_ALLOWED, logs };
}
