// Table tests: istio.security.Authorization objects → the internal Authorization
// (spec/xds.md §6): enum mapping, StringMatch oneof, addresses, ports and the rule nesting.
import t from 'tap';
import type { Authorization, Match } from '../policy/model.js';
import { decodeAuthorization } from './decode-authorization.js';
import type { ProtoAuthorization, ProtoMatch } from './decode-types.js';

const v4 = (s: string) => Uint8Array.from(s.split('.').map(Number));
const one = (m: ProtoMatch): ProtoAuthorization => ({ name: 'p', namespace: 'ns', rules: [{ clauses: [{ matches: [m] }] }] });
const firstMatch = (a: Authorization): Match => a.rules[0]![0]![0]!;

interface Row {
  readonly name: string;
  readonly input: ProtoAuthorization;
  readonly want?: (a: Authorization) => unknown;
  readonly expect?: unknown;
  readonly reject?: RegExp;
}

const rows: Row[] = [
  {
    name: 'scope, action, dry run, name and namespace',
    input: { name: 'p', namespace: 'ns', scope: 2, action: 1, dry_run: true },
    want: (a) => [a.name, a.namespace, a.scope, a.action, a.dryRun, a.rules],
    expect: ['p', 'ns', 'WorkloadSelector', 'Deny', true, []],
  },
  {
    name: 'unset scope and action are GLOBAL and ALLOW',
    input: { name: 'p', namespace: 'ns' },
    want: (a) => [a.scope, a.action, a.dryRun],
    expect: ['Global', 'Allow', false],
  },
  { name: 'scope by enum name', input: { scope: 'NAMESPACE', action: 'DENY' }, want: (a) => [a.scope, a.action], expect: ['Namespace', 'Deny'] },
  { name: 'an unknown scope rejects the policy', input: { scope: 3 }, reject: /scope/ },
  { name: 'an unknown action rejects the policy', input: { action: 2 }, reject: /action/ },
  {
    name: 'string matches: exact, prefix, suffix and presence; one with no oneof set is dropped',
    input: one({ principals: [{ exact: 'cluster.local/ns/a/sa/b' }, { prefix: 'cluster.local/' }, {}, { suffix: '/sa/b' }, { presence: {} }] }),
    want: (a) => firstMatch(a).principals,
    expect: [
      { kind: 'exact', value: 'cluster.local/ns/a/sa/b' }, { kind: 'prefix', value: 'cluster.local/' },
      { kind: 'suffix', value: '/sa/b' }, { kind: 'presence' },
    ],
  },
  {
    name: 'an empty exact string is still an exact match (the oneof is set)',
    input: one({ namespaces: [{ exact: '' }] }),
    want: (a) => firstMatch(a).namespaces,
    expect: [{ kind: 'exact', value: '' }],
  },
  {
    name: 'addresses become CIDRs; a 5-byte address and a too-long prefix are dropped',
    input: one({
      source_ips: [{ address: v4('10.0.0.0'), length: 8 }, { address: Uint8Array.from([1, 2, 3, 4, 5]), length: 8 }, { address: v4('10.1.2.3'), length: 33 }],
      not_destination_ips: [{ address: Uint8Array.from([0xfd, 0, ...Array(14).fill(0)]), length: 64 }],
    }),
    want: (a) => [firstMatch(a).sourceIps.map((c) => c.text), firstMatch(a).notDestinationIps.map((c) => c.text)],
    expect: [['10.0.0.0/8'], ['fd00::/64']],
  },
  {
    name: 'ports above 65535 are dropped',
    input: one({ destination_ports: [80, 65535, 65536, 70000], not_destination_ports: [0, 99999] }),
    want: (a) => [firstMatch(a).destinationPorts, firstMatch(a).notDestinationPorts],
    expect: [[80, 65535], [0]],
  },
  {
    name: 'service account matches (newer)',
    input: one({ service_accounts: [{ namespace: 'shop', serviceAccount: 'cart' }], not_service_accounts: [{ namespace: 'x' }] }),
    want: (a) => [firstMatch(a).serviceAccounts, firstMatch(a).notServiceAccounts],
    expect: [[{ namespace: 'shop', serviceAccount: 'cart' }], [{ namespace: 'x', serviceAccount: '' }]],
  },
  {
    name: 'rules → clauses → matches nesting is preserved (2 rules, 2 clauses, 2 matches)',
    input: {
      rules: [
        { clauses: [{ matches: [{ destination_ports: [1] }, { destination_ports: [2] }] }, { matches: [{ destination_ports: [3] }] }] },
        { clauses: [] },
      ],
    },
    want: (a) => a.rules.map((r) => r.map((c) => c.map((m) => m.destinationPorts))),
    expect: [[[[1], [2]], [[3]]], []],
  },
  {
    name: 'a match whose only entries are dropped becomes an empty match (never matches)',
    input: one({ principals: [{}], source_ips: [{ address: Uint8Array.from([1]) }] }),
    want: (a) => Object.values(firstMatch(a)).every((l) => (l as unknown[]).length === 0),
    expect: true,
  },
];

for (const row of rows) {
  t.test(row.name, async (tt) => {
    const r = decodeAuthorization(row.input);
    if (row.reject) {
      tt.equal(r.ok, false, 'rejected');
      if (!r.ok) tt.match(r.error, row.reject);
      return;
    }
    tt.equal(r.ok, true, r.ok ? 'accepted' : `unexpected rejection: ${r.error}`);
    if (r.ok && row.want) tt.same(row.want(r.value), row.expect);
  });
}
