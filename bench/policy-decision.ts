// Cost of one authorization decision with 1,000 policies loaded (issue 3 "Done when").
// Run: npx tsc -p tsconfig.json && node dist/bench/policy-decision.js [seconds]
// Prints one JSON line: { "policyDecisionNs": N, "policies": 1000, ... } (…Ns = wall clock,
// …CpuNs = this process's CPU time per call, the better number on a shared machine).
//  - policyDecisionNs: evaluate() with all 1,000 policies applicable and none matching (every
//    DENY and every ALLOW is walked: the worst case for one connection).
//  - fullWalkNs: the same 1,000 policies walked without the port index (every policy evaluated).
//  - realisticNs: evaluate() with what applies to one workload (its namespace's policies, all
//    global ones, the selector ones listed on it), as state.policiesFor() would hand over.
import { parseCidr, type Cidr } from '../src/core/net.js';
import { evaluate, evaluateCompiled, type ConnInfo } from '../src/policy/evaluate.js';
import { compilePolicy, prepareConn } from '../src/policy/compile.js';
import { emptyMatch, type Authorization, type Match, type StringMatch } from '../src/policy/model.js';

const POLICIES = 1000;
const NAMESPACES = 50;
const seconds = Number(process.argv[2] ?? '2');

// Deterministic pseudo-random numbers so runs are comparable.
let seed = 0x2545f491;
const rand = (n: number): number => {
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed % n;
};
const cidr = (s: string): Cidr => parseCidr(s)!;
const ns = (i: number): string => `ns-${i}`;

function randomMatch(policyNs: string): Match {
  const m: { -readonly [K in keyof Match]: Match[K] } = emptyMatch();
  switch (rand(5)) {
    case 0: m.principals = [{ kind: 'exact', value: `cluster.local/ns/${policyNs}/sa/sa-${rand(20)}` }, { kind: 'exact', value: `cluster.local/ns/${ns(rand(NAMESPACES))}/sa/sa-${rand(20)}` }]; break;
    case 1: m.principals = [{ kind: 'prefix', value: `cluster.local/ns/${ns(rand(NAMESPACES))}/` } satisfies StringMatch]; break;
    case 2: m.namespaces = [{ kind: 'exact', value: ns(rand(NAMESPACES)) }, { kind: 'exact', value: ns(rand(NAMESPACES)) }]; break;
    case 3: m.sourceIps = [cidr(`10.${rand(200) + 50}.0.0/16`), cidr(`fd00:${rand(1000).toString(16)}::/48`)]; break;
    default: m.serviceAccounts = [{ namespace: policyNs, serviceAccount: `sa-${rand(20)}` }]; break;
  }
  return m;
}

function randomPolicy(i: number): Authorization {
  const kind = rand(10);
  const scope = kind === 0 ? 'Global' : kind < 5 ? 'Namespace' : 'WorkloadSelector';
  const namespace = scope === 'Global' ? 'istio-system' : ns(rand(NAMESPACES));
  const action = rand(5) === 0 ? 'Deny' : 'Allow';
  const rules: Match[][][] = [];
  const ruleCount = 1 + rand(3);
  for (let r = 0; r < ruleCount; r++) {
    const clauses: Match[][] = [];
    // to: ports (ports 20000+ never equal the judged port)
    clauses.push([{ ...emptyMatch(), destinationPorts: [20000 + rand(1000), 20000 + rand(1000)] }]);
    // from: one or two sources
    const from = [randomMatch(namespace)];
    if (rand(2) === 0) from.push(randomMatch(namespace));
    clauses.push(from);
    if (rand(4) === 0) clauses.push([{ ...emptyMatch(), notSourceIps: [cidr('192.0.2.0/24')] }]);
    rules.push(clauses);
  }
  return { name: `pol-${i}`, namespace, scope, action, dryRun: rand(50) === 0, rules };
}

const policies: Authorization[] = [];
for (let i = 0; i < POLICIES; i++) policies.push(randomPolicy(i));

const target = { namespace: ns(7), selectorKeys: new Set<string>() };
for (const p of policies) if (p.scope === 'WorkloadSelector' && p.namespace === target.namespace && rand(2) === 0) target.selectorKeys.add(`${p.namespace}/${p.name}`);
const realistic = policies.filter((p) =>
  p.scope === 'Global' || (p.scope === 'Namespace' && p.namespace === target.namespace) || target.selectorKeys.has(`${p.namespace}/${p.name}`));

const conn: ConnInfo = {
  srcIp: '10.1.2.3',
  srcIdentity: { trustDomain: 'cluster.local', namespace: ns(3), serviceAccount: 'sa-1' },
  dstIp: '10.244.7.9',
  dstPort: 8080,
};

const compileStart = process.hrtime.bigint();
for (const p of policies) compilePolicy(p);
const compileMs = Number(process.hrtime.bigint() - compileStart) / 1e6;

/** Wall-clock ns per call, and CPU ns per call (process CPU time; robust on a busy machine). */
function measure(list: readonly Authorization[], decide = (l: readonly Authorization[]) => evaluate(conn, l)): { ns: number; cpuNs: number; iterations: number; allowed: number } {
  for (let i = 0; i < 2000; i++) decide(list); // warm-up (JIT)
  const budgetNs = BigInt(Math.round(seconds * 1e9));
  const cpuStart = process.cpuUsage();
  const start = process.hrtime.bigint();
  let iterations = 0;
  let allowed = 0;
  let now = start;
  while (now - start < budgetNs && iterations < 50_000_000) {
    for (let i = 0; i < 100; i++) if (decide(list).allowed) allowed++;
    iterations += 100;
    now = process.hrtime.bigint();
  }
  const cpu = process.cpuUsage(cpuStart);
  return { ns: Number(now - start) / iterations, cpuNs: ((cpu.user + cpu.system) * 1000) / iterations, iterations, allowed };
}

const worst = measure(policies);
const real = measure(realistic);
// The same 1,000 policies walked in full, without the port index (evaluateCompiled, as explain
// does): what a decision costs when every policy could match the port.
const compiledAll = policies.map(compilePolicy);
const prepared = prepareConn(conn);
const full = measure(policies, () => evaluateCompiled(prepared, compiledAll));
const sample = evaluate(conn, policies);
console.log(JSON.stringify({
  policyDecisionNs: Math.round(worst.ns),
  policies: POLICIES,
  policyDecisionCpuNs: Math.round(worst.cpuNs),
  decision: sample.message,
  iterations: worst.iterations,
  fullWalkNs: Math.round(full.ns),
  fullWalkCpuNs: Math.round(full.cpuNs),
  realisticNs: Math.round(real.ns),
  realisticCpuNs: Math.round(real.cpuNs),
  realisticPolicies: realistic.length,
  compileAllMs: Math.round(compileMs * 100) / 100,
  node: process.version,
}));
