// The policies that apply to one workload, compiled once and indexed by destination port, so a
// decision walks only the policies that can possibly match the connection's port (issue 7:
// ≤ 5 µs with 1,000 policies). Nothing here decides a match: the index is a sound
// over-approximation of `firstMatchingRule` (compile.ts), and evaluate.ts walks the candidates
// with the same functions as before, so results, logs and their order are unchanged.
import type { Authorization } from './model.js';
import { compilePolicy, type CompiledPolicy } from './compile.js';

export interface CompiledPolicySet {
  /** Every policy, in the caller's order. */
  readonly all: readonly CompiledPolicy[];
  /** Counted over every policy (a non-candidate still counts as an ALLOW that exists; policy.md §3). */
  readonly enforcedAllows: number;
  readonly dryRunAllows: number;
  /** The policies, in order, that could match a connection to `port`. */
  candidates(port: number): readonly CompiledPolicy[];
}

/** Ports a policy can match on: null = any port; an empty set = never matches. */
type PortUniverse = ReadonlySet<number> | null;

const union = (a: PortUniverse, b: PortUniverse): PortUniverse => {
  if (a === null || b === null) return null;
  const out = new Set(a);
  for (const p of b) out.add(p);
  return out;
};
const intersect = (a: PortUniverse, b: PortUniverse): PortUniverse => {
  if (a === null) return b;
  if (b === null) return a;
  const out = new Set<number>();
  for (const p of a) if (b.has(p)) out.add(p);
  return out;
};

// policy.md §4: a match with destinationPorts passes only for a listed port; an empty match never
// passes; a clause with no matches is satisfied; a rule needs every clause; a policy any rule.
function portsOf(p: CompiledPolicy): PortUniverse {
  let policyPorts: PortUniverse = new Set<number>();
  for (const rule of p.rules) {
    let rulePorts: PortUniverse = null;
    for (const clause of rule) {
      if (clause.length === 0) continue;
      let clausePorts: PortUniverse = new Set<number>();
      for (const m of clause) {
        if (m.empty) continue;
        clausePorts = union(clausePorts, m.destinationPorts === null ? null : new Set(m.destinationPorts));
        if (clausePorts === null) break;
      }
      rulePorts = intersect(rulePorts, clausePorts);
    }
    policyPorts = union(policyPorts, rulePorts);
    if (policyPorts === null) return null;
  }
  return policyPorts;
}

class PolicySet implements CompiledPolicySet {
  readonly enforcedAllows: number;
  readonly dryRunAllows: number;
  private readonly anyPort: CompiledPolicy[] = [];
  private readonly anyPortIdx: number[] = [];
  /** Indexes (into `all`) of the port-bound policies, per port. */
  private readonly byPort = new Map<number, number[]>();
  private readonly merged = new Map<number, readonly CompiledPolicy[]>();

  constructor(readonly all: readonly CompiledPolicy[]) {
    let enforced = 0;
    let dry = 0;
    all.forEach((p, i) => {
      if (p.action === 'Allow') {
        if (p.dryRun) dry++;
        else enforced++;
      }
      const ports = portsOf(p);
      if (ports === null) {
        this.anyPort.push(p);
        this.anyPortIdx.push(i);
        return;
      }
      for (const port of ports) {
        let l = this.byPort.get(port);
        if (!l) this.byPort.set(port, (l = []));
        l.push(i);
      }
    });
    this.enforcedAllows = enforced;
    this.dryRunAllows = dry;
  }

  candidates(port: number): readonly CompiledPolicy[] {
    const bound = this.byPort.get(port);
    if (!bound) return this.anyPort;
    let m = this.merged.get(port);
    if (!m) {
      // Bounded by the number of ports named in the policies; order as in `all`.
      const idx = [...this.anyPortIdx, ...bound].sort((a, b) => a - b);
      m = idx.map((i) => this.all[i]!);
      this.merged.set(port, m);
    }
    return m;
  }
}

const cache = new WeakMap<readonly Authorization[], { policies: readonly Authorization[]; set: PolicySet }>();

/**
 * Compiles and indexes a list of policies. The result is cached by array identity (state.ts hands
 * out the same array per workload until a policy changes) and re-checked element by element, so
 * a caller that changes its array in place still gets a correct answer.
 */
export function compilePolicySet(policies: readonly Authorization[]): CompiledPolicySet {
  const hit = cache.get(policies);
  if (hit && sameElements(hit.policies, policies)) return hit.set;
  const set = new PolicySet(policies.map(compilePolicy));
  cache.set(policies, { policies: policies.slice(), set });
  return set;
}

function sameElements(a: readonly Authorization[], b: readonly Authorization[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
