import t from 'tap';
import { readFileSync } from 'node:fs';
import { formatProblem, parseLocalConfig, type LocalConfigResult } from './local-file.js';

const FILE = 'local.yaml';
const y = (...lines: string[]): string => lines.join('\n') + '\n';
const parse = (text: string): LocalConfigResult => parseLocalConfig(text, FILE);

// A minimal valid workload (lines 2-5 when it is the first item under `workloads:` on line 1).
const W = ['- uid: a', '  namespace: ns', '  workloadIps: ["10.0.0.1"]', '  services: {}'];
// A minimal valid service (lines 2-6 under `services:`).
const S = ['- name: svc', '  namespace: ns', '  hostname: svc.ns.svc.cluster.local', '  vips: ["/10.96.0.1"]', '  ports: {80: 8080}'];
// A policy header (lines 2-6 under `policies:`), followed by `  rules:` on line 7.
const P = ['- name: p', '  namespace: ns', '  scope: Namespace', '  action: Allow', '  dryRun: false'];

interface ErrorRow {
  name: string;
  text: string;
  line: number;
  path: string;
  message: string;
}

const errorRows: ErrorRow[] = [
  {
    name: 'a destination port above 65535 in a policy match names the full rule path',
    text: y('policies:', ...P, '  rules:', '  - - - destinationPorts: [70000]'),
    line: 8, path: 'policies[0].rules[0][0][0].destinationPorts[0]', message: '70000 is not a u16',
  },
  {
    name: 'a misspelt top-level key is rejected with a suggestion',
    text: y('workload:', ...W),
    line: 1, path: 'workload', message: 'unknown key "workload" in the ztunnel config document (did you mean "workloads"?)',
  },
  {
    name: 'an unknown key inside a workload is rejected',
    text: y('workloads:', ...W, '  serviceAcount: sa'),
    line: 6, path: 'workloads[0].serviceAcount', message: 'unknown key "serviceAcount" in a workload (did you mean "serviceAccount"?)',
  },
  {
    name: 'a workload without a namespace is rejected',
    text: y('workloads:', '- uid: a', '  workloadIps: []', '  services: {}'),
    line: 2, path: 'workloads[0]', message: 'missing required key "namespace"',
  },
  {
    name: 'a workload without a services map is rejected (use {})',
    text: y('workloads:', '- uid: a', '  namespace: ns', '  workloadIps: []'),
    line: 2, path: 'workloads[0]', message: 'missing required key "services"',
  },
  {
    name: 'a workload without workloadIps is rejected',
    text: y('workloads:', '- uid: a', '  namespace: ns', '  services: {}'),
    line: 2, path: 'workloads[0]', message: 'missing required key "workloadIps"',
  },
  {
    name: 'a malformed workload IP names the list index',
    text: y('workloads:', '- uid: a', '  namespace: ns', '  workloadIps:', '  - 10.0.0.1', '  - 10.0.0.300', '  services: {}'),
    line: 6, path: 'workloads[0].workloadIps[1]', message: '"10.0.0.300" is not an IP address',
  },
  {
    name: 'a protocol outside TCP/HBONE is rejected (enum values are case-sensitive)',
    text: y('workloads:', ...W, '  protocol: hbone'),
    line: 6, path: 'workloads[0].protocol', message: '"hbone" is not one of TCP, HBONE',
  },
  {
    name: 'a workload services key that is not namespace/hostname is rejected',
    text: y('workloads:', '- uid: a', '  namespace: ns', '  workloadIps: []', '  services:', '    cart: {80: 8080}'),
    line: 6, path: 'workloads[0].services["cart"]', message: '"cart" is not "<namespace>/<hostname>"',
  },
  {
    name: 'a target port above 65535 in a workload services map names service and port',
    text: y('workloads:', '- uid: a', '  namespace: ns', '  workloadIps: []', '  services:', '    "ns/cart.ns.svc": {80: 70000}'),
    line: 6, path: 'workloads[0].services["ns/cart.ns.svc"][80]', message: '70000 is not a u16',
  },
  {
    name: 'a negative capacity is not a u32',
    text: y('workloads:', ...W, '  capacity: -1'),
    line: 6, path: 'workloads[0].capacity', message: '-1 is not a u32',
  },
  {
    name: 'nativeTunnel given as a string is not a boolean',
    text: y('workloads:', ...W, '  nativeTunnel: "yes"'),
    line: 6, path: 'workloads[0].nativeTunnel', message: 'expected true or false, got "yes"',
  },
  {
    name: 'a waypoint without hboneMtlsPort is rejected',
    text: y('workloads:', ...W, '  waypoint:', '    destination: /10.0.0.9'),
    line: 7, path: 'workloads[0].waypoint', message: 'missing required key "hboneMtlsPort" in a gateway address',
  },
  {
    name: 'a waypoint destination without a slash is rejected',
    text: y('workloads:', ...W, '  waypoint:', '    destination: waypoint', '    hboneMtlsPort: 15008'),
    line: 7, path: 'workloads[0].waypoint.destination', message: '"waypoint" is not "<network>/<ip>" or "<namespace>/<hostname>"',
  },
  {
    name: 'an unknown key in a gateway address is rejected',
    text: y('workloads:', ...W, '  networkGateway:', '    destination: /10.0.0.9', '    hboneMtlsPort: 15008', '    port: 1'),
    line: 9, path: 'workloads[0].networkGateway.port', message: 'unknown key "port" in a gateway address',
  },
  {
    name: 'an unknown key in an application tunnel is rejected',
    text: y('workloads:', ...W, '  applicationTunnel:', '    protocol: PROXY', '    prot: 1'),
    line: 8, path: 'workloads[0].applicationTunnel.prot', message: 'unknown key "prot" in an application tunnel',
  },
  {
    name: 'a locality needs all three keys',
    text: y('workloads:', ...W, '  locality: {region: r, zone: z}'),
    line: 6, path: 'workloads[0].locality', message: 'missing required key "subzone" in a locality',
  },
  {
    name: 'two workloads with the same uid are rejected, naming the first',
    text: y('workloads:', ...W, ...W),
    line: 6, path: 'workloads[1]', message: 'duplicate workload uid "a" (first defined at line 2)',
  },
  {
    name: 'a service VIP without the network part is rejected',
    text: y('services:', '- name: svc', '  namespace: ns', '  hostname: h', '  vips: ["10.96.0.1"]', '  ports: {}'),
    line: 5, path: 'services[0].vips[0]', message: '"10.96.0.1" is not "<network>/<ip>"',
  },
  {
    name: 'a service port key that is not a number is rejected',
    text: y('services:', '- name: svc', '  namespace: ns', '  hostname: h', '  vips: []', '  ports:', '    http: 8080'),
    line: 7, path: 'services[0].ports["http"]', message: '"http" is not a u16',
  },
  {
    name: 'a service without vips is rejected',
    text: y('services:', '- name: svc', '  namespace: ns', '  hostname: h', '  ports: {}'),
    line: 2, path: 'services[0]', message: 'missing required key "vips" in a service',
  },
  {
    name: 'a load balancer needs all three keys',
    text: y('services:', ...S, '  loadBalancer:', '    routingPreferences: [Region]', '    mode: Strict'),
    line: 8, path: 'services[0].loadBalancer', message: 'missing required key "healthPolicy" in a load balancer',
  },
  {
    name: 'an unknown routing preference is rejected at its index',
    text: y('services:', ...S, '  loadBalancer:', '    routingPreferences: [Region, Planet]', '    mode: Strict', '    healthPolicy: AllowAll'),
    line: 8, path: 'services[0].loadBalancer.routingPreferences[1]', message: '"Planet" is not one of Region, Zone, Subzone, Node, Cluster, Network',
  },
  {
    name: 'an unknown key in a load balancer is rejected',
    text: y('services:', ...S, '  loadBalancer:', '    routingPreferences: []', '    mode: Strict', '    healthPolicy: AllowAll', '    failover: true'),
    line: 11, path: 'services[0].loadBalancer.failover', message: 'unknown key "failover" in a load balancer',
  },
  {
    name: 'an unknown key in a service is rejected',
    text: y('services:', ...S, '  ingressUseWaypoint: true'),
    line: 7, path: 'services[0].ingressUseWaypoint', message: 'unknown key "ingressUseWaypoint" in a service',
  },
  {
    name: 'two services with the same namespace/hostname are rejected',
    text: y('services:', ...S, ...S),
    line: 7, path: 'services[1]', message: 'duplicate service "ns/svc.ns.svc.cluster.local" (first defined at line 2)',
  },
  {
    name: 'a bad CIDR VIP is rejected even though cidrVips are otherwise ignored',
    text: y('services:', ...S, '  cidrVips:', '  - {network: "", cidr: 10.0.0.0/40}'),
    line: 8, path: 'services[0].cidrVips[0].cidr', message: '"10.0.0.0/40" is not a CIDR',
  },
  {
    name: 'a policy without dryRun is rejected (all six keys are required)',
    text: y('policies:', '- name: p', '  namespace: ns', '  scope: Namespace', '  action: Allow', '  rules: []'),
    line: 2, path: 'policies[0]', message: 'missing required key "dryRun" in a policy',
  },
  {
    name: 'a policy scope outside the enum is rejected',
    text: y('policies:', '- name: p', '  namespace: ns', '  scope: Cluster', '  action: Allow', '  dryRun: false', '  rules: []'),
    line: 4, path: 'policies[0].scope', message: '"Cluster" is not one of Global, Namespace, WorkloadSelector',
  },
  {
    name: 'dryRun written as a string is not a boolean',
    text: y('policies:', '- name: p', '  namespace: ns', '  scope: Global', '  action: Deny', '  dryRun: "false"', '  rules: []'),
    line: 6, path: 'policies[0].dryRun', message: 'expected true or false, got "false"',
  },
  {
    name: 'rules with only two list levels are rejected',
    text: y('policies:', ...P, '  rules:', '  - - destinationPorts: [80]'),
    line: 8, path: 'policies[0].rules[0][0]', message: 'expected a list, got a map',
  },
  {
    name: 'a StringMatch of an unknown kind is rejected',
    text: y('policies:', ...P, '  rules:', '  - - - principals: [{Regex: ".*"}]'),
    line: 8, path: 'policies[0].rules[0][0][0].principals[0]', message: '"Regex" is not a StringMatch kind',
  },
  {
    name: 'a StringMatch with two keys is rejected',
    text: y('policies:', ...P, '  rules:', '  - - - namespaces: [{Exact: a, Prefix: b}]'),
    line: 8, path: 'policies[0].rules[0][0][0].namespaces[0]', message: 'got a map with 2 keys',
  },
  {
    name: 'a source CIDR with a prefix longer than the address is rejected',
    text: y('policies:', ...P, '  rules:', '  - - - sourceIps: [10.0.0.0/33]'),
    line: 8, path: 'policies[0].rules[0][0][0].sourceIps[0]', message: '"10.0.0.0/33" is not a CIDR',
  },
  {
    name: 'a service account match without serviceAccount is rejected',
    text: y('policies:', ...P, '  rules:', '  - - - serviceAccounts: [{namespace: ns}]'),
    line: 8, path: 'policies[0].rules[0][0][0].serviceAccounts[0]', message: 'missing required key "serviceAccount"',
  },
  {
    name: 'a port written as a float is not a u16',
    text: y('policies:', ...P, '  rules:', '  - - - notDestinationPorts: [80.0]'),
    line: 8, path: 'policies[0].rules[0][0][0].notDestinationPorts[0]', message: '80.0 is not a u16',
  },
  {
    name: 'two policies with the same namespace/name are rejected',
    text: y('policies:', ...P, '  rules: []', ...P, '  rules: []'),
    line: 8, path: 'policies[1]', message: 'duplicate policy "ns/p" (first defined at line 2)',
  },
  {
    name: 'rootNamespace must be a string',
    text: y('rootNamespace: [a]'),
    line: 1, path: 'rootNamespace', message: 'expected a string, got a list',
  },
  {
    name: 'a YAML syntax error reports its line',
    text: y('workloads:', '- uid: a', '  namespace: [ns', '  services: {}'),
    line: 4, path: '', message: 'YAML syntax',
  },
  {
    name: 'a key repeated in one YAML map is an error at the repeat, naming the first',
    text: y('workloads:', '- uid: a', '  uid: b', '  namespace: ns', '  workloadIps: []', '  services: {}'),
    line: 3, path: 'workloads[0].uid', message: 'duplicate key "uid" in a workload (first at line 2)',
  },
  {
    name: 'a port key written both as 80 and "80" is a duplicate',
    text: y('services:', '- name: a', '  namespace: ns', '  hostname: h', '  vips: []', '  ports: {80: 8080, "80": 9090}'),
    line: 6, path: 'services[0].ports["80"]', message: 'duplicate key 80',
  },
  {
    name: 'a key repeated in an Istio document is rejected',
    text: y('apiVersion: security.istio.io/v1', 'kind: AuthorizationPolicy', 'metadata: {name: a, namespace: ns}', 'spec: {action: DENY, action: ALLOW}'),
    line: 4, path: '', message: 'duplicate key "action"',
  },
  {
    name: 'an alias to an undefined anchor is rejected',
    text: y('workloads:', '- uid: a', '  namespace: *nope', '  workloadIps: []', '  services: {}'),
    line: 3, path: 'workloads[0].namespace', message: 'unknown alias *nope',
  },
  {
    name: 'a document of an unsupported Istio kind is rejected',
    text: y('apiVersion: security.istio.io/v1', 'kind: RequestAuthentication', 'metadata: {name: x}'),
    line: 2, path: 'kind', message: 'unsupported kind "RequestAuthentication"',
  },
  {
    name: 'a document with a foreign apiVersion is rejected',
    text: y('workloads: []', '---', 'apiVersion: networking.istio.io/v1', 'kind: AuthorizationPolicy'),
    line: 3, path: 'apiVersion', message: 'unsupported apiVersion "networking.istio.io/v1"',
  },
  {
    name: 'a second document in the ztunnel form is rejected',
    text: y('workloads: []', '---', 'services: []'),
    line: 3, path: '', message: 'only one document in the ztunnel form',
  },
  {
    name: 'a document that is a list is rejected',
    text: y('- uid: a'),
    line: 1, path: '', message: 'a document must be a map',
  },
  {
    name: 'an authorizationPolicies entry that is not namespace/name is rejected',
    text: y('workloads:', ...W, '  authorizationPolicies: [allow-all]'),
    line: 6, path: 'workloads[0].authorizationPolicies[0]', message: '"allow-all" is not "<namespace>/<name>"',
  },
];

for (const row of errorRows) {
  t.test(row.name, async (t) => {
    const r = parse(row.text);
    t.equal(r.ok, false, 'the file is rejected');
    if (r.ok) return;
    const formatted = r.errors.map(formatProblem);
    const prefix = row.path ? `${FILE}:${row.line} ${row.path}: ` : `${FILE}:${row.line}: `;
    const hit = formatted.find((m) => m.startsWith(prefix) && m.includes(row.message));
    t.ok(hit, `expected "${prefix}…${row.message}…" among:\n${formatted.join('\n')}`);
    for (const e of r.errors) t.equal(e.severity, 'error');
  });
}

t.test('formatProblem renders file:line path: message, and file:line: message without a path', async (t) => {
  t.equal(
    formatProblem({ file: 'local.yaml', line: 42, path: 'policies[1].rules[0][0][0].destinationPorts[0]', message: '70000 is not a u16', severity: 'error' }),
    'local.yaml:42 policies[1].rules[0][0][0].destinationPorts[0]: 70000 is not a u16',
  );
  t.equal(formatProblem({ file: 'f.yaml', line: 3, path: '', message: 'YAML syntax: x', severity: 'error' }), 'f.yaml:3: YAML syntax: x');
});

t.test('every error in a file is reported, not only the first', async (t) => {
  const r = parse(y('workloads:', '- uid: a', '  namespace: ns', '  workloadIps: [nope]', '  protocol: UDP', '  services: {}', 'policies:', ...P, '  rules: [[[{destinationPorts: [-1]}]]]'));
  t.equal(r.ok, false);
  if (r.ok) return;
  t.same(r.errors.map((e) => `${e.line} ${e.path}`).sort(), ['13 policies[0].rules[0][0][0].destinationPorts[0]', '4 workloads[0].workloadIps[0]', '5 workloads[0].protocol']);
});

t.test('the file name given is the one reported', async (t) => {
  const r = parseLocalConfig('workloads: 1\n', '/etc/ztunnel/other.yaml');
  t.equal(r.ok, false);
  if (!r.ok) t.equal(formatProblem(r.errors[0]!), '/etc/ztunnel/other.yaml:1 workloads: expected a list, got 1');
});

// --- defaults and conversions -------------------------------------------------------------------

t.test('an empty file, a comment-only file and empty top-level lists are a valid empty config', async (t) => {
  for (const text of ['', '# nothing here\n', 'workloads:\nservices:\npolicies:\n', '---\n']) {
    const r = parse(text);
    t.ok(r.ok, JSON.stringify(text));
    if (!r.ok) continue;
    t.same(r.value.workloads, []);
    t.same(r.value.services, []);
    t.same(r.value.policies, []);
    t.equal(r.value.rootNamespace, 'istio-system');
    t.same(r.warnings, []);
  }
});

t.test('a minimal workload gets the file defaults, not the proto defaults', async (t) => {
  const r = parse(y('workloads:', '- namespace: ns', '  workloadIps: []', '  services: {}'));
  t.ok(r.ok);
  if (!r.ok) return;
  const w = r.value.workloads[0]!;
  t.equal(w.uid, '');
  t.equal(w.name, '');
  t.equal(w.serviceAccount, '', 'serviceAccount stays empty (proto default would be "default")');
  t.equal(w.trustDomain, '', 'trustDomain stays empty (proto default would be cluster.local)');
  t.equal(w.clusterId, '', 'clusterId stays empty (proto default would be Kubernetes)');
  t.equal(w.protocol, 'TCP');
  t.equal(w.networkMode, 'Standard');
  t.equal(w.status, 'Healthy');
  t.equal(w.capacity, 1);
  t.equal(w.nativeTunnel, false);
  t.equal(w.workloadType, '');
  t.same(w.authorizationPolicies, []);
  t.equal(w.labels.size, 0);
  t.equal(w.services.size, 0);
  t.equal(w.waypoint, undefined);
  t.equal(w.locality, undefined);
  t.equal(w.applicationTunnel, undefined);
});

t.test('workload fields are converted: IPs canonicalised, workloadType lower-cased, labels and ports read', async (t) => {
  const r = parse(
    y(
      'workloads:',
      '- uid: Kubernetes//Pod/ns/a',
      '  namespace: ns',
      '  workloadIps: ["::FFFF:10.0.0.1", "FD00:0:0::0001"]',
      '  workloadType: Deployment',
      '  canonicalRevision: 1',
      '  capacity: 4294967295',
      '  labels: {app: cart, tier: 2}',
      '  services:',
      '    "ns/cart.ns.svc.cluster.local": {80: 8080, "443": 0}',
      '  locality: {region: r, zone: z, subzone: s}',
      '  applicationTunnel: {protocol: PROXY, port: 15088}',
      '  waypoint: {destination: ns/waypoint.ns.svc.cluster.local, hboneMtlsPort: 15008}',
      '  networkGateway: {destination: "net1/10.9.9.9", hboneMtlsPort: 15009}',
    ),
  );
  t.ok(r.ok, r.ok ? '' : r.errors.map(formatProblem).join('\n'));
  if (!r.ok) return;
  const w = r.value.workloads[0]!;
  t.same(w.workloadIps, ['10.0.0.1', 'fd00::1']);
  t.equal(w.workloadType, 'deployment');
  t.equal(w.canonicalRevision, '1', 'a numeric plain scalar is read as its text');
  t.equal(w.capacity, 4294967295);
  t.same([...w.labels], [['app', 'cart'], ['tier', '2']]);
  t.same([...w.services.get('ns/cart.ns.svc.cluster.local')!], [[80, 8080], [443, 0]]);
  t.same(w.locality, { region: 'r', zone: 'z', subzone: 's' });
  t.same(w.applicationTunnel, { protocol: 'PROXY', port: 15088 });
  t.same(w.waypoint, { destination: { kind: 'hostname', namespace: 'ns', hostname: 'waypoint.ns.svc.cluster.local' }, hboneMtlsPort: 15008 });
  t.same(w.networkGateway, { destination: { kind: 'address', address: { network: 'net1', ip: '10.9.9.9' } }, hboneMtlsPort: 15009 });
  t.ok(Object.isFrozen(w), 'workload values are frozen');
});

t.test('a gateway destination whose right half is an IP is an address, even with an empty network', async (t) => {
  const r = parse(y('workloads:', ...W, '  waypoint: {destination: /fd00::9, hboneMtlsPort: 15008}'));
  t.ok(r.ok);
  if (r.ok) t.same(r.value.workloads[0]!.waypoint!.destination, { kind: 'address', address: { network: '', ip: 'fd00::9' } });
});

t.test('service defaults and conversions follow config.md §2.2', async (t) => {
  const r = parse(y('services:', ...S, '- name: b', '  namespace: ns', '  hostname: b.ns', '  vips: ["net/10.96.0.2"]', '  ports: {}', '  visibility: Namespace', '  ipFamilies: IPv4', '  canonical: true', '  loadBalancer: {routingPreferences: [Zone, Node], mode: Failover, healthPolicy: AllowAll}'));
  t.ok(r.ok, r.ok ? '' : r.errors.map(formatProblem).join('\n'));
  if (!r.ok) return;
  const [a, b] = r.value.services;
  t.same(a!.vips, [{ network: '', ip: '10.96.0.1' }]);
  t.same([...a!.ports], [[80, 8080]]);
  t.same(a!.subjectAltNames, []);
  t.equal(a!.canonical, false);
  t.equal(a!.visibility, 'Public');
  t.equal(a!.loadBalancer, undefined);
  t.equal(a!.ipFamilies, undefined);
  t.same(b!.vips, [{ network: 'net', ip: '10.96.0.2' }]);
  t.equal(b!.visibility, 'Namespace');
  t.equal(b!.ipFamilies, 'IPv4');
  t.equal(b!.canonical, true);
  t.same(b!.loadBalancer, { routingPreferences: ['Zone', 'Node'], mode: 'Failover', healthPolicy: 'AllowAll' });
});

t.test('policy matches: StringMatch kinds, bare IPs as full prefixes, service accounts, empty lists by default', async (t) => {
  const r = parse(
    y(
      'policies:',
      ...P,
      '  rules:',
      '  - - - namespaces: [{Exact: a}, {Prefix: b}, {Suffix: c}, {Presence: []}]',
      '        sourceIps: [10.1.2.3, "10.0.0.0/8", "fd00::/64"]',
      '        serviceAccounts: [{namespace: ns, serviceAccount: sa}]',
      '        destinationPorts: [0, 65535]',
    ),
  );
  t.ok(r.ok, r.ok ? '' : r.errors.map(formatProblem).join('\n'));
  if (!r.ok) return;
  const m = r.value.policies[0]!.rules[0]![0]![0]!;
  t.same(m.namespaces, [{ kind: 'exact', value: 'a' }, { kind: 'prefix', value: 'b' }, { kind: 'suffix', value: 'c' }, { kind: 'presence' }]);
  t.same(m.sourceIps.map((c) => c.text), ['10.1.2.3/32', '10.0.0.0/8', 'fd00::/64']);
  t.same(m.serviceAccounts, [{ namespace: 'ns', serviceAccount: 'sa' }]);
  t.same(m.destinationPorts, [0, 65535]);
  t.same(m.principals, []);
  t.same(m.notDestinationIps, []);
});

t.test('rootNamespace can be set in the ztunnel document', async (t) => {
  const r = parse('rootNamespace: mesh-root\n');
  t.ok(r.ok);
  if (r.ok) t.equal(r.value.rootNamespace, 'mesh-root');
});

// --- warnings -------------------------------------------------------------------------------------

t.test('an unknown key inside a Match is a warning, and the match stays empty', async (t) => {
  const r = parse(y('policies:', ...P, '  rules:', '  - - - destinationPort: [80]'));
  t.ok(r.ok, 'the file is still valid');
  if (!r.ok) return;
  t.same(r.warnings.map(formatProblem), [
    'local.yaml:8 policies[0].rules[0][0][0].destinationPort: unknown key "destinationPort" in a match (did you mean "destinationPorts"?); it is ignored',
  ]);
  t.equal(r.warnings[0]!.severity, 'warning');
  t.same(r.value.policies[0]!.rules[0]![0]![0]!.destinationPorts, []);
});

t.test('an unknown key inside a service account match is a warning', async (t) => {
  const r = parse(y('policies:', ...P, '  rules:', '  - - - serviceAccounts: [{namespace: a, serviceAccount: b, cluster: c}]'));
  t.ok(r.ok);
  t.equal(r.warnings.length, 1);
  t.match(formatProblem(r.warnings[0]!), /^local\.yaml:8 policies\[0\]\.rules\[0\]\[0\]\[0\]\.serviceAccounts\[0\]\.cluster: unknown key "cluster"/);
});

t.test('a principal written with spiffe:// is a warning because it can never match', async (t) => {
  const r = parse(y('policies:', ...P, '  rules:', '  - - - principals: [{Exact: "spiffe://cluster.local/ns/a/sa/b"}]'));
  t.ok(r.ok);
  t.equal(r.warnings.length, 1);
  t.match(formatProblem(r.warnings[0]!), /^local\.yaml:8 policies\[0\]\.rules\[0\]\[0\]\[0\]\.principals\[0\]: .*spiffe:\/\//);
});

t.test('service endpoints are accepted but reported as ignored', async (t) => {
  const r = parse(y('services:', ...S, '  endpoints: {}'));
  t.ok(r.ok);
  t.equal(r.warnings.length, 1);
  t.match(formatProblem(r.warnings[0]!), /^local\.yaml:2 services\[0\]: "endpoints" is ignored/);
});

// --- multi-document streams ---------------------------------------------------------------------

t.test('Istio AuthorizationPolicy and PeerAuthentication documents are returned untouched beside the ztunnel document', async (t) => {
  const r = parse(
    y(
      'workloads:',
      ...W,
      '---',
      'apiVersion: security.istio.io/v1',
      'kind: AuthorizationPolicy',
      'metadata: {name: allow, namespace: ns}',
      'spec:',
      '  action: ALLOW',
      '  rules: [{from: [{source: {principals: ["cluster.local/ns/a/sa/b"]}}]}]',
      '---',
      '# a comment before the document',
      'apiVersion: security.istio.io/v1beta1',
      'kind: PeerAuthentication',
      'metadata: {name: strict, namespace: istio-system}',
      'spec: {mtls: {mode: STRICT}}',
    ),
  );
  t.ok(r.ok, r.ok ? '' : r.errors.map(formatProblem).join('\n'));
  if (!r.ok) return;
  t.equal(r.value.workloads.length, 1);
  t.same(
    r.value.istioDocuments.map((d) => [d.apiVersion, d.kind, d.line]),
    [['security.istio.io/v1', 'AuthorizationPolicy', 7], ['security.istio.io/v1beta1', 'PeerAuthentication', 15]],
  );
  t.same(r.value.istioDocuments[0]!.doc, {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name: 'allow', namespace: 'ns' },
    spec: { action: 'ALLOW', rules: [{ from: [{ source: { principals: ['cluster.local/ns/a/sa/b'] } }] }] },
  });
});

t.test('a stream of only Istio documents is valid with no workloads', async (t) => {
  const r = parse(y('apiVersion: security.istio.io/v1', 'kind: PeerAuthentication', 'metadata: {name: x}'));
  t.ok(r.ok);
  if (!r.ok) return;
  t.same(r.value.workloads, []);
  t.equal(r.value.istioDocuments.length, 1);
});

t.test('an error in one document does not hide errors in another', async (t) => {
  const r = parse(y('workloads: [1]', '---', 'apiVersion: v1', 'kind: ConfigMap'));
  t.equal(r.ok, false);
  if (r.ok) return;
  t.same(r.errors.map((e) => `${e.line} ${e.path}`), ['1 workloads[0]', '3 apiVersion', '4 kind']);
});

// --- example files --------------------------------------------------------------------------------

const examples = new URL('../../../examples/', import.meta.url);

t.test('examples/local.yaml (config.md §3) parses with no errors and no warnings', async (t) => {
  const r = parseLocalConfig(readFileSync(new URL('local.yaml', examples), 'utf8'), 'local.yaml');
  t.ok(r.ok, r.ok ? '' : r.errors.map(formatProblem).join('\n'));
  if (!r.ok) return;
  t.same(r.warnings, []);
  t.same(r.value.workloads.map((w) => w.uid), ['Kubernetes//Pod/shop/frontend-7d9c', 'Kubernetes//Pod/shop/cart-5f6b']);
  t.same(r.value.services.map((s) => `${s.namespace}/${s.hostname}`), ['shop/cart.shop.svc.cluster.local']);
  t.same(r.value.policies.map((p) => `${p.namespace}/${p.name}:${p.scope}:${p.action}`), ['shop/cart-from-frontend:WorkloadSelector:Allow', 'shop/no-debug-port:Namespace:Deny']);
  const allow = r.value.policies[0]!;
  t.equal(allow.rules.length, 1, 'one rule');
  t.equal(allow.rules[0]!.length, 2, 'with two clauses');
  t.same(allow.rules[0]![0]![0]!.principals, [{ kind: 'exact', value: 'cluster.local/ns/shop/sa/frontend' }]);
  t.same(allow.rules[0]![1]![0]!.destinationPorts, [8080]);
});

t.test('examples/embedded-default.yaml is one HBONE workload on 127.0.0.1 with a full identity', async (t) => {
  const r = parseLocalConfig(readFileSync(new URL('embedded-default.yaml', examples), 'utf8'), 'embedded-default.yaml');
  t.ok(r.ok, r.ok ? '' : r.errors.map(formatProblem).join('\n'));
  if (!r.ok) return;
  t.same(r.warnings, []);
  t.equal(r.value.workloads.length, 1);
  const w = r.value.workloads[0]!;
  t.match(w, {
    uid: 'Kubernetes//Pod/default/local', name: 'local', namespace: 'default', serviceAccount: 'default',
    trustDomain: 'cluster.local', clusterId: 'Kubernetes', protocol: 'HBONE', workloadName: 'local', canonicalName: 'local',
  });
  t.same(w.workloadIps, ['127.0.0.1']);
  t.equal(w.services.size, 0);
  t.same(r.value.services, []);
});

// --- large files (issue 7) --------------------------------------------------------------------------

/** A file of `count` workloads (14 lines each, the first at line 2) and 100 services. */
function largeFile(count: number): string[] {
  const lines = ['workloads:'];
  for (let i = 0; i < count; i++) {
    const app = `app-${i % 100}`;
    const ns = `ns-${i % 10}`;
    lines.push(
      `- uid: Kubernetes//Pod/${ns}/${app}-${i}`,
      `  name: ${app}-${i}`,
      `  namespace: ${ns}`,
      `  serviceAccount: ${app}`,
      '  trustDomain: cluster.local',
      '  clusterId: Kubernetes',
      `  workloadIps: ["10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}"]`,
      '  protocol: HBONE',
      `  node: node-${i % 5}`,
      `  workloadName: ${app}`,
      `  canonicalName: ${app}`,
      '  canonicalRevision: v1',
      '  services:',
      `    "${ns}/${app}.${ns}.svc.cluster.local": {80: 8080}`,
    );
  }
  lines.push('services:');
  for (let s = 0; s < 100; s++) {
    lines.push(`- name: app-${s}`, `  namespace: ns-${s % 10}`, `  hostname: app-${s}.ns-${s % 10}.svc.cluster.local`, `  vips: ["/10.96.0.${s}"]`, '  ports: {80: 8080}');
  }
  return lines;
}

t.test('a large valid file is read whole', async (t) => {
  const text = largeFile(1500).join('\n') + '\n';
  const r = parse(text);
  t.ok(r.ok, 'accepted');
  if (!r.ok) return;
  t.equal(r.value.workloads.length, 1500);
  t.equal(r.value.services.length, 100);
  t.same(r.value.workloads[1234]!.workloadIps, ['10.0.4.210']);
  t.same([...r.value.workloads[1234]!.services], [['ns-4/app-34.ns-4.svc.cluster.local', new Map([[80, 8080]])]]);
});

t.test('an error deep inside a large file names its exact line and field', async (t) => {
  const lines = largeFile(1500);
  const bad = lines.indexOf('  workloadIps: ["10.0.4.210"]'); // workload 1234
  lines[bad] = '  workloadIps: ["10.0.4.300"]';
  const r = parse(lines.join('\n') + '\n');
  t.equal(r.ok, false);
  if (r.ok) return;
  t.same(r.errors.map(formatProblem), [`${FILE}:${bad + 1} workloads[1234].workloadIps[0]: "10.0.4.300" is not an IP address`]);
});

t.test('a duplicate uid at the end of a large file names both lines', async (t) => {
  const lines = largeFile(1500);
  const first = lines.indexOf('- uid: Kubernetes//Pod/ns-7/app-7-7');
  const services = lines.indexOf('services:');
  lines.splice(services, 0, '- uid: Kubernetes//Pod/ns-7/app-7-7', '  namespace: ns-7', '  workloadIps: []', '  services: {}');
  const r = parse(lines.join('\n') + '\n');
  t.equal(r.ok, false);
  if (r.ok) return;
  t.same(r.errors.map(formatProblem), [
    `${FILE}:${services + 1} workloads[1500]: duplicate workload uid "Kubernetes//Pod/ns-7/app-7-7" (first defined at line ${first + 1})`,
  ]);
});

t.test('a syntax error deep inside a large file is reported at its line', async (t) => {
  const lines = largeFile(1500);
  const bad = lines.indexOf('  name: app-99-999');
  lines[bad] = '  name: app-99-999: x';
  const r = parse(lines.join('\n') + '\n');
  t.equal(r.ok, false);
  if (r.ok) return;
  t.same(r.errors.map(formatProblem), [`${FILE}:${bad + 1}: YAML syntax: Nested mappings are not allowed in compact mappings`]);
});

// --- robustness ---------------------------------------------------------------------------------

t.test('random truncations and corruptions of the example never throw and always point at a line', async (t) => {
  const text = readFileSync(new URL('local.yaml', examples), 'utf8');
  let seed = 0x2545f491;
  const rand = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const junk = ['', ':', '-', '[', '{', '}', '"', "'", '&a', '*a', '!!binary', '\t', '\n', '---\n', '70000', '# x', '? ', '|', '>'];
  const lines = text.split('\n').length + 2;
  let rejected = 0;
  const thrown: string[] = [];
  const lineless: string[] = [];
  for (let i = 0; i < 400; i++) {
    let input = text.slice(0, rand(text.length + 1));
    if (i % 2 === 1) {
      const at = rand(input.length + 1);
      input = input.slice(0, at) + junk[rand(junk.length)]! + input.slice(at + rand(4));
    }
    let r: LocalConfigResult;
    try {
      r = parseLocalConfig(input, FILE);
    } catch (e) {
      thrown.push(`#${i}: ${String(e)}`);
      continue;
    }
    const problems = r.ok ? r.warnings : [...r.errors, ...r.warnings];
    if (!r.ok) rejected++;
    for (const p of problems) {
      const usable = Number.isInteger(p.line) && p.line >= 1 && p.line <= lines && p.file === FILE;
      // The parser's last-resort catch reports "internal error"; the walker itself must never need it.
      if (!usable || p.message.startsWith('internal error')) lineless.push(`#${i}: ${formatProblem(p)}`);
    }
  }
  t.same(thrown, [], 'no input throws');
  t.same(lineless, [], 'every problem names the file and a line inside it');
  t.ok(rejected > 50, `many corrupted inputs are rejected (${rejected})`);
});
