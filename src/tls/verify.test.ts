import t from 'tap';
import type tls from 'node:tls';
import { isZtunnelError } from '../core/errors.js';
import { verifyServerIdentity } from './verify.js';

const id = (sa: string, td = 'cluster.local', ns = 'default') => ({ trustDomain: td, namespace: ns, serviceAccount: sa });
const peer = (subjectaltname: string | undefined): tls.PeerCertificate => ({ subjectaltname } as tls.PeerCertificate);

const rows: Array<{ name: string; san: string | undefined; expected: ReturnType<typeof id>[]; ok: boolean; message?: string }> = [
  { name: 'the only URI SAN equals the expected identity', san: 'URI:spiffe://cluster.local/ns/default/sa/a', expected: [id('a')], ok: true },
  { name: 'any expected identity may match (service SANs)', san: 'URI:spiffe://cluster.local/ns/default/sa/b', expected: [id('a'), id('b')], ok: true },
  { name: 'a later URI SAN may match when an earlier one does not', san: 'URI:spiffe://cluster.local/ns/default/sa/x, URI:spiffe://cluster.local/ns/default/sa/a', expected: [id('a')], ok: true },
  { name: 'a quoted URI SAN (special characters) is parsed, not split', san: 'URI:"spiffe://cluster.local/ns/default/sa/a,b"', expected: [id('a,b')], ok: true },
  { name: 'same name in another trust domain does not match', san: 'URI:spiffe://other.example/ns/default/sa/a', expected: [id('a')], ok: false,
    message: 'peer identity mismatch: expected one of [spiffe://cluster.local/ns/default/sa/a], got [spiffe://other.example/ns/default/sa/a]' },
  { name: 'a DNS SAN spelling the identity does not count', san: 'DNS:cluster.local, DNS:a.default.svc', expected: [id('a')], ok: false,
    message: 'peer identity mismatch: expected one of [spiffe://cluster.local/ns/default/sa/a], got [no URI SAN]' },
  { name: 'a URI SAN that is not SPIFFE-shaped does not count', san: 'URI:spiffe://cluster.local/ns/default/sa/a/extra', expected: [id('a')], ok: false },
  { name: 'a certificate without SANs fails', san: undefined, expected: [id('a')], ok: false },
  { name: 'an empty expected list matches nothing', san: 'URI:spiffe://cluster.local/ns/default/sa/a', expected: [], ok: false,
    message: 'peer identity mismatch: expected one of [(none)], got [spiffe://cluster.local/ns/default/sa/a]' },
];

for (const row of rows) {
  t.test(row.name, async (t) => {
    const e = verifyServerIdentity(peer(row.san), row.expected);
    if (row.ok) {
      t.equal(e, undefined);
    } else {
      t.ok(isZtunnelError(e) && e.code === 'PEER_IDENTITY', 'PEER_IDENTITY error');
      if (row.message) t.equal(e?.message, row.message);
    }
  });
}
