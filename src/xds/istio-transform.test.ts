import t from 'tap';
import { evaluate } from '../policy/evaluate.js';
import { identityOf } from '../state/workload-identity.js';
import { istioTransform, type TransformWarning } from './istio-transform.js';
import { parseLocalConfig, type LocalConfigSnapshot } from './local-file.js';
import { INLINE_CONFIG_NAME, LocalConfigSource } from './local-source.js';
import type { StateBatch } from '../state/batch.js';
import { createLogger } from '../telemetry/logger.js';

const FILE = 'local.yaml';

const ZTUNNEL_DOC = `workloads:
- uid: cart
  name: cart
  namespace: shop
  serviceAccount: cart
  trustDomain: cluster.local
  workloadIps: ["10.0.0.2"]
  labels: {app: cart}
  authorizationPolicies: ["shop/hand-written", "shop/cart-allow"]
  services: {}
- uid: front
  name: front
  namespace: shop
  serviceAccount: front
  trustDomain: cluster.local
  workloadIps: ["10.0.0.1"]
  labels: {app: frontend}
  services: {}
policies:
- name: hand-written
  namespace: shop
  scope: WorkloadSelector
  action: Deny
  dryRun: false
  rules:
  - - - destinationPorts: [9090]
`;

const CART_ALLOW = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: cart-allow
  namespace: shop
spec:
  selector:
    matchLabels: {app: cart}
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/shop/sa/front"]
`;

const STRICT_PA = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls: {mode: STRICT}
`;

const HTTP_ALLOW = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: by-method
  namespace: shop
spec:
  rules:
  - to:
    - operation:
        methods: ["GET"]
`;

function parse(text: string): LocalConfigSnapshot {
  const r = parseLocalConfig(text, FILE);
  if (!r.ok) throw new Error(`test fixture does not parse: ${JSON.stringify(r.errors)}`);
  return r.value;
}

const stream = (...docs: string[]): string => docs.join('---\n');
const keys = (s: LocalConfigSnapshot): string[] => s.policies.map((p) => `${p.namespace}/${p.name}`);
const lineOf = (text: string, needle: string): number => text.slice(0, text.indexOf(needle)).split('\n').length;

t.test('a file without Istio documents passes through as the very same snapshot', async (t) => {
  const snap = parse(ZTUNNEL_DOC);
  const r = istioTransform(FILE)(snap);
  t.ok(r.ok);
  if (r.ok) {
    t.equal(r.value, snap);
    t.same(r.warnings, []);
  }
});

t.test('Istio documents become policies appended after the ztunnel-form ones, and selector policies attach to matching workloads', async (t) => {
  const snap = parse(stream(ZTUNNEL_DOC, CART_ALLOW, STRICT_PA));
  const r = istioTransform(FILE)(snap);
  t.ok(r.ok);
  if (!r.ok) return;
  t.same(keys(r.value), ['shop/hand-written', 'shop/cart-allow', 'istio-system/istio_converted_static_strict']);
  const cart = r.value.workloads.find((w) => w.uid === 'cart')!;
  const front = r.value.workloads.find((w) => w.uid === 'front')!;
  t.same(cart.authorizationPolicies, ['shop/hand-written', 'shop/cart-allow', 'istio-system/istio_converted_static_strict'],
    'own entries first, the already-listed cart-allow not repeated, then the STRICT conversion');
  t.same(front.authorizationPolicies, ['istio-system/istio_converted_static_strict'], 'a non-matching selector does not attach');
  t.ok(Object.isFrozen(cart) && Object.isFrozen(cart.authorizationPolicies), 'the rebuilt workload is frozen');
  const original = snap.workloads.find((w) => w.uid === 'cart')!;
  t.same(original.authorizationPolicies, ['shop/hand-written', 'shop/cart-allow'], 'the input snapshot is left untouched');

  // The translated policies behave as istiod's would: front (mTLS) may reach cart, plaintext may not.
  const policiesFor = (keysListed: readonly string[]) => r.value.policies.filter((p) => keysListed.includes(`${p.namespace}/${p.name}`));
  const viaMtls = evaluate({ srcIp: '10.0.0.1', srcIdentity: identityOf(front), dstIp: '10.0.0.2', dstPort: 8080 }, policiesFor(cart.authorizationPolicies));
  t.equal(viaMtls.allowed, true);
  const plain = evaluate({ srcIp: '10.0.0.1', srcIdentity: null, dstIp: '10.0.0.2', dstPort: 8080 }, policiesFor(cart.authorizationPolicies));
  t.equal(plain.allowed, false);
  t.equal(plain.message, 'explicitly denied by: istio-system/istio_converted_static_strict');
});

t.test('the top-level rootNamespace decides where the STRICT conversion lives', async (t) => {
  const text = stream(`rootNamespace: mesh-root\n${ZTUNNEL_DOC}`, STRICT_PA.replace('istio-system', 'mesh-root'));
  const r = istioTransform(FILE)(parse(text));
  t.ok(r.ok);
  if (r.ok) t.ok(keys(r.value).includes('mesh-root/istio_converted_static_strict'));
});

t.test('a generated policy key that a ztunnel-form policy already uses fails the load with file and line', async (t) => {
  const clash = CART_ALLOW.replace('name: cart-allow', 'name: hand-written');
  const text = stream(ZTUNNEL_DOC, clash);
  const r = istioTransform(FILE)(parse(text));
  t.notOk(r.ok);
  if (r.ok) return;
  t.equal(r.errors.length, 1);
  t.equal(r.errors[0]!.file, FILE);
  t.equal(r.errors[0]!.severity, 'error');
  t.equal(r.errors[0]!.line, lineOf(text, 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy'));
  t.match(r.errors[0]!.message, /shop\/hand-written/);
});

t.test('the STRICT conversion clashing with a hand-written policy is reported at the PeerAuthentication', async (t) => {
  const handWritten = ZTUNNEL_DOC.replace('name: hand-written\n  namespace: shop', 'name: istio_converted_static_strict\n  namespace: istio-system');
  const text = stream(handWritten, CART_ALLOW, STRICT_PA);
  const r = istioTransform(FILE)(parse(text));
  t.notOk(r.ok);
  if (r.ok) return;
  t.equal(r.errors[0]!.line, lineOf(text, 'apiVersion: security.istio.io/v1\nkind: PeerAuthentication'));
  t.match(r.errors[0]!.message, /istio-system\/istio_converted_static_strict/);
});

t.test('translation errors (a malformed Istio document) fail the load with file and line', async (t) => {
  const bad = CART_ALLOW.replace('  namespace: shop\n', '');
  const text = stream(ZTUNNEL_DOC, bad);
  const r = istioTransform(FILE)(parse(text));
  t.notOk(r.ok);
  if (r.ok) return;
  t.equal(r.errors[0]!.file, FILE);
  t.equal(r.errors[0]!.line, lineOf(text, 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy'));
  t.match(r.errors[0]!.message, /metadata\.namespace/);
});

t.test('translation warnings are returned with file and line, and also given to the log callback', async (t) => {
  const text = stream(ZTUNNEL_DOC, HTTP_ALLOW);
  const logged: TransformWarning[] = [];
  const r = istioTransform(FILE, (w) => logged.push(w))(parse(text));
  t.ok(r.ok);
  if (!r.ok) return;
  t.equal(r.warnings.length, 1);
  const w = r.warnings[0]!;
  t.equal(w.file, FILE);
  t.equal(w.line, lineOf(text, 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy'));
  t.equal(w.severity, 'warning');
  t.match(w.message, /ztunnel does not support HTTP attributes \(found: methods\)/);
  t.same(logged.map((l) => [l.file, l.line, l.message]), [[w.file, w.line, w.message]]);
  t.ok(keys(r.value).includes('shop/by-method'), 'the policy is still installed (it now allows nothing)');
});

t.test('workloads that gain nothing are kept as the same objects', async (t) => {
  const snap = parse(stream(ZTUNNEL_DOC, CART_ALLOW));
  const r2 = istioTransform(FILE)(snap);
  t.ok(r2.ok);
  if (!r2.ok) return;
  // cart already lists shop/cart-allow; front matches no selector.
  t.equal(r2.value.workloads[0], snap.workloads[0]);
  t.equal(r2.value.workloads[1], snap.workloads[1]);
});

t.test('plugged into the local config source, translated policies are applied and warnings logged with file and line', async (t) => {
  const batches: StateBatch[] = [];
  const logs: Array<Record<string, unknown>> = [];
  const logger = createLogger({ level: 'debug', destination: { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) } });
  const text = stream(ZTUNNEL_DOC, HTTP_ALLOW, STRICT_PA);
  const source = new LocalConfigSource({
    inline: text,
    sink: { apply: (b) => void batches.push(b) },
    logger,
    transform: istioTransform(INLINE_CONFIG_NAME),
  });
  await source.start();
  t.teardown(() => source.close());
  t.same(batches[0]!.policies!.upsert.map((p) => `${p.namespace}/${p.name}`), ['shop/hand-written', 'shop/by-method', 'istio-system/istio_converted_static_strict']);
  const cart = batches[0]!.workloads!.upsert.find((w) => w.uid === 'cart')!;
  t.same(cart.authorizationPolicies, ['shop/hand-written', 'shop/cart-allow', 'istio-system/istio_converted_static_strict']);
  const warning = logs.find((l) => typeof l.msg === 'string' && l.msg.includes('ztunnel does not support HTTP attributes'));
  t.ok(warning, 'the translation warning is logged');
  t.equal(warning?.file, INLINE_CONFIG_NAME);
  t.equal(warning?.line, lineOf(text, 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy'));
});

t.test('plugged into the local config source, a translation error rejects the config', async (t) => {
  const source = new LocalConfigSource({
    inline: stream(ZTUNNEL_DOC, CART_ALLOW.replace('name: cart-allow', 'name: hand-written')),
    sink: { apply: () => {} },
    logger: createLogger({ level: 'fatal' }),
    transform: istioTransform(INLINE_CONFIG_NAME),
  });
  await t.rejects(source.start(), { code: 'CONFIG_INVALID', message: /LOCAL_XDS:\d+: the AuthorizationPolicy document generates policy shop\/hand-written/ });
});
