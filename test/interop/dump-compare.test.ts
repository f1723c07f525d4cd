// The field-by-field /config_dump comparison of the interop suite (dump-compare.ts) on small
// hand-made dumps: what it reports and what it lets through.
import t from 'tap';
import { compareDumps, isKnown } from './dump-compare.js';

const root = Buffer.from('-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n').toString('base64');
const base = () => ({
  workloads: [{ uid: 'u1', name: 'a', workloadIps: ['10.0.0.1'], services: ['ns/s', 'ns/t'] }],
  services: [{ namespace: 'ns', hostname: 's', vips: ['/10.96.0.1'], endpoints: {} }],
  policies: [{ namespace: 'ns', name: 'p', rules: [[[{ principals: [{ Presence: [] }] }]]] }],
  stagedServices: {},
  staticConfig: { workloads: [], policies: [], services: [] },
  certificates: [{ identity: 'spiffe://x', state: 'Available', certChain: [{ pem: 'a', serialNumber: '12', validFrom: 'x', expirationTime: 'y' }], rootCerts: [{ pem: root, serialNumber: '1' }] }],
  version: { version: '1' },
  config: { a: 1 },
});

t.test('equal dumps: only the known config difference', async (t) => {
  const d = compareDumps(base(), base());
  t.same(d.map((x) => x.path), ['.config']);
  t.ok(isKnown(d[0]!));
});

t.test('lists of plain values compare order-free; leaves are reported by path', async (t) => {
  const a = base();
  const b = base();
  b.workloads[0]!.services = ['ns/t', 'ns/s'];
  t.same(compareDumps(a, b).filter((x) => !isKnown(x)), [], 'services in another order: equal');
  b.workloads[0]!.name = 'b';
  (b.policies[0]!.rules[0]![0]![0]! as Record<string, unknown>)['principals'] = [{ Presence: {} }];
  const diffs = compareDumps(a, b).filter((x) => !isKnown(x)).map((x) => x.path);
  t.same(diffs, ['.workloads[u1].name', '.policies[ns/p].rules[0][0][0].principals[0].Presence']);
});

t.test('certificates: different keys and serials are fine, a hex serial or another root is not', async (t) => {
  const a = base();
  const b = base();
  b.certificates[0]!.certChain[0]!.serialNumber = '99';
  t.same(compareDumps(a, b).filter((x) => !isKnown(x)), []);
  b.certificates[0]!.certChain[0]!.serialNumber = '0A1B';
  b.certificates[0]!.rootCerts[0]!.pem = Buffer.from('other').toString('base64');
  t.same(compareDumps(a, b).filter((x) => !isKnown(x)).map((x) => x.path).sort(), ['.certificates[spiffe://x].roots', '.certificates[spiffe://x].serialsDecimal']);
});

t.test('a key only one side has is reported', async (t) => {
  const a = { ...base(), workloadState: {} };
  t.same(compareDumps(a, base()).filter((x) => !isKnown(x)).map((x) => x.path), ['.workloadState']);
});
