import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { translateIstio, type IstioDocument, type TranslateResult, type TranslateWorkload } from './istio-translate.js';
import { evaluate } from './evaluate.js';
import { emptyMatch, type Authorization, type Match } from './model.js';
import { match, presence, exact, prefix, suffix, sa, plaintext, conn } from './evaluate-cases.js';

/** Parses a multi-document YAML stream the way the local-file loader hands it over. */
function documents(text: string, file = 'policies.yaml'): IstioDocument[] {
  return parseAllDocuments(text).map((d, index) => {
    const doc = d.toJS() as { kind?: string } | null;
    const offset = d.contents?.range[0] ?? 0;
    const line = text.slice(0, offset).split('\n').length;
    return { kind: (doc?.kind ?? 'AuthorizationPolicy') as IstioDocument['kind'], doc, line, file, index };
  });
}

const labels = (o: Record<string, string>) => new Map(Object.entries(o));
const WORKLOADS: TranslateWorkload[] = [
  { uid: 'cart', namespace: 'shop', labels: labels({ app: 'cart', tier: 'backend' }) },
  { uid: 'front', namespace: 'shop', labels: labels({ app: 'frontend' }) },
  { uid: 'pay-cart', namespace: 'pay', labels: labels({ app: 'cart' }) },
  { uid: 'sys', namespace: 'istio-system', labels: labels({ app: 'cart' }) },
];

function run(yaml: string, workloads = WORKLOADS, rootNamespace = 'istio-system'): TranslateResult {
  return translateIstio({ documents: documents(yaml), workloads, rootNamespace });
}

const STRICT_KEY = 'istio-system/istio_converted_static_strict';
const STATIC_STRICT: Authorization = {
  name: 'istio_converted_static_strict', namespace: 'istio-system', scope: 'WorkloadSelector', action: 'Deny', dryRun: false,
  rules: [[[match({ notPrincipals: [presence] })]]],
};
const HTTP = (found: string, tail: string): string =>
  `ztunnel does not support HTTP attributes (found: ${found}). In ambient mode you must use a waypoint proxy to enforce HTTP rules. ${tail}`;
const ALLOW_TAIL = 'Within an ALLOW policy, rules matching HTTP attributes are omitted. This will be more restrictive than requested.';
const DENY_MIXED = 'DENY policy with HTTP attributes is enforced without the HTTP rules. This will be more restrictive than requested.';
const DENY_NONE = 'After omitting unsupported HTTP attributes, this DENY policy has no enforceable rules at ztunnel and will have no effect. Deploy a waypoint proxy and use a targetRef to enforce this policy.';

const ap = (name: string, ns: string, spec: string, extraMeta = ''): string =>
  `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: ${name}\n  namespace: ${ns}\n${extraMeta}spec:\n${spec}\n`;
const pa = (name: string, ns: string, spec: string): string =>
  `apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata:\n  name: ${name}\n  namespace: ${ns}\nspec:\n${spec}\n`;
const stream = (...docs: string[]): string => docs.join('---\n');

const policy = (r: TranslateResult, key: string): Authorization | undefined => r.policies.find((p) => `${p.namespace}/${p.name}` === key);
const msgs = (l: ReadonlyArray<{ message: string }>): string[] => l.map((x) => x.message);
const presenceDeny: Match = match({ notPrincipals: [presence] });

type Test = Pick<typeof t, 'equal' | 'same' | 'match' | 'ok'>;
interface Row {
  readonly name: string;
  readonly yaml: string;
  readonly rootNamespace?: string;
  readonly check: (t: Test, r: TranslateResult) => void;
}

const ROWS: Row[] = [
  // --- AuthorizationPolicy: scope, attachment, clauses ----------------------------------------
  {
    name: 'from + to become two clauses, operation clause first, in a namespace-scoped ALLOW',
    yaml: ap('cart-from-frontend', 'shop', `  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/shop/sa/frontend"]
    to:
    - operation:
        ports: ["8080"]`),
    check: (t, r) => {
      t.same(r.policies, [{
        name: 'cart-from-frontend', namespace: 'shop', scope: 'Namespace', action: 'Allow', dryRun: false,
        rules: [[[match({ destinationPorts: [8080] })], [match({ principals: [exact('cluster.local/ns/shop/sa/frontend')] })]]],
      }]);
      t.same(r.warnings, []);
      t.same(r.errors, []);
      t.same(r.attachments.get('cart'), [], 'namespace policies are not listed on workloads');
    },
  },
  {
    name: 'a selector policy is WorkloadSelector-scoped and listed only on matching workloads of its namespace',
    yaml: ap('only-cart', 'shop', `  selector:
    matchLabels: {app: cart}
  rules: [{}]`),
    check: (t, r) => {
      t.equal(r.policies[0]!.scope, 'WorkloadSelector');
      t.same(r.policies[0]!.rules, [[]], 'an empty rule {} is a rule with no clauses');
      t.same(r.attachments.get('cart'), ['shop/only-cart']);
      t.same(r.attachments.get('front'), [], 'labels do not match');
      t.same(r.attachments.get('pay-cart'), [], 'same labels in another namespace do not attach');
    },
  },
  {
    name: 'a selector matches only when every label matches',
    yaml: ap('backend-cart', 'shop', `  selector:
    matchLabels: {app: cart, tier: frontend}
  rules: [{}]`),
    check: (t, r) => t.same(r.attachments.get('cart'), []),
  },
  {
    name: 'a policy in the root namespace without selector is Global',
    yaml: ap('mesh-deny', 'istio-system', `  action: DENY
  rules:
  - to:
    - operation:
        ports: ["9090"]`),
    check: (t, r) => {
      t.equal(r.policies[0]!.scope, 'Global');
      t.equal(r.policies[0]!.action, 'Deny');
      t.same(r.attachments.get('cart'), []);
    },
  },
  {
    name: 'a selector policy in the root namespace attaches across namespaces',
    yaml: ap('all-carts', 'istio-system', `  selector:
    matchLabels: {app: cart}
  rules: [{}]`),
    check: (t, r) => {
      t.equal(r.policies[0]!.scope, 'WorkloadSelector');
      t.same(r.attachments.get('cart'), ['istio-system/all-carts']);
      t.same(r.attachments.get('pay-cart'), ['istio-system/all-carts']);
      t.same(r.attachments.get('sys'), ['istio-system/all-carts']);
      t.same(r.attachments.get('front'), []);
    },
  },
  {
    name: 'spec: {} is an ALLOW with no rules (allow-nothing)',
    yaml: ap('allow-nothing', 'shop', '  {}'),
    check: (t, r) => {
      t.same(r.policies, [{ name: 'allow-nothing', namespace: 'shop', scope: 'Namespace', action: 'Allow', dryRun: false, rules: [] }]);
      t.equal(evaluate(conn(), r.policies).message, 'allow policies exist, but none allowed');
    },
  },
  {
    name: 'when conditions each become their own clause after to and from, values and notValues split',
    yaml: ap('conds', 'shop', `  rules:
  - from:
    - source: {namespaces: [shop]}
    when:
    - key: source.namespace
      values: [shop]
      notValues: [kube-system]
    - key: source.principal
      values: ["*/sa/frontend"]
    - key: source.ip
      notValues: [10.0.0.0/8]
    - key: destination.port
      values: ["8080", "8443"]
    - key: destination.ip
      values: [10.2.0.7]`),
    check: (t, r) => {
      t.same(r.policies[0]!.rules, [[
        [match({ namespaces: [exact('shop')] })],
        [match({ namespaces: [exact('shop')], notNamespaces: [exact('kube-system')] })],
        [match({ principals: [suffix('/sa/frontend')] })],
        [match({ notSourceIps: ['10.0.0.0/8'] })],
        [match({ destinationPorts: [8080, 8443] })],
        [match({ destinationIps: ['10.2.0.7/32'] })],
      ]]);
      t.same(r.warnings, []);
    },
  },
  {
    name: 'string patterns: * is presence, *x suffix, x* prefix, else exact; service accounts ns/sa or bare',
    yaml: ap('patterns', 'shop', `  rules:
  - from:
    - source:
        principals: ["*", "*/sa/admin", "cluster.local/ns/pay/*", "cluster.local/ns/shop/sa/x"]
        notNamespaces: ["kube-*"]
        serviceAccounts: ["pay/api", "worker"]
        notServiceAccounts: ["a/b/c"]`),
    check: (t, r) => t.same(r.policies[0]!.rules, [[[match({
      principals: [presence, suffix('/sa/admin'), prefix('cluster.local/ns/pay/'), exact('cluster.local/ns/shop/sa/x')],
      notNamespaces: [prefix('kube-')],
      serviceAccounts: [sa('pay', 'api'), sa('shop', 'worker')],
      notServiceAccounts: [sa('a', 'b/c')],
    })]]]),
  },
  {
    name: 'ports: decimal only; unparsable and > 65535 are dropped with a warning',
    yaml: ap('ports', 'shop', `  rules:
  - to:
    - operation:
        ports: ["80", "080", "65535", "65536", "http", "-1", ""]
        notPorts: ["9090"]`),
    check: (t, r) => {
      t.same(r.policies[0]!.rules, [[[match({ destinationPorts: [80, 80, 65535], notDestinationPorts: [9090] })]]]);
      t.equal(r.warnings.length, 4);
      t.match(r.warnings[0]!.message, 'spec.rules[0].to[0].operation.ports: "65536" is not a port; dropped');
    },
  },
  {
    name: 'IPs: bare addresses become /32 and /128, CIDRs kept, unparsable dropped',
    yaml: ap('ips', 'shop', `  rules:
  - from:
    - source:
        ipBlocks: ["10.1.2.3", "10.0.0.0/8", "fd00::1", "fd00::/64", "10.0.0.1/8", "10.0.0.0/33", "010.0.0.1", "nope", "1.2.3.4/08", "fe80::1%eth0"]
        notIpBlocks: ["192.168.0.0/16"]`),
    check: (t, r) => {
      t.same(r.policies[0]!.rules, [[[match({
        sourceIps: ['10.1.2.3/32', '10.0.0.0/8', 'fd00::1/128', 'fd00::/64', '10.0.0.1/8', 'fe80::1/128'],
        notSourceIps: ['192.168.0.0/16'],
      })]]]);
      t.equal(r.warnings.length, 4, 'one warning per dropped value');
    },
  },
  {
    name: 'trustDomains are not translated: a source with only trustDomains is an empty match, without warning',
    yaml: ap('td', 'shop', `  rules:
  - from:
    - source:
        trustDomains: ["cluster.local"]`),
    check: (t, r) => {
      t.same(r.policies[0]!.rules, [[[emptyMatch()]]]);
      t.same(r.warnings, []);
      t.equal(evaluate(conn(), r.policies).allowed, false, 'the empty match never matches');
    },
  },

  // --- HTTP attributes -------------------------------------------------------------------------
  {
    name: 'ALLOW: a rule with HTTP attributes is dropped entirely; other rules stay',
    yaml: ap('http-allow', 'shop', `  rules:
  - to:
    - operation:
        methods: ["GET"]
        ports: ["8080"]
  - from:
    - source:
        namespaces: ["shop"]`),
    check: (t, r) => {
      t.same(r.policies[0]!.rules, [[[match({ namespaces: [exact('shop')] })]]]);
      t.same(msgs(r.warnings), [`AuthorizationPolicy shop/http-allow: ${HTTP('methods', ALLOW_TAIL)}`]);
    },
  },
  {
    name: 'ALLOW: a policy whose rules all use HTTP attributes allows nothing',
    yaml: ap('http-only', 'shop', `  rules:
  - to:
    - operation:
        paths: ["/admin"]
        hosts: ["a.example"]
    when:
    - key: request.headers[x-user]
      values: ["alice"]`),
    check: (t, r) => {
      t.same(r.policies[0]!.rules, []);
      t.same(msgs(r.warnings), [`AuthorizationPolicy shop/http-only: ${HTTP('hosts, paths, request.headers[x-user]', ALLOW_TAIL)}`]);
      t.equal(evaluate(conn(), r.policies).allowed, false);
    },
  },
  {
    name: 'DENY: HTTP attributes are removed and the L4 rest is kept (broader than written)',
    yaml: ap('http-deny', 'shop', `  action: DENY
  rules:
  - to:
    - operation:
        methods: ["DELETE"]
        ports: ["8080"]
    from:
    - source:
        requestPrincipals: ["*"]
        namespaces: ["pay"]`),
    check: (t, r) => {
      t.same(r.policies[0]!.rules, [[[match({ destinationPorts: [8080] })], [match({ namespaces: [exact('pay')] })]]]);
      t.same(msgs(r.warnings), [`AuthorizationPolicy shop/http-deny: ${HTTP('methods, requestPrincipals', DENY_MIXED)}`]);
      t.equal(evaluate(conn({ srcIdentity: { trustDomain: 'cluster.local', namespace: 'pay', serviceAccount: 'x' } }), r.policies).allowed, false,
        'all TCP from pay to 8080 is denied, whatever the method');
    },
  },
  {
    name: 'DENY: an operation with only HTTP attributes leaves an empty match, so the DENY has no effect',
    yaml: ap('http-deny-none', 'shop', `  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/admin"]
        notMethods: ["GET"]`),
    check: (t, r) => {
      t.same(r.policies[0]!.rules, [[[emptyMatch()]]]);
      t.same(msgs(r.warnings), [`AuthorizationPolicy shop/http-deny-none: ${HTTP('notMethods, paths', DENY_NONE)}`]);
      t.equal(evaluate(conn(), r.policies).allowed, true);
    },
  },
  {
    name: 'DENY: an HTTP-only when condition makes its clause unsatisfiable; remoteIpBlocks are HTTP too',
    yaml: ap('http-deny-when', 'shop', `  action: DENY
  rules:
  - from:
    - source:
        namespaces: ["pay"]
        notRemoteIpBlocks: ["1.2.3.4"]
    when:
    - key: request.auth.claims[iss]
      values: ["x"]`),
    check: (t, r) => {
      t.same(r.policies[0]!.rules, [[[match({ namespaces: [exact('pay')] })], [emptyMatch()]]]);
      t.same(msgs(r.warnings), [`AuthorizationPolicy shop/http-deny-when: ${HTTP('notRemoteIpBlocks, request.auth.claims[iss]', DENY_NONE)}`]);
    },
  },
  {
    name: 'DENY: one ineffective rule next to an effective one is reported as enforced without HTTP rules',
    yaml: ap('http-deny-two', 'shop', `  action: DENY
  rules:
  - to:
    - operation: {hosts: ["x"]}
  - to:
    - operation: {ports: ["22"]}`),
    check: (t, r) => {
      t.same(r.policies[0]!.rules, [[[emptyMatch()]], [[match({ destinationPorts: [22] })]]]);
      t.same(msgs(r.warnings), [`AuthorizationPolicy shop/http-deny-two: ${HTTP('hosts', DENY_MIXED)}`]);
    },
  },

  // --- skipped policies and dry run -------------------------------------------------------------
  {
    name: 'targetRefs policies are for waypoints: skipped with a warning',
    yaml: stream(
      ap('waypoint-pol', 'shop', `  targetRefs:
  - kind: Service
    group: ""
    name: cart
  rules: [{}]`),
      ap('old-style', 'shop', `  targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: wp}
  action: DENY
  rules: [{}]`)),
    check: (t, r) => {
      t.same(r.policies, []);
      t.equal(r.warnings.length, 2);
      t.match(r.warnings[0]!.message, /^AuthorizationPolicy shop\/waypoint-pol: targetRefs/);
      t.equal(r.warnings[1]!.line, 13, 'the warning carries the line of the second document');
    },
  },
  {
    name: 'AUDIT and CUSTOM are not sent to ztunnel: skipped with the istiod status text',
    yaml: stream(ap('audit', 'shop', '  action: AUDIT\n  rules: [{}]'), ap('ext', 'shop', '  action: CUSTOM\n  provider: {name: opa}\n  rules: [{}]')),
    check: (t, r) => {
      t.same(r.policies, []);
      t.same(msgs(r.warnings), [
        'AuthorizationPolicy shop/audit: ztunnel does not support the AUDIT action',
        'AuthorizationPolicy shop/ext: ztunnel does not support the CUSTOM action',
      ]);
    },
  },
  {
    name: 'the istio.io/dry-run annotation sets dryRun; an unparsable value is false with a warning',
    yaml: stream(
      ap('dry', 'shop', '  action: DENY\n  rules: [{}]', '  annotations:\n    istio.io/dry-run: "true"\n'),
      ap('wet', 'shop', '  action: DENY\n  rules: [{}]', '  annotations:\n    istio.io/dry-run: "False"\n'),
      ap('odd', 'shop', '  rules: [{}]', '  annotations:\n    istio.io/dry-run: "yes"\n')),
    check: (t, r) => {
      t.same(r.policies.map((p) => [p.name, p.dryRun]), [['dry', true], ['wet', false], ['odd', false]]);
      t.equal(r.warnings.length, 1);
      t.match(r.warnings[0]!.message, 'shop/odd: annotation istio.io/dry-run: "yes" is not a boolean');
      const d = evaluate(conn(), [r.policies[0]!]);
      t.equal(d.allowed, true, 'the dry-run DENY-all does not deny');
      t.same(d.logs[0], { msg: 'dry-run: deny policy match', policy: 'shop/dry' });
    },
  },

  // --- malformed documents ---------------------------------------------------------------------
  {
    name: 'malformed documents become errors with file and line, and are not translated',
    yaml: stream(
      ap('typo', 'shop', '  rules:\n  - from:\n    - source:\n        principal: ["x"]'),
      'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: no-ns}\nspec: {}\n',
      ap('bad-action', 'shop', '  action: ALLOWED'),
      ap('bad-list', 'shop', '  rules:\n  - to:\n    - operation:\n        ports: "8080"'),
      ap('no-source', 'shop', '  rules:\n  - from:\n    - {}'),
      ap('good', 'shop', '  rules: [{}]')),
    check: (t, r) => {
      t.same(r.policies.map((p) => p.name), ['good']);
      t.equal(r.errors.length, 5);
      t.same(r.errors.map((e) => e.line), [1, 12, 17, 25, 36]);
      t.ok(r.errors.every((e) => e.file === 'policies.yaml'));
      t.match(r.errors[0]!.message, 'AuthorizationPolicy shop/typo: spec.rules[0].from[0].source.principal: unknown field');
      t.match(r.errors[1]!.message, 'metadata.namespace: required');
      t.match(r.errors[2]!.message, 'spec.action: must be one of ALLOW, DENY, AUDIT, CUSTOM');
      t.match(r.errors[3]!.message, 'spec.rules[0].to[0].operation.ports: expected a list of strings');
      t.match(r.errors[4]!.message, 'spec.rules[0].from[0].source: required');
    },
  },
  {
    name: 'a document that is not a map, and a second policy with the same name, are errors',
    yaml: stream('"just a string"\n', ap('dup', 'shop', '  rules: [{}]'), ap('dup', 'shop', '  action: DENY\n  rules: [{}]')),
    check: (t, r) => {
      t.equal(r.errors.length, 2);
      t.match(r.errors[0]!.message, 'expected a map');
      t.match(r.errors[1]!.message, 'AuthorizationPolicy shop/dup: defined twice');
      t.same(r.policies.map((p) => p.action), ['Allow'], 'the first one is kept');
    },
  },

  // --- PeerAuthentication -----------------------------------------------------------------------
  {
    name: 'mesh STRICT: the static strict policy is published and listed on every workload',
    yaml: pa('default', 'istio-system', '  mtls: {mode: STRICT}'),
    check: (t, r) => {
      t.same(r.policies, [STATIC_STRICT]);
      for (const w of WORKLOADS) t.same(r.attachments.get(w.uid), [STRICT_KEY], w.uid);
      const d = evaluate(plaintext(), [policy(r, STRICT_KEY)!]);
      t.equal(d.message, 'explicitly denied by: istio-system/istio_converted_static_strict', 'plaintext is rejected');
      t.equal(evaluate(conn(), [policy(r, STRICT_KEY)!]).allowed, true, 'mTLS passes');
    },
  },
  {
    name: 'PERMISSIVE: the static strict policy is still published but nothing lists it',
    yaml: pa('default', 'istio-system', '  mtls: {mode: PERMISSIVE}'),
    check: (t, r) => {
      t.same(r.policies, [STATIC_STRICT]);
      t.same(r.attachments.get('cart'), []);
    },
  },
  {
    name: 'a namespace PA overrides the mesh; an UNSET namespace PA inherits it',
    yaml: stream(pa('default', 'istio-system', '  mtls: {mode: STRICT}'), pa('ns', 'shop', '  mtls: {mode: PERMISSIVE}'), pa('ns', 'pay', '  mtls: {}')),
    check: (t, r) => {
      t.same(r.attachments.get('cart'), [], 'shop is PERMISSIVE');
      t.same(r.attachments.get('pay-cart'), [STRICT_KEY], 'pay inherits STRICT');
    },
  },
  {
    name: 'a workload PA overrides its namespace in both directions',
    yaml: stream(
      pa('ns', 'shop', '  mtls: {mode: PERMISSIVE}'),
      pa('cart-strict', 'shop', '  selector: {matchLabels: {app: cart}}\n  mtls: {mode: STRICT}'),
      pa('ns', 'pay', '  mtls: {mode: STRICT}'),
      pa('pay-open', 'pay', '  selector: {matchLabels: {app: cart}}\n  mtls: {mode: DISABLE}')),
    check: (t, r) => {
      t.same(r.attachments.get('cart'), [STRICT_KEY]);
      t.same(r.attachments.get('front'), []);
      t.same(r.attachments.get('pay-cart'), [], 'DISABLE clears STRICT like PERMISSIVE');
    },
  },
  {
    name: 'at one level the oldest (earliest document) PeerAuthentication wins',
    yaml: stream(pa('first', 'shop', '  mtls: {mode: PERMISSIVE}'), pa('second', 'shop', '  mtls: {mode: STRICT}'),
      pa('first', 'pay', '  mtls: {mode: STRICT}'), pa('second', 'pay', '  mtls: {mode: PERMISSIVE}')),
    check: (t, r) => {
      t.same(r.attachments.get('cart'), []);
      t.same(r.attachments.get('pay-cart'), [STRICT_KEY]);
    },
  },
  {
    name: 'a selector PA in the root namespace is ignored',
    yaml: pa('sel', 'istio-system', '  selector: {matchLabels: {app: cart}}\n  mtls: {mode: STRICT}'),
    check: (t, r) => {
      t.same(r.policies, [STATIC_STRICT], 'any PA publishes the static policy');
      t.same(r.attachments.get('cart'), []);
      t.same(r.attachments.get('pay-cart'), []);
    },
  },

  // --- portLevelMtls (policy.md §6 steps 1–6 and the listing table) ---------------------------
  {
    name: 'P=STRICT with a PERMISSIVE port: derived policy denies plaintext except on that port, and replaces static strict',
    yaml: pa('cart', 'shop', '  selector: {matchLabels: {app: cart}}\n  mtls: {mode: STRICT}\n  portLevelMtls:\n    8080: {mode: PERMISSIVE}'),
    check: (t, r) => {
      t.same(policy(r, 'shop/converted_peer_authentication_cart'), {
        name: 'converted_peer_authentication_cart', namespace: 'shop', scope: 'WorkloadSelector', action: 'Deny', dryRun: false,
        rules: [[[presenceDeny], [match({ notDestinationPorts: [8080] })]]],
      });
      t.same(r.attachments.get('cart'), ['shop/converted_peer_authentication_cart']);
      const derived = policy(r, 'shop/converted_peer_authentication_cart')!;
      t.equal(evaluate(plaintext({ dstPort: 8080 }), [derived]).allowed, true, 'plaintext on 8080 passes');
      t.equal(evaluate(plaintext({ dstPort: 9000 }), [derived]).allowed, false, 'plaintext on 9000 is denied');
      t.equal(evaluate(conn({ dstPort: 9000 }), [derived]).allowed, true, 'mTLS passes everywhere');
    },
  },
  {
    name: 'P=STRICT with only STRICT ports: no derived policy, static strict listed',
    yaml: pa('cart', 'shop', '  selector: {matchLabels: {app: cart}}\n  mtls: {mode: STRICT}\n  portLevelMtls:\n    8080: {mode: STRICT}'),
    check: (t, r) => {
      t.same(r.policies, [STATIC_STRICT]);
      t.same(r.attachments.get('cart'), [STRICT_KEY]);
    },
  },
  {
    name: 'P=PERMISSIVE with a STRICT port: one rule per STRICT port, derived policy listed',
    yaml: pa('cart', 'shop', '  selector: {matchLabels: {app: cart}}\n  mtls: {mode: PERMISSIVE}\n  portLevelMtls:\n    9000: {mode: STRICT}\n    8080: {mode: STRICT}\n    7000: {mode: PERMISSIVE}'),
    check: (t, r) => {
      t.same(policy(r, 'shop/converted_peer_authentication_cart')!.rules, [
        [[match({ notPrincipals: [presence], destinationPorts: [8080] })]],
        [[match({ notPrincipals: [presence], destinationPorts: [9000] })]],
      ], 'ports in ascending order');
      t.same(r.attachments.get('cart'), ['shop/converted_peer_authentication_cart']);
    },
  },
  {
    name: 'P=UNSET under a STRICT namespace with a PERMISSIVE port: exemption plus merged strictness, listed alone',
    yaml: stream(pa('ns', 'shop', '  mtls: {mode: STRICT}'),
      pa('cart', 'shop', '  selector: {matchLabels: {app: cart}}\n  portLevelMtls:\n    8080: {mode: PERMISSIVE}')),
    check: (t, r) => {
      t.same(policy(r, 'shop/converted_peer_authentication_cart')!.rules, [[[match({ notDestinationPorts: [8080] })], [presenceDeny]]]);
      t.same(r.attachments.get('cart'), ['shop/converted_peer_authentication_cart']);
      t.same(r.attachments.get('front'), [STRICT_KEY]);
    },
  },
  {
    name: 'P=UNSET under a STRICT namespace with only a DISABLE port: the policy exists but static strict stays listed',
    yaml: stream(pa('ns', 'shop', '  mtls: {mode: STRICT}'),
      pa('cart', 'shop', '  selector: {matchLabels: {app: cart}}\n  portLevelMtls:\n    8080: {mode: DISABLE}')),
    check: (t, r) => {
      t.ok(policy(r, 'shop/converted_peer_authentication_cart'), 'derived policy published');
      t.same(r.attachments.get('cart'), [STRICT_KEY], 'DISABLE-only exceptions keep the port STRICT');
    },
  },
  {
    name: 'P=UNSET under a permissive parent with a STRICT port: derived policy listed',
    yaml: pa('cart', 'shop', '  selector: {matchLabels: {app: cart}}\n  portLevelMtls:\n    9000: {mode: STRICT}'),
    check: (t, r) => {
      t.same(policy(r, 'shop/converted_peer_authentication_cart')!.rules, [[[match({ notPrincipals: [presence], destinationPorts: [9000] })]]]);
      t.same(r.attachments.get('cart'), ['shop/converted_peer_authentication_cart']);
    },
  },
  {
    name: 'quirk: P=UNSET, N=UNSET, M=STRICT with a PERMISSIVE port lists a derived policy that does not exist',
    yaml: stream(pa('mesh', 'istio-system', '  mtls: {mode: STRICT}'), pa('ns', 'shop', '  mtls: {mode: UNSET}'),
      pa('cart', 'shop', '  selector: {matchLabels: {app: cart}}\n  portLevelMtls:\n    8080: {mode: PERMISSIVE}')),
    check: (t, r) => {
      t.equal(policy(r, 'shop/converted_peer_authentication_cart'), undefined, 'no derived policy');
      t.same(r.attachments.get('cart'), ['shop/converted_peer_authentication_cart'], 'but it is listed (ztunnel skips the unknown key)');
      t.same(r.attachments.get('front'), [STRICT_KEY]);
    },
  },
  {
    name: 'P=UNSET, N absent, M=STRICT with a STRICT port: no derived policy, static strict listed',
    yaml: stream(pa('mesh', 'istio-system', '  mtls: {mode: STRICT}'),
      pa('cart', 'shop', '  selector: {matchLabels: {app: cart}}\n  portLevelMtls:\n    8080: {mode: STRICT}')),
    check: (t, r) => {
      t.same(r.policies, [STATIC_STRICT]);
      t.same(r.attachments.get('cart'), [STRICT_KEY]);
    },
  },
  {
    name: 'P=UNSET, N absent, M=STRICT with a PERMISSIVE port: exemption merged with mesh strictness',
    yaml: stream(pa('mesh', 'istio-system', '  mtls: {mode: STRICT}'),
      pa('cart', 'shop', '  selector: {matchLabels: {app: cart}}\n  portLevelMtls:\n    8080: {mode: PERMISSIVE}')),
    check: (t, r) => {
      t.same(policy(r, 'shop/converted_peer_authentication_cart')!.rules, [[[match({ notDestinationPorts: [8080] })], [presenceDeny]]]);
      t.same(r.attachments.get('cart'), ['shop/converted_peer_authentication_cart']);
    },
  },
  {
    name: 'P=PERMISSIVE with only PERMISSIVE ports: nothing derived, nothing listed',
    yaml: pa('cart', 'shop', '  selector: {matchLabels: {app: cart}}\n  mtls: {mode: PERMISSIVE}\n  portLevelMtls:\n    8080: {mode: PERMISSIVE}'),
    check: (t, r) => {
      t.same(r.policies, [STATIC_STRICT]);
      t.same(r.attachments.get('cart'), []);
    },
  },
  {
    name: 'malformed PeerAuthentication: bad mode and bad port key are errors',
    yaml: stream(pa('bad-mode', 'shop', '  mtls: {mode: STRICTER}'), pa('bad-port', 'shop', '  selector: {matchLabels: {a: b}}\n  portLevelMtls:\n    http: {mode: STRICT}')),
    check: (t, r) => {
      t.equal(r.errors.length, 2);
      t.match(r.errors[0]!.message, 'PeerAuthentication shop/bad-mode: spec.mtls.mode: must be one of UNSET, DISABLE, PERMISSIVE, STRICT');
      t.match(r.errors[1]!.message, 'spec.portLevelMtls.http: the key must be a port number');
      t.same(r.policies, []);
    },
  },

  // --- together -----------------------------------------------------------------------------------
  {
    name: 'a workload lists its sorted selector policies, then its PeerAuthentication keys',
    yaml: stream(
      ap('z-allow', 'shop', '  selector: {matchLabels: {app: cart}}\n  rules: [{}]'),
      ap('a-deny', 'shop', '  selector: {matchLabels: {tier: backend}}\n  action: DENY\n  rules:\n  - to:\n    - operation: {ports: ["9"]}'),
      ap('mesh', 'istio-system', '  selector: {matchLabels: {app: cart}}\n  rules: [{}]'),
      pa('default', 'istio-system', '  mtls: {mode: STRICT}')),
    check: (t, r) => {
      t.same(r.attachments.get('cart'), ['istio-system/mesh', 'shop/a-deny', 'shop/z-allow', STRICT_KEY]);
      t.same(r.policies.map((p) => `${p.namespace}/${p.name}`), ['shop/z-allow', 'shop/a-deny', 'istio-system/mesh', STRICT_KEY]);
    },
  },
  {
    name: 'a custom root namespace is honoured for scope and the static strict key',
    yaml: stream(ap('g', 'mesh-root', '  rules: [{}]'), pa('default', 'mesh-root', '  mtls: {mode: STRICT}')),
    rootNamespace: 'mesh-root',
    check: (t, r) => {
      t.equal(policy(r, 'mesh-root/g')!.scope, 'Global');
      t.same(r.attachments.get('cart'), ['mesh-root/istio_converted_static_strict']);
    },
  },
];

t.test('the translation table has at least 25 rows', async (t) => {
  t.ok(ROWS.length >= 25, `${ROWS.length} rows`);
});

for (const row of ROWS) {
  t.test(row.name, async (t) => {
    row.check(t, run(row.yaml, WORKLOADS, row.rootNamespace));
  });
}

t.test('translation never throws on arbitrary junk', async (t) => {
  const junk: unknown[] = [null, 42, [], { metadata: 'x' }, { metadata: { name: 'a', namespace: 'b' }, spec: { rules: 'x' } },
    { metadata: { name: 'a', namespace: 'b' }, spec: { rules: [{ from: [{ source: { principals: [{}] } }] }] } },
    { metadata: { name: 'a', namespace: 'b' }, spec: { rules: [{ when: [{ key: 7 }] }] } },
    { metadata: { name: 'a', namespace: 'b', annotations: [] }, spec: { selector: { matchLabels: { a: {} } } } }];
  for (const kind of ['AuthorizationPolicy', 'PeerAuthentication'] as const) {
    const r = translateIstio({
      documents: junk.map((doc, index) => ({ kind, doc, line: index + 1, file: 'junk.yaml', index })),
      workloads: WORKLOADS, rootNamespace: 'istio-system',
    });
    t.ok(r.errors.length >= junk.length - 1, `${kind}: errors reported (${r.errors.length})`);
  }
});

t.test('an Istio STRICT PeerAuthentication blocks plaintext end to end while an ALLOW still applies to mTLS', async (t) => {
  const r = run(stream(
    pa('default', 'istio-system', '  mtls: {mode: STRICT}'),
    ap('cart', 'shop', '  selector: {matchLabels: {app: cart}}\n  rules:\n  - from:\n    - source: {principals: ["cluster.local/ns/shop/sa/frontend"]}')));
  const keys = r.attachments.get('cart')!;
  const applicable = keys.map((k) => policy(r, k)).filter((p): p is Authorization => p !== undefined);
  t.equal(evaluate(plaintext(), applicable).message, 'explicitly denied by: istio-system/istio_converted_static_strict');
  t.equal(evaluate(conn(), applicable).message, 'allowed by: shop/cart');
  t.equal(evaluate(conn({ srcIdentity: { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'cart' } }), applicable).message,
    'allow policies exist, but none allowed');
});
