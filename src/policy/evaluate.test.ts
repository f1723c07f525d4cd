import t from 'tap';
import { evaluate } from './evaluate.js';
import { compilePolicy } from './compile.js';
import { EVALUATE_CASES, allow, conn, deny, match, one, plaintext, presence, exact, ALL } from './evaluate-cases.js';

t.test('the case table is large enough to cover policy.md §3–§4', async (t) => {
  t.ok(EVALUATE_CASES.length >= 80, `${EVALUATE_CASES.length} cases`);
  const names = new Set(EVALUATE_CASES.map((c) => c.name));
  t.equal(names.size, EVALUATE_CASES.length, 'every case has a distinct name');
});

for (const c of EVALUATE_CASES) {
  t.test(c.name, async (t) => {
    const d = evaluate(c.conn, c.policies);
    t.equal(d.allowed, c.allowed, 'allowed');
    t.equal(d.message, c.message, 'message');
    if (c.deciding) {
      t.equal(d.deciding?.key, c.deciding.key, 'deciding policy');
      t.equal(d.deciding?.ruleIndex, c.deciding.ruleIndex, 'deciding rule');
    }
    if (c.logs) t.same(d.logs, c.logs, 'log lines');
    // Only enforced policies decide; without one, nothing is named.
    if (c.message === 'no allow policies' || c.message === 'allow policies exist, but none allowed') {
      t.equal(d.deciding, undefined, 'no deciding policy');
    } else {
      t.ok(d.deciding, 'a deciding policy is named');
    }
  });
}

t.test('a DENY decision names the matching clause and match', async (t) => {
  const p = deny('d', [[[match({ destinationPorts: [1] }), match({ destinationPorts: [8080] })], [match({ principals: [presence] })]]]);
  const d = evaluate(conn(), [p]);
  t.same(d.deciding, { key: 'shop/d', ruleIndex: 0, clauseIndex: 0, matchIndex: 1, clauseMatches: [1, 0] });
});

t.test('a decision by a rule without clauses names no clause', async (t) => {
  const d = evaluate(conn(), [allow('a', ALL)]);
  t.same(d.deciding, { key: 'shop/a', ruleIndex: 0, clauseMatches: [] });
});

t.test('a clause without matches is reported as -1 in clauseMatches', async (t) => {
  const d = evaluate(conn(), [allow('a', [[[], [match({ destinationPorts: [8080] })]]])]);
  t.same(d.deciding?.clauseMatches, [-1, 0]);
  t.equal(d.deciding?.clauseIndex, undefined);
});

t.test('compiling the same policy object twice returns the cached matcher', async (t) => {
  const p = allow('a', one({ principals: [exact('cluster.local/ns/shop/sa/frontend')] }));
  const first = compilePolicy(p);
  t.equal(compilePolicy(p), first, 'same object');
  evaluate(conn(), [p]);
  t.equal(compilePolicy(p), first, 'evaluate reused it');
  const copy = { ...p };
  t.not(compilePolicy(copy), first, 'a different object is compiled on its own');
});

t.test('evaluating does not change the decision when repeated', async (t) => {
  const policies = [deny('strict', one({ notPrincipals: [presence] })), allow('a', one({ destinationPorts: [8080] }))];
  const a = evaluate(plaintext(), policies);
  const b = evaluate(plaintext(), policies);
  t.same(a, b);
  t.equal(a.allowed, false);
  t.equal(evaluate(conn(), policies).allowed, true);
});

t.test('an unparsable connection IP matches no CIDR but passes not-lists', async (t) => {
  t.equal(evaluate(conn({ srcIp: 'not-an-ip' }), [allow('a', one({ sourceIps: ['0.0.0.0/0'] }))]).allowed, false);
  t.equal(evaluate(conn({ srcIp: 'not-an-ip' }), [allow('a', one({ notSourceIps: ['0.0.0.0/0'] }))]).allowed, true);
});

t.test('1,000 applicable policies: the first matching DENY in order decides', async (t) => {
  const policies = [];
  for (let i = 0; i < 1000; i++) policies.push(allow(`a${i}`, one({ destinationPorts: [10000 + i] })));
  policies.push(deny('late', one({ destinationPorts: [10999] })));
  t.equal(evaluate(conn({ dstPort: 10500 }), policies).message, 'allowed by: shop/a500');
  t.equal(evaluate(conn({ dstPort: 10999 }), policies).message, 'explicitly denied by: shop/late');
  t.equal(evaluate(conn({ dstPort: 9 }), policies).message, 'allow policies exist, but none allowed');
});
