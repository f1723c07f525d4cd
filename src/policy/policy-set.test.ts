import t from 'tap';
import { evaluate, evaluateCompiled } from './evaluate.js';
import { compilePolicy, prepareConn } from './compile.js';
import { compilePolicySet } from './policy-set.js';
import { allow, conn, deny, match, plaintext, presence, exact, ALL, NOTHING } from './evaluate-cases.js';
import type { Authorization, Match } from './model.js';

// A deterministic mix of port-bound, port-free, empty, dry-run and rule-less policies.
function mixedPolicies(): Authorization[] {
  let seed = 7;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const portMatch = (): Match => match({ destinationPorts: [8000 + rand(4), 9000 + rand(3)] });
  const sourceMatch = (): Match =>
    rand(2) === 0 ? match({ principals: [presence] }) : match({ namespaces: [exact(rand(2) === 0 ? 'shop' : 'other')] });
  const out: Authorization[] = [];
  for (let i = 0; i < 60; i++) {
    const clauses: Match[][] = [];
    switch (rand(6)) {
      case 0: clauses.push([portMatch()]); break;
      case 1: clauses.push([portMatch(), sourceMatch()]); break; // one match without ports: any port
      case 2: clauses.push([portMatch()], [sourceMatch()]); break;
      case 3: clauses.push([match({})]); break; // only an empty match: never satisfied
      case 4: clauses.push([match({ notDestinationPorts: [8001] })]); break;
      default: break; // no clauses: matches everything
    }
    const rules = rand(8) === 0 ? NOTHING : rand(5) === 0 ? ALL : [clauses];
    const o = { dryRun: rand(4) === 0 };
    out.push(rand(3) === 0 ? deny(`d${i}`, rules, o) : allow(`a${i}`, rules, o));
  }
  return out;
}

t.test('the port index gives the same decision, message, deciding policy and logs as walking every policy', async (t) => {
  const all = mixedPolicies();
  let compared = 0;
  // Every third prefix of the list, so ALLOW counts, DENY order and dry-run logs vary.
  for (let n = 0; n <= all.length; n += 3) {
    const policies = all.slice(0, n);
    const compiled = policies.map(compilePolicy);
    for (const port of [8000, 8001, 8002, 8003, 9000, 9001, 9002, 443]) {
      for (const c of [conn({ dstPort: port }), plaintext({ dstPort: port })]) {
        const fast = evaluate(c, policies);
        const full = evaluateCompiled(prepareConn(c), compiled);
        t.same(fast, full, `${n} policies, port ${port}, ${c.srcIdentity ? 'mTLS' : 'plaintext'}`);
        compared++;
      }
    }
  }
  t.ok(compared > 100, `${compared} decisions compared`);
});

t.test('a policy list changed in place after a decision is decided afresh', async (t) => {
  const policies = [deny('block-8080', [[[match({ destinationPorts: [8080] })]]])];
  t.equal(evaluate(conn(), policies).allowed, false, 'denied first');
  policies[0] = allow('open', ALL);
  t.equal(evaluate(conn(), policies).message, 'allowed by: shop/open', 'the replaced policy decides');
  policies.push(deny('late', ALL));
  t.equal(evaluate(conn(), policies).message, 'explicitly denied by: shop/late', 'an appended policy counts');
});

t.test('an ALLOW that cannot match the port still means "allow policies exist"', async (t) => {
  const set = compilePolicySet([allow('only-9090', [[[match({ destinationPorts: [9090] })]]])]);
  t.equal(set.candidates(8080).length, 0, 'not walked for port 8080');
  t.equal(set.enforcedAllows, 1, 'but counted');
  t.equal(evaluate(conn(), set.all.map((p) => p.source)).message, 'allow policies exist, but none allowed');
});
