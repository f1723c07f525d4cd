import t from 'tap';
import type tls from 'node:tls';
import { isZtunnelError } from '../core/errors.js';
import { isCaCertificate, readBasicConstraintsWith, verifyServerIdentity } from './verify.js';

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

t.test('item 11: a CA certificate (CA:TRUE) is never a peer leaf, whatever its key usage (webpki\'s rule)', async (t) => {
  const { X509Certificate } = await import('node:crypto');
  const { createRootCa, issueLeaf } = await import('../../test/helpers/certs.js');
  const { loadX509 } = await import('../../test/helpers/x509.js');
  const { x509 } = await loadX509();
  const root = await createRootCa();
  const uri = 'spiffe://cluster.local/ns/default/sa/a';
  const asPeer = (pem: string): tls.PeerCertificate => {
    const c = new X509Certificate(pem);
    return { ...(c.toLegacyObject() as tls.PeerCertificate), raw: c.raw };
  };
  const plain = await issueLeaf(root, { uris: [uri] });
  const caSigning = await issueLeaf(root, { uris: [uri], ca: true, keyUsage: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign });
  const caNoCertSign = await issueLeaf(root, { uris: [uri], ca: true });
  t.equal(verifyServerIdentity(asPeer(plain.chainPem[0]!), [id('a')]), undefined, 'an end-entity certificate passes');
  for (const [name, cert] of [['CA:TRUE with keyCertSign', caSigning], ['CA:TRUE without keyCertSign (OpenSSL does not call it a CA)', caNoCertSign]] as const) {
    const e = verifyServerIdentity(asPeer(cert.chainPem[0]!), [id('a')]);
    t.ok(isZtunnelError(e) && e.code === 'TLS_HANDSHAKE', `${name}: refused`);
    t.match(e?.message, /CA:TRUE/);
  }
  t.equal(isCaCertificate({ raw: new X509Certificate(root.certPem).raw, ca: true }), true, 'the root itself reads as CA:TRUE');
  t.equal(isCaCertificate({ raw: new X509Certificate(plain.chainPem[0]!).raw, ca: false }), false, 'a leaf without BasicConstraints reads as not a CA');
  t.equal(isCaCertificate({ raw: new X509Certificate(caNoCertSign.chainPem[0]!).raw, ca: false }), true, 'CA:TRUE without keyCertSign reads as a CA although OpenSSL says no');
  const garbage = isCaCertificate({ raw: Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]), ca: false });
  t.ok(garbage instanceof Error, 'an unreadable certificate is an error (refused), not "not a CA"');
});

t.test('item 11 in a data-plane worker: BasicConstraints read with Node\'s OpenSSL (native addon) as @peculiar/x509 reads them', async (t) => {
  const { X509Certificate } = await import('node:crypto');
  const { basicConstraintsReader } = await import('../platform/native-addon.js');
  const { createRootCa, issueLeaf } = await import('../../test/helpers/certs.js');
  const { loadX509 } = await import('../../test/helpers/x509.js');
  const { x509 } = await loadX509();
  const read = basicConstraintsReader();
  if (!read) {
    t.fail('native addon unavailable or built before it read certificates (rebuild it with npm run build:native)');
    return;
  }
  const root = await createRootCa();
  const uri = 'spiffe://cluster.local/ns/default/sa/a';
  const certs: [string, string, boolean][] = [
    ['the root', root.certPem, true],
    ['a leaf without BasicConstraints', (await issueLeaf(root, { uris: [uri] })).chainPem[0]!, false],
    ['a leaf with CA:FALSE (as Istio\'s CA issues)', (await issueLeaf(root, { uris: [uri], ca: false })).chainPem[0]!, false],
    ['CA:TRUE with keyCertSign', (await issueLeaf(root, { uris: [uri], ca: true, keyUsage: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign })).chainPem[0]!, true],
    ['CA:TRUE without keyCertSign (OpenSSL\'s X509_check_ca says no)', (await issueLeaf(root, { uris: [uri], ca: true })).chainPem[0]!, true],
  ];
  for (const [name, pem, ca] of certs) {
    const raw = new X509Certificate(pem).raw;
    const peculiar = new x509.X509Certificate(raw).getExtension(x509.BasicConstraintsExtension)?.ca === true;
    t.equal(peculiar, ca, `${name}: @peculiar/x509 reads cA ${ca}`);
    t.equal(read(raw), ca, `${name}: OpenSSL reads the same`);
  }
  t.ok(read(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01])) instanceof Error, 'not a certificate: an error (refused), as with @peculiar/x509');
  // The peer check with that reader (what a worker runs): the same refusals.
  readBasicConstraintsWith(read);
  const asPeer = (pem: string): tls.PeerCertificate => {
    const c = new X509Certificate(pem);
    return { ...(c.toLegacyObject() as tls.PeerCertificate), raw: c.raw };
  };
  for (const [name, pem, ca] of certs.slice(1)) {
    const e = verifyServerIdentity(asPeer(pem), [id('a')]);
    if (ca) t.ok(isZtunnelError(e) && e.code === 'TLS_HANDSHAKE' && /CA:TRUE/.test(e.message), `${name}: refused as a peer leaf`);
    else t.equal(e, undefined, `${name}: accepted as a peer leaf`);
  }
});
