import t from 'tap';
import { readFileSync } from 'node:fs';
import { isMap } from 'yaml';
import { fastParseYaml } from './fast-yaml.js';
import { parseLocalConfig, parseLocalConfigFully } from './local-file.js';

const y = (...lines: string[]): string => lines.join('\n') + '\n';
const examples = new URL('../../../examples/', import.meta.url);

// Valid files inside the fast reader's subset: the result must equal the full parser's.
const inSubset: Array<[string, string]> = [
  ['examples/local.yaml', readFileSync(new URL('local.yaml', examples), 'utf8')],
  ['examples/policies.yaml', readFileSync(new URL('policies.yaml', examples), 'utf8')],
  ['a document marker, comments, quoted keys and flow maps', y(
    '---',
    '# workloads of the shop',
    'workloads:',
    '  - uid: "Kubernetes//Pod/shop/a"   # quoted',
    '    name: a',
    "    namespace: 'shop'",
    "    serviceAccount: it's",
    '    workloadIps: ["10.0.0.1", 10.0.0.2]',
    '    labels: {app: a, version: "1", "team": x}',
    '    services:',
    '      "shop/a.shop.svc.cluster.local": {80: 8080, "443": 8443}',
    '    capacity: 2',
    '    nativeTunnel: true',
    'services:',
    '- name: a',
    '  namespace: shop',
    '  hostname: a.shop.svc.cluster.local',
    '  vips: ["/10.96.0.1"]',
    '  ports: {80: 8080}',
    'policies: []',
  )],
  ['numbers and booleans in string fields keep their source text, as the full parser reads them', y(
    'workloads:',
    '- uid: a',
    '  namespace: ns',
    '  workloadIps: []',
    '  services: {}',
    '  canonicalRevision: 007',
    '  workloadName: +5',
    '  canonicalName: True',
    '  workloadType: 0b11',
    '  node: -0',
    '  hostname: 1_000',
    '  clusterId: ~x',
    '  labels: {a: 0x1g, b: null-ish, c: Yes}',
  )],
  ['CRLF line ends, non-ASCII comments, an indented document and extra spaces after "-"', [
    '  # café → ünïcode comment',
    '  workloads:',
    '  -   uid: "Kubernetes//Pod/shop/ä"',
    '      namespace: shop   # ns',
    '      workloadIps:',
    '      - 10.0.0.1',
    '      -  "10.0.0.2"',
    '      services: {"shop/a.shop.svc.cluster.local": {80: 8080}}',
    '      labels:',
    '        app: é',
    '',
  ].join('\r\n')],
  ['list items without a value and compact nested lists', y(
    'policies:',
    '-',
    '  name: p',
    '  namespace: shop',
    '  scope: Namespace',
    '  action: Deny',
    '  dryRun: false',
    '  rules:',
    '  -',
    '    - - destinationPorts: [9000, 9001]',
    '      - destinationPorts:',
    '        - 9002',
  )],
  ['nested lists of matches and an empty value', y(
    'workloads:',
    'policies:',
    '- name: p',
    '  namespace: shop',
    '  scope: Namespace',
    '  action: Deny',
    '  dryRun: false',
    '  rules:',
    '  - - - destinationPorts: [9000]',
  )],
];

for (const [name, text] of inSubset) {
  t.test(`${name}: the fast path gives exactly the full parser's result`, async (t) => {
    const full = parseLocalConfigFully(text, 'f.yaml');
    t.ok(full.ok, 'the full parser accepts it');
    t.same(parseLocalConfig(text, 'f.yaml'), full);
  });
}

t.test('the fast path accepts the example files and plain config text', async (t) => {
  for (const [name, text] of inSubset) t.not(fastParseYaml(text), null, name);
});

t.test('plain scalars resolve as YAML 1.2 core: only decimal integers become numbers, with their source kept', async (t) => {
  const root = fastParseYaml(y('a: 007', 'b: +5', 'c: 0b11', 'd: True', 'e: ~', 'f: "80"', 'g: 80', "h: 'it''s'", 'i: x # note'));
  t.ok(root && isMap(root), 'a map');
  if (!root || !isMap(root)) return;
  const values = Object.fromEntries(root.items.map((p) => [String((p.key as { value: unknown }).value), p.value as { value: unknown; source: string }]));
  t.same([values.a!.value, values.a!.source], [7, '007']);
  t.same([values.b!.value, values.b!.source], [5, '+5']);
  t.equal(values.c!.value, '0b11', 'not a YAML 1.2 integer');
  t.same([values.d!.value, values.d!.source], [true, 'True']);
  t.equal(values.e!.value, null);
  t.equal(values.f!.value, '80', 'quoted stays a string');
  t.equal(values.g!.value, 80);
  t.equal(values.h!.value, "it's");
  t.equal(values.i!.value, 'x', 'the comment is not part of the value');
});

// YAML features beyond plain maps and lists: whichever path answers, the result is exactly the
// full parser's (values, errors, lines).
const outside: Array<[string, string]> = [
  ['an anchor and an alias', y('workloads:', '- &w', '  name: a', '  namespace: ns', 'services: *w')],
  ['a block scalar', y('workloads:', '- name: |', '    a', '  namespace: ns')],
  ['a multi-line plain scalar', y('workloads:', '- name: a', '    b', '  namespace: ns')],
  ['an escape in a double-quoted scalar', y('workloads:', '- name: "a\\tb"', '  namespace: ns')],
  ['a hexadecimal port', y('services:', '- name: a', '  namespace: ns', '  hostname: h', '  ports: {0x50: 8080}')],
  ['a duplicate key', y('workloads:', '- name: a', '  name: b', '  namespace: ns')],
  ['a flow list across lines', y('workloads:', '- workloadIps: ["10.0.0.1",', '    "10.0.0.2"]', '  namespace: ns')],
  ['two documents', y('workloads: []', '---', 'services: []')],
  ['a tab', 'workloads:\n-\tname: a\n'],
  ['a port written as a float', y('services:', '- name: a', '  namespace: ns', '  hostname: h', '  vips: []', '  ports: {80: 8080.0}')],
  // js-yaml, the fast reader before, accepted this; the full parser does not.
  ['a flow list continued on a less indented line', y('workloads:', '- uid: a', '  namespace: ns', '  workloadIps: ["10.0.0.1",', ' "10.0.0.2"]', '  services: {}')],
  ['a null key in labels', y('workloads:', '- uid: a', '  namespace: ns', '  workloadIps: []', '  services: {}', '  labels: {~: x}')],
  ['a port key written both as 80 and "80"', y('services:', '- name: a', '  namespace: ns', '  hostname: h', '  vips: []', '  ports: {80: 8080, "80": 9090}')],
  ['a second document marker', y('---', 'workloads: []', '---', 'services: []')],
  ['a list item indented between two columns', y('workloads:', '- uid: a', ' namespace: ns')],
  ['a key with a space before its colon', y('workloads:', '- uid : a', '  namespace: ns', '  workloadIps: []', '  services: {}')],
  ['a plain value holding ": "', y('workloads:', '- uid: a: b', '  namespace: ns', '  workloadIps: []', '  services: {}')],
  ['a lone carriage return', 'workloads: []\rservices: []\n'],
];

for (const [name, text] of outside) {
  t.test(`${name}: the result is exactly the full parser's`, async (t) => {
    t.same(parseLocalConfig(text, 'f.yaml'), parseLocalConfigFully(text, 'f.yaml'));
  });
}

t.test('a file in the subset with a validation error is reported by the full parser, with its line', async (t) => {
  const text = y('workloads:', '- name: a', '  namespace: ns', '  workloadIps: []', '  services: {}', '  capacity: -1', '  protocol: HBONE');
  t.not(fastParseYaml(text), null, 'the fast reader reads it');
  const r = parseLocalConfig(text, 'f.yaml');
  t.same(r, parseLocalConfigFully(text, 'f.yaml'));
  t.equal(r.ok, false);
  if (!r.ok) t.equal(r.errors[0]!.line, 6, 'the line of the bad value');
});
