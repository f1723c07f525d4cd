import t from 'tap';
import { evaluate } from './evaluate.js';
import { explainDecision, formatExplanation, type Explanation } from './explain.js';
import { policyKey, type Authorization } from './model.js';
import {
  EVALUATE_CASES, ALL, NOTHING, allow, conn, deny, exact, id, match, one, plaintext, prefix, presence, sa,
} from './evaluate-cases.js';
import { emptyMatch } from './model.js';

const applicable = (policies: readonly Authorization[]) =>
  policies.map((policy) => ({
    key: policyKey(policy),
    policy,
    reason: policy.scope === 'Global' ? 'global' as const : policy.scope === 'Namespace' ? 'namespace' as const : 'selector' as const,
  }));

const explain = (c: Parameters<typeof explainDecision>[0], policies: readonly Authorization[]): Explanation =>
  explainDecision(c, applicable(policies));

t.test('explain agrees with evaluate on every row of the case table', async (t) => {
  for (const c of EVALUATE_CASES) {
    const d = evaluate(c.conn, c.policies);
    const e = explain(c.conn, c.policies);
    t.equal(e.decision.allowed, d.allowed, `${c.name}: allowed`);
    t.equal(e.decision.message, d.message, `${c.name}: message`);
    t.same(e.decision.deciding, d.deciding ?? null, `${c.name}: deciding`);
    t.same(e.decision.logs, d.logs, `${c.name}: logs`);
    t.equal(e.policies.length, c.policies.length, `${c.name}: one entry per applicable policy`);
    e.policies.forEach((p, i) => {
      const pol = c.policies[i]!;
      // Judged alone and enforced, the policy matches exactly when explain says it matched.
      const alone = evaluate(c.conn, [{ ...pol, dryRun: false }]);
      const matchedAlone = pol.action === 'Deny' ? !alone.allowed : alone.allowed;
      t.equal(p.matched, matchedAlone, `${c.name}: ${p.key} matched`);
      t.equal(p.dryRun, pol.dryRun, `${c.name}: ${p.key} dry-run flag`);
      if (!p.matched) {
        t.ok(p.emptyRules || p.ruleFailures.length === pol.rules.length, `${c.name}: ${p.key} explains every rule`);
      }
    });
    if (d.deciding) {
      const p = e.policies.find((x) => x.key === d.deciding!.key && !x.dryRun);
      t.equal(p?.matched, true, `${c.name}: the deciding policy is shown as matched`);
      t.equal(p?.matchedRule?.ruleIndex, d.deciding.ruleIndex, `${c.name}: same rule`);
    }
  }
});

t.test('a wrong principal is explained with got and want', async (t) => {
  const e = explain(conn({ srcIdentity: id('shop', 'cart') }), [allow('a', one({ principals: [exact('cluster.local/ns/shop/sa/frontend')] }))]);
  t.same(e.policies[0]!.ruleFailures[0]!.text, [
    'rule[0] clause[0] principals: got cluster.local/ns/shop/sa/cart, want Exact cluster.local/ns/shop/sa/frontend',
  ]);
  t.same(e.policies[0]!.ruleFailures[0]!.matches[0], {
    matchIndex: 0, field: 'principals', negated: false, got: 'cluster.local/ns/shop/sa/cart', want: ['Exact cluster.local/ns/shop/sa/frontend'],
  });
});

t.test('a plaintext connection shows <none> for identity fields', async (t) => {
  const e = explain(plaintext(), [
    allow('p', one({ principals: [presence] })),
    allow('n', one({ namespaces: [exact('shop')] })),
    allow('s', one({ serviceAccounts: [sa('shop', 'frontend')] })),
  ]);
  t.same(e.policies.map((p) => p.ruleFailures[0]!.text[0]), [
    'rule[0] clause[0] principals: got <none>, want Presence',
    'rule[0] clause[0] namespaces: got <none>, want Exact shop',
    'rule[0] clause[0] serviceAccounts: got <none>, want shop/frontend',
  ]);
});

t.test('several expected values are listed; not-lists say "not" / "none of"', async (t) => {
  const e = explain(conn(), [
    allow('ports', one({ destinationPorts: [80, 443] })),
    allow('src', one({ sourceIps: ['192.168.0.0/16', 'fd00::/8'] })),
    allow('notp', one({ notPrincipals: [prefix('cluster.local/ns/shop/')] })),
    allow('notns', one({ notNamespaces: [exact('pay'), exact('shop')] })),
    allow('dst', one({ notDestinationIps: ['10.2.0.0/16'] })),
  ]);
  t.same(e.policies.map((p) => p.ruleFailures[0]!.text[0]), [
    'rule[0] clause[0] destinationPorts: got 8080, want one of [80, 443]',
    'rule[0] clause[0] sourceIps: got 10.1.0.5, want one of [192.168.0.0/16, fd00::/8]',
    'rule[0] clause[0] notPrincipals: got cluster.local/ns/shop/sa/frontend, want not Prefix cluster.local/ns/shop/',
    'rule[0] clause[0] notNamespaces: got shop, want none of [Exact pay, Exact shop]',
    'rule[0] clause[0] notDestinationIps: got 10.2.0.7, want not 10.2.0.0/16',
  ]);
  t.equal(e.policies[2]!.ruleFailures[0]!.matches[0]!.negated, true);
});

t.test('the first failing field follows ztunnel order: destination IPs before principals', async (t) => {
  const e = explain(plaintext(), [allow('a', one({ principals: [presence], destinationIps: ['10.9.0.0/16'] }))]);
  t.equal(e.policies[0]!.ruleFailures[0]!.matches[0]!.field, 'destinationIps');
});

t.test('each rule reports its first failing clause', async (t) => {
  const e = explain(conn(), [allow('a', [
    [[match({ principals: [presence] })], [match({ destinationPorts: [9090] })], [match({ destinationPorts: [1] })]],
    [[match({ namespaces: [exact('pay')] })]],
  ])]);
  t.same(e.policies[0]!.ruleFailures.map((f) => f.text), [
    ['rule[0] clause[1] destinationPorts: got 8080, want 9090'],
    ['rule[1] clause[0] namespaces: got shop, want Exact pay'],
  ]);
  t.same(e.policies[0]!.ruleFailures.map((f) => [f.ruleIndex, f.clauseIndex]), [[0, 1], [1, 0]]);
});

t.test('a clause with several matches explains each of them', async (t) => {
  const e = explain(conn(), [allow('a', [[[match({ destinationPorts: [1] }), emptyMatch(), match({ namespaces: [exact('pay')] })]]])]);
  t.same(e.policies[0]!.ruleFailures[0]!.text, [
    'rule[0] clause[0] match[0] destinationPorts: got 8080, want 1',
    'rule[0] clause[0] match[1]: empty match (skipped)',
    'rule[0] clause[0] match[2] namespaces: got shop, want Exact pay',
  ]);
});

t.test('a clause of only empty matches is explained as never satisfied', async (t) => {
  const e = explain(conn(), [allow('a', [[[emptyMatch()]]])]);
  const f = e.policies[0]!.ruleFailures[0]!;
  t.equal(f.allMatchesEmpty, true);
  t.same(f.text, ['rule[0] clause[0]: every match is empty (clause never satisfied)']);
});

t.test('a policy with no rules is explained as "rules: empty (never matches)"', async (t) => {
  const e = explain(conn(), [allow('closed', NOTHING)]);
  t.equal(e.policies[0]!.emptyRules, true);
  t.same(e.policies[0]!.ruleFailures, []);
  t.match(formatExplanation(e), /shop\/closed .*not matched\n {4}rules: empty \(never matches\)/);
});

t.test('a matching DENY shows its rule, clause and match', async (t) => {
  const e = explain(plaintext(), [deny('strict', [[[match({ destinationPorts: [1] }), match({ notPrincipals: [presence] })]]]), allow('a', ALL)]);
  t.equal(e.decision.allowed, false);
  t.same(e.decision.deciding, { key: 'shop/strict', ruleIndex: 0, clauseIndex: 0, matchIndex: 1, clauseMatches: [1] });
  t.same(e.policies[0]!.matchedRule, { ruleIndex: 0, clauseMatches: [1] });
  const text = formatExplanation(e);
  t.match(text, 'decision: DENY (explicitly denied by: shop/strict)');
  t.match(text, 'deciding policy: shop/strict rule[0] clause[0] match[1]');
});

t.test('the human text names the connection, reasons and dry-run policies', async (t) => {
  const e = explainDecision(conn(), [
    { key: 'shop/dry', policy: deny('dry', ALL, { dryRun: true }), reason: 'namespace' },
    { key: 'istio-system/g', policy: allow('g', one({ destinationPorts: [1] }), { namespace: 'istio-system', scope: 'Global' }), reason: 'global' },
    { key: 'shop/sel', policy: allow('sel', ALL, { scope: 'WorkloadSelector' }), reason: 'selector' },
  ]);
  const text = formatExplanation(e);
  t.match(text, 'connection: 10.1.0.5 (spiffe://cluster.local/ns/shop/sa/frontend) -> 10.2.0.7:8080');
  t.match(text, 'decision: ALLOW (allowed by: shop/sel)');
  t.match(text, 'shop/dry  DENY, applies: namespace, dry-run  matched rule[0]');
  t.match(text, 'istio-system/g  ALLOW, applies: global  not matched');
  t.match(text, 'rule[0] clause[0] destinationPorts: got 8080, want 1');
  t.match(text, 'shop/sel  ALLOW, applies: selector  matched rule[0]');
  t.match(text, 'dry-run: deny policy match (shop/dry)');
});

t.test('the JSON form is plain data with the documented top-level shape', async (t) => {
  const e = explain(plaintext({ dstIp: 'fd00::7', srcIp: 'fd00::1' }), [allow('a', one({ principals: [presence] }))]);
  const round = JSON.parse(JSON.stringify(e)) as Explanation;
  t.same(round, e, 'survives JSON unchanged');
  t.same(Object.keys(round), ['version', 'connection', 'decision', 'policies']);
  t.equal(round.version, 1);
  t.same(round.connection, { srcIp: 'fd00::1', srcIdentity: null, dstIp: 'fd00::7', dstPort: 8080 });
  t.same(Object.keys(round.decision), ['allowed', 'action', 'message', 'deciding', 'logs']);
  t.same(Object.keys(round.policies[0]!), ['key', 'action', 'dryRun', 'reason', 'matched', 'matchedRule', 'emptyRules', 'ruleFailures']);
  t.equal(round.decision.deciding, null);
  t.match(formatExplanation(e), 'connection: fd00::1 (no identity) -> [fd00::7]:8080');
});

t.test('no applicable policies: explain says so and allows', async (t) => {
  const e = explain(conn(), []);
  t.equal(e.decision.allowed, true);
  t.equal(e.decision.message, 'no allow policies');
  t.match(formatExplanation(e), 'policies: none apply');
});
