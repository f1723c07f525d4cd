// `ztunnel explain` as a user runs it: the real CLI process (dist/src/main.js) against config files
// written to a temp dir, and against a real HTTP server on 127.0.0.1 serving a /config_dump built
// by admin/config-dump.ts from the same config. Checks exit codes and what is printed.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { buildConfigDump } from '../../src/admin/config-dump.js';
import { State } from '../../src/state/state.js';
import { istioTransform } from '../../src/xds/istio-transform.js';
import { parseLocalConfig } from '../../src/xds/local-file.js';
import { runMain, tempDir, writeTemp, type CliRun } from '../helpers/daemon.js';

const RUN_TIMEOUT_MS = 30_000;

/** `ztunnel explain ...args` as a process, as a user runs it. */
const explain = (...args: string[]): Promise<CliRun> => runMain(['explain', ...args], RUN_TIMEOUT_MS);

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const OTHER = 'spiffe://cluster.local/ns/shop/sa/other';
const FRONTEND_IP = '10.244.1.12';
const CART1_IP = '10.244.2.45';
const CART2_IP = '10.244.2.46';
const LEGACY_IP = '10.244.3.7';
const VIP = '10.96.31.7';

// cart-1 maps service port 80 through the Service (→ 8080); cart-2 carries its own mapping (→ 9080).
const WORKLOADS = `workloads:
- uid: Kubernetes//Pod/shop/frontend
  name: frontend
  namespace: shop
  serviceAccount: frontend
  trustDomain: cluster.local
  workloadIps: ["${FRONTEND_IP}"]
  protocol: HBONE
  services: {}
- uid: Kubernetes//Pod/shop/cart-1
  name: cart-1
  namespace: shop
  serviceAccount: cart
  trustDomain: cluster.local
  workloadIps: ["${CART1_IP}"]
  protocol: HBONE
  labels: {app: cart}
  services:
    "shop/cart.shop.svc.cluster.local": {}
- uid: Kubernetes//Pod/shop/cart-2
  name: cart-2
  namespace: shop
  serviceAccount: cart
  trustDomain: cluster.local
  workloadIps: ["${CART2_IP}"]
  protocol: HBONE
  labels: {app: cart}
  services:
    "shop/cart.shop.svc.cluster.local": {80: 9080}
- uid: Kubernetes//Pod/legacy/old
  name: old
  namespace: legacy
  serviceAccount: old
  trustDomain: cluster.local
  workloadIps: ["${LEGACY_IP}"]
  protocol: TCP
  services: {}
services:
- name: cart
  namespace: shop
  hostname: cart.shop.svc.cluster.local
  vips: ["/${VIP}"]
  ports: {80: 8080}
`;

/** ztunnel-form policies: frontend may reach cart on 8080 or 9080; nobody may use 9090 in shop. */
const ZTUNNEL_POLICIES = `policies:
- name: cart-from-frontend
  namespace: shop
  scope: Namespace
  action: Allow
  dryRun: false
  rules:
  - - - principals: [{Exact: "cluster.local/ns/shop/sa/frontend"}]
    - - destinationPorts: [8080, 9080]
  - - - namespaces: [{Exact: "admin"}]
- name: no-debug-port
  namespace: shop
  scope: Namespace
  action: Deny
  dryRun: false
  rules:
  - - - destinationPorts: [9090]
`;

/** Istio YAML: mesh-wide STRICT; legacy may be reached by anyone with an identity. */
const ISTIO_STRICT = `---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT
`;

const dir = tempDir('zt-explain-');
const ztunnelFile = writeTemp(dir, 'ztunnel-form.yaml', WORKLOADS + ZTUNNEL_POLICIES);
const strictFile = writeTemp(dir, 'strict.yaml', WORKLOADS + ISTIO_STRICT);
const badFile = writeTemp(dir, 'bad.yaml', WORKLOADS + ZTUNNEL_POLICIES.replace('destinationPorts: [9090]', 'destinationPorts: [70000]'));

t.test('a connection an ALLOW policy matches exits 0 and names the policy and rule', async (t) => {
  const r = await explain('--config', ztunnelFile, '--src-ip', FRONTEND_IP, '--src-identity', FRONTEND, '--dst', `${CART1_IP}:8080`);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, 'workload Kubernetes//Pod/shop/cart-1');
  t.match(r.stdout, 'decision: ALLOW (allowed by: shop/cart-from-frontend)');
  t.match(r.stdout, 'deciding policy: shop/cart-from-frontend rule[0]');
  t.match(r.stdout, /shop\/no-debug-port +DENY, applies: namespace +not matched/);
});

t.test('a connection a DENY policy matches exits 1 and names policy, rule, clause and match', async (t) => {
  const r = await explain('--config', ztunnelFile, '--src-ip', FRONTEND_IP, '--src-identity', FRONTEND, '--dst', `${CART1_IP}:9090`);
  t.equal(r.code, 1, r.stderr);
  t.match(r.stdout, 'decision: DENY (explicitly denied by: shop/no-debug-port)');
  t.match(r.stdout, 'deciding policy: shop/no-debug-port rule[0] clause[0] match[0]');
  t.match(r.stdout, /result: DENY/);
});

t.test('when ALLOW policies exist but none matches, exit 1 shows each rule\'s first failing field with got and want', async (t) => {
  const r = await explain('--config', ztunnelFile, '--src-ip', FRONTEND_IP, '--src-identity', OTHER, '--dst', `${CART1_IP}:8080`);
  t.equal(r.code, 1, r.stderr);
  t.match(r.stdout, 'decision: DENY (allow policies exist, but none allowed)');
  t.match(r.stdout, 'rule[0] clause[0] principals: got cluster.local/ns/shop/sa/other, want Exact cluster.local/ns/shop/sa/frontend');
  t.match(r.stdout, 'rule[1] clause[0] namespaces: got shop, want Exact admin');
  t.notMatch(r.stdout, 'deciding policy:');

  const port = await explain('--config', ztunnelFile, '--src-ip', FRONTEND_IP, '--src-identity', FRONTEND, '--dst', `${CART1_IP}:7000`);
  t.equal(port.code, 1, port.stderr);
  t.match(port.stdout, 'rule[0] clause[1] destinationPorts: got 7000, want one of [8080, 9080]');
});

t.test('plaintext to a workload under a STRICT PeerAuthentication (Istio YAML in the file) is denied by the converted policy', async (t) => {
  for (const flags of [['--plaintext'], []]) {
    const r = await explain('--config', strictFile, '--src-ip', FRONTEND_IP, ...flags, '--dst', `${LEGACY_IP}:80`);
    t.equal(r.code, 1, `${flags.join(' ') || 'no identity flag'}: ${r.stderr}`);
    t.match(r.stdout, 'connection: 10.244.1.12 (no identity)');
    t.match(r.stdout, 'decision: DENY (explicitly denied by: istio-system/istio_converted_static_strict)');
    t.match(r.stdout, /istio-system\/istio_converted_static_strict +DENY, applies: selector +matched rule\[0\]/);
  }
  const hbone = await explain('--config', strictFile, '--src-ip', FRONTEND_IP, '--src-identity', FRONTEND, '--dst', `${LEGACY_IP}:80`);
  t.equal(hbone.code, 0, 'an HBONE peer carries an identity and never trips the STRICT policy');
  t.match(hbone.stdout, 'decision: ALLOW (no allow policies)');
});

t.test('a Service VIP is expanded to every endpoint, each judged at its own target port', async (t) => {
  const r = await explain('--config', ztunnelFile, '--src-ip', FRONTEND_IP, '--src-identity', FRONTEND, '--dst', `${VIP}:80`);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, `destination ${VIP}:80 is Service shop/cart.shop.svc.cluster.local port 80: 2 endpoints`);
  t.match(r.stdout, `workload Kubernetes//Pod/shop/cart-1 (shop/cart-1, spiffe://cluster.local/ns/shop/sa/cart) at ${CART1_IP}:8080`);
  t.match(r.stdout, `workload Kubernetes//Pod/shop/cart-2 (shop/cart-2, spiffe://cluster.local/ns/shop/sa/cart) at ${CART2_IP}:9080`);
  t.match(r.stdout, 'result: ALLOW (all 2 endpoints allowed)');

  const denied = await explain('--config', ztunnelFile, '--src-ip', FRONTEND_IP, '--src-identity', OTHER, '--dst', `${VIP}:80`);
  t.equal(denied.code, 1);
  t.match(denied.stdout, 'result: DENY (2 of 2 endpoints denied)');
});

t.test('--json prints one document with the documented fields', async (t) => {
  const r = await explain('--config', ztunnelFile, '--src-ip', FRONTEND_IP, '--src-identity', OTHER, '--dst', `${VIP}:80`, '--json');
  t.equal(r.code, 1, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, any>;
  t.equal(out.version, 1);
  t.same(out.query, { srcIp: FRONTEND_IP, srcIdentity: OTHER, dst: `${VIP}:80` });
  t.same(out.service, { key: 'shop/cart.shop.svc.cluster.local', name: 'cart', namespace: 'shop', hostname: 'cart.shop.svc.cluster.local', port: 80 });
  t.equal(out.allowed, false);
  t.equal(out.destinations.length, 2);
  const byUid = new Map((out.destinations as any[]).map((d) => [d.workload.uid, d]));
  const d1 = byUid.get('Kubernetes//Pod/shop/cart-1');
  t.same([d1.ip, d1.port], [CART1_IP, 8080]);
  t.same([byUid.get('Kubernetes//Pod/shop/cart-2').ip, byUid.get('Kubernetes//Pod/shop/cart-2').port], [CART2_IP, 9080]);
  t.same(d1.workload, { uid: 'Kubernetes//Pod/shop/cart-1', name: 'cart-1', namespace: 'shop', serviceAccount: 'cart', identity: 'spiffe://cluster.local/ns/shop/sa/cart' });
  t.same(d1.skippedPolicies, []);
  const e = d1.explanation;
  t.equal(e.version, 1);
  t.same(e.connection, { srcIp: FRONTEND_IP, srcIdentity: OTHER, dstIp: CART1_IP, dstPort: 8080 });
  t.same([e.decision.allowed, e.decision.action, e.decision.message, e.decision.deciding], [false, 'DENY', 'allow policies exist, but none allowed', null]);
  const allow = (e.policies as any[]).find((p) => p.key === 'shop/cart-from-frontend');
  t.same([allow.action, allow.reason, allow.matched, allow.dryRun], ['ALLOW', 'namespace', false, false]);
  t.same(allow.ruleFailures[0].matches[0], {
    matchIndex: 0, field: 'principals', negated: false, got: 'cluster.local/ns/shop/sa/other', want: ['Exact cluster.local/ns/shop/sa/frontend'],
  });
});

t.test('bad input exits 2 with a message', async (t) => {
  const cases: Array<{ name: string; args: string[]; message: RegExp }> = [
    { name: 'unknown destination', args: ['--config', ztunnelFile, '--src-ip', FRONTEND_IP, '--dst', '10.9.9.9:80'], message: /no workload or Service VIP has the address 10\.9\.9\.9/ },
    { name: 'both --config and --admin', args: ['--config', ztunnelFile, '--admin', 'http://127.0.0.1:1', '--src-ip', FRONTEND_IP, '--dst', `${CART1_IP}:8080`], message: /exactly one of --config FILE and --admin URL/ },
    { name: 'neither --config nor --admin', args: ['--src-ip', FRONTEND_IP, '--dst', `${CART1_IP}:8080`], message: /exactly one of --config FILE and --admin URL/ },
    { name: 'malformed identity', args: ['--config', ztunnelFile, '--src-ip', FRONTEND_IP, '--src-identity', 'cluster.local/ns/shop/sa/frontend', '--dst', `${CART1_IP}:8080`], message: /is not a SPIFFE identity/ },
    { name: 'identity and --plaintext together', args: ['--config', ztunnelFile, '--src-ip', FRONTEND_IP, '--src-identity', FRONTEND, '--plaintext', '--dst', `${CART1_IP}:8080`], message: /not both/ },
    { name: 'destination without a port', args: ['--config', ztunnelFile, '--src-ip', FRONTEND_IP, '--dst', CART1_IP], message: /is not IP:PORT/ },
    { name: 'source that is not an IP', args: ['--config', ztunnelFile, '--src-ip', 'frontend', '--dst', `${CART1_IP}:8080`], message: /--src-ip "frontend" is not an IP address/ },
    { name: 'missing --dst', args: ['--config', ztunnelFile, '--src-ip', FRONTEND_IP], message: /Missing required argument: dst/ },
    { name: 'Service port the Service does not have', args: ['--config', ztunnelFile, '--src-ip', FRONTEND_IP, '--dst', `${VIP}:81`], message: /has no port 81 \(its ports: 80\)/ },
    { name: 'invalid config file', args: ['--config', badFile, '--src-ip', FRONTEND_IP, '--dst', `${CART1_IP}:8080`], message: /bad\.yaml:\d+ policies\[1\]\.rules\[0\]\[0\]\[0\]\.destinationPorts\[0\]: 70000 is not a u16/ },
    { name: 'missing config file', args: ['--config', `${dir}/nope.yaml`, '--src-ip', FRONTEND_IP, '--dst', `${CART1_IP}:8080`], message: /cannot read --config .*ENOENT/ },
  ];
  for (const c of cases) {
    const r = await explain(...c.args);
    t.equal(r.code, 2, `${c.name}: exit 2`);
    t.match(r.stderr, c.message, `${c.name}: message`);
    t.equal(r.stdout, '', `${c.name}: nothing on stdout`);
  }
});

t.test('--admin reads /config_dump of a running ztunnel and gives the same answers as --config', async (t) => {
  // The dump a daemon would serve after loading strict.yaml: parse + Istio translation + State.
  const parsed = parseLocalConfig(WORKLOADS + ISTIO_STRICT, strictFile);
  if (!parsed.ok) throw new Error('fixture does not parse');
  const transformed = istioTransform(strictFile)(parsed.value);
  if (!transformed.ok) throw new Error('fixture does not translate');
  const state = new State();
  state.apply({
    workloads: { upsert: transformed.value.workloads, remove: [] },
    services: { upsert: transformed.value.services, remove: [] },
    policies: { upsert: transformed.value.policies, remove: [] },
  });
  const body = JSON.stringify(buildConfigDump({ state, certificates: () => [], staticConfig: () => WORKLOADS + ISTIO_STRICT, config: {}, version: {} }));
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (req.url === '/config_dump') res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    else res.writeHead(404).end('not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const admin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const queries: string[][] = [
    ['--src-ip', FRONTEND_IP, '--plaintext', '--dst', `${LEGACY_IP}:80`],
    ['--src-ip', FRONTEND_IP, '--src-identity', FRONTEND, '--dst', `${VIP}:80`],
  ];
  for (const q of queries) {
    const viaAdmin = await explain('--admin', admin, ...q, '--json');
    const viaFile = await explain('--config', strictFile, ...q, '--json');
    t.equal(viaAdmin.code, viaFile.code, `${q.join(' ')}: same exit code`);
    t.same(JSON.parse(viaAdmin.stdout), JSON.parse(viaFile.stdout), `${q.join(' ')}: same JSON`);
  }
  const strictText = await explain('--admin', admin, ...queries[0]!);
  t.equal(strictText.code, 1);
  t.match(strictText.stdout, 'explicitly denied by: istio-system/istio_converted_static_strict');
  t.ok(requests.length >= 3 && requests.every((r) => r === 'GET /config_dump'), 'explain only GETs /config_dump');

  const missing = await explain('--admin', `${admin}/nowhere`, ...queries[0]!);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /config_dump answered HTTP 404/);
});
