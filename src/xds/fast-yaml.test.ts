import t from 'tap';
import { readFileSync } from 'node:fs';
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

t.test('the fast path accepts the example file and plain config text', async (t) => {
  t.not(fastParseYaml(inSubset[0]![1]), null, 'examples/local.yaml');
  t.not(fastParseYaml(inSubset[2]![1]), null, 'markers, comments, quotes and flow maps');
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
