// The certificates and requests ztunnel-ts makes (local CA roots and leaves, the Istio CA CSR) have
// the promised shape as three independent readers see them: @peculiar/x509 (which also builds
// them), node:crypto's X509Certificate and the openssl command line (both OpenSSL).
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate, createHash, createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isZtunnelError } from '../core/errors.js';
import { createCsr } from './istio-ca-client.js';
import { LocalCa } from './local-ca.js';
import { loadX509 } from '../core/x509.js';
import { createRootCa } from '../../test/helpers/certs.js';

const HOUR_MS = 3_600_000;
const URI = 'spiffe://cluster.local/ns/shop/sa/cart';
const OID = {
  subjectAltName: '2.5.29.17', keyUsage: '2.5.29.15', extKeyUsage: '2.5.29.37', basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
} as const;

const scratch = await mkdtemp(path.join(tmpdir(), 'certificate-shapes-test-'));
t.teardown(() => rm(scratch, { recursive: true, force: true }));

// openssl is installed on the build machines (Debian's openssl package); these checks do not skip.
function openssl(args: string[], input?: string | Buffer): { status: number | null; out: string } {
  const r = spawnSync('openssl', args, { input, encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

t.test('a leaf from the local CA has exactly the promised extensions, as @peculiar/x509, node:crypto and openssl read them', async (t) => {
  const dir = await mkdtemp(path.join(scratch, 'leaf-'));
  const ca = await LocalCa.open({ stateDir: dir, ttlMs: HOUR_MS });
  const cert = await ca.fetchCertificate({ trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'cart' });
  const leafPem = cert.chainPem[0]!;
  const rootPem = ca.rootPem();

  const { x509 } = await loadX509();
  const leaf = new x509.X509Certificate(leafPem);
  const root = new x509.X509Certificate(rootPem);
  const byOid = new Map(leaf.extensions.map((e) => [e.type, e]));
  t.same([...byOid.keys()].sort(), [OID.subjectAltName, OID.keyUsage, OID.extKeyUsage, OID.basicConstraints, OID.authorityKeyIdentifier].sort(), 'exactly SAN, KU, EKU, BC and AKI');
  t.same(leaf.extensions.map((e) => [e.type, e.critical]), [
    [OID.subjectAltName, true], [OID.keyUsage, true], [OID.extKeyUsage, false], [OID.basicConstraints, true], [OID.authorityKeyIdentifier, false],
  ], 'criticality: SAN, KU, BC critical; EKU, AKI not');
  t.same(leaf.getExtension(x509.SubjectAlternativeNameExtension)?.names.toJSON(), [{ type: 'url', value: URI }], 'one URI SAN');
  t.equal(leaf.getExtension(x509.KeyUsagesExtension)?.usages, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
  t.same(leaf.getExtension(x509.ExtendedKeyUsageExtension)?.usages, [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]);
  t.equal(leaf.getExtension(x509.BasicConstraintsExtension)?.ca, false, 'CA:false');
  const rootSki = root.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  t.ok(rootSki, 'the root has a subjectKeyIdentifier');
  t.equal(leaf.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, rootSki, 'leaf AKI = root SKI');
  const rootSpki = new X509Certificate(rootPem).publicKey.export({ type: 'spki', format: 'der' });
  t.equal(rootSki, createHash('sha1').update(parseSpkiKeyBits(rootSpki)).digest('hex'), 'root SKI is SHA-1 of the key bits (RFC 5280 method 1)');
  t.equal(leaf.subject, '', 'empty subject');
  t.equal(leaf.issuer, root.subject, 'issuer is the root subject');
  t.ok(Buffer.from(leaf.issuerName.toArrayBuffer()).equals(Buffer.from(root.subjectName.toArrayBuffer())), 'issuer Name bytes are the root subject bytes');
  t.equal(new X509Certificate(leafPem).issuer, new X509Certificate(rootPem).subject, 'node:crypto: issuer = root subject');
  t.same(leaf.signatureAlgorithm, { name: 'ECDSA', hash: { name: 'SHA-256' } }, 'ecdsa-with-SHA256');
  t.ok(await leaf.verify({ publicKey: root.publicKey, signatureOnly: true }), '@peculiar/x509 verifies the signature');
  t.equal(cert.serialNumber, leaf.serialNumber, 'serial as @peculiar/x509 reports it');
  t.equal(cert.notAfter.getTime(), leaf.notAfter.getTime());
  t.equal(cert.notBefore.getTime(), leaf.notBefore.getTime());

  const nodeLeaf = new X509Certificate(leafPem);
  const nodeRoot = new X509Certificate(rootPem);
  t.equal(nodeLeaf.subjectAltName, `URI:${URI}`, 'node:crypto sees the URI SAN');
  t.equal(nodeLeaf.ca, false);
  t.same(nodeLeaf.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], 'node:crypto sees both EKUs');
  t.ok(nodeLeaf.checkIssued(nodeRoot), 'checkIssued: the root issued the leaf');
  t.ok(nodeLeaf.verify(nodeRoot.publicKey), 'node:crypto verifies the signature');
  t.equal(nodeRoot.ca, true);
  t.ok(nodeRoot.verify(nodeRoot.publicKey), 'the generated root is self-signed');

  const text = execFileSync('openssl', ['x509', '-noout', '-text'], { input: leafPem, encoding: 'utf8' });
  t.match(text, /X509v3 Subject Alternative Name: critical\s+URI:spiffe:\/\/cluster\.local\/ns\/shop\/sa\/cart/);
  t.match(text, /X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment\n/);
  t.match(text, /X509v3 Extended Key Usage: \n\s+TLS Web Server Authentication, TLS Web Client Authentication/);
  t.match(text, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
  t.match(text, /X509v3 Authority Key Identifier: \n/);
  t.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
  const rootText = execFileSync('openssl', ['x509', '-noout', '-text'], { input: rootPem, encoding: 'utf8' });
  t.match(rootText, /X509v3 Basic Constraints: critical\s+CA:TRUE/);
  t.match(rootText, /X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign\n/);
  t.match(rootText, /X509v3 Subject Key Identifier: \n/);

  const rootFile = path.join(dir, 'root.pem');
  const leafFile = path.join(dir, 'leaf.pem');
  await writeFile(rootFile, rootPem);
  await writeFile(leafFile, leafPem);
  const v = openssl(['verify', '-CAfile', rootFile, '-purpose', 'sslserver', leafFile]);
  t.equal(v.status, 0, `openssl verify accepts the leaf as a TLS server: ${v.out}`);
  const vc = openssl(['verify', '-CAfile', rootFile, '-purpose', 'sslclient', leafFile]);
  t.equal(vc.status, 0, `and as a TLS client: ${vc.out}`);
});

/** The subjectPublicKey bits of a P-256 SPKI, found by position (independent of der.ts). */
function parseSpkiKeyBits(spkiDer: Buffer): Buffer {
  // SEQUENCE { AlgorithmIdentifier, BIT STRING }: for P-256 the BIT STRING (03 42 00 + the
  // 65-byte uncompressed point) ends the SPKI, so the key bits are its last 65 bytes.
  if (spkiDer.length !== 91 || spkiDer[spkiDer.length - 68] !== 0x03) throw new Error('not a P-256 SPKI');
  return spkiDer.subarray(spkiDer.length - 65);
}


t.test('an RSA root given as PKCS#1 signs leaves with sha256WithRSAEncryption that all three readers verify', async (t) => {
  const authority = await createRootCa({ keyType: 'rsa-2048', commonName: 'shapes RSA root' });
  const dir = await mkdtemp(path.join(scratch, 'rsa-'));
  const certPath = path.join(dir, 'ca-cert.pem');
  const keyPath = path.join(dir, 'ca-key.pem');
  await writeFile(certPath, authority.certPem);
  const pkcs1 = createPrivateKey(authority.keyPem).export({ type: 'pkcs1', format: 'pem' }) as string;
  t.match(pkcs1, /^-----BEGIN RSA PRIVATE KEY-----/, 'the key file is PKCS#1');
  await writeFile(keyPath, pkcs1);
  const ca = await LocalCa.open({ stateDir: path.join(dir, 'state'), caCertPath: certPath, caKeyPath: keyPath, ttlMs: HOUR_MS });
  const leafPem = (await ca.fetchCertificate({ trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'cart' })).chainPem[0]!;

  const nodeRoot = new X509Certificate(authority.certPem);
  const leaf = new X509Certificate(leafPem);
  t.ok(leaf.checkIssued(nodeRoot) && leaf.verify(nodeRoot.publicKey), 'node:crypto: the leaf verifies under the RSA root');
  const { x509 } = await loadX509();
  const pec = new x509.X509Certificate(authority.certPem);
  const pecLeaf = new x509.X509Certificate(leafPem);
  t.same(pecLeaf.signatureAlgorithm, { name: 'RSASSA-PKCS1-v1_5', hash: { name: 'SHA-256' } }, 'sha256WithRSAEncryption');
  t.ok(await pecLeaf.verify({ publicKey: pec.publicKey, signatureOnly: true }), '@peculiar/x509 verifies it');
  t.equal(pecLeaf.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, pec.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId, 'AKI = RSA root SKI');
  t.equal(new x509.X509Certificate(leafPem).publicKey.algorithm.name, 'ECDSA', 'the leaf key is still ECDSA');
  t.match(execFileSync('openssl', ['x509', '-noout', '-text'], { input: leafPem, encoding: 'utf8' }), /Signature Algorithm: sha256WithRSAEncryption/);
  const leafFile = path.join(dir, 'leaf.pem');
  await writeFile(leafFile, leafPem);
  const v = openssl(['verify', '-CAfile', certPath, leafFile]);
  t.equal(v.status, 0, `openssl verify accepts it: ${v.out}`);
});

t.test('an ECDSA P-384 root signs with ecdsa-with-SHA384; a P-521 root is refused', async (t) => {
  const p384 = await createRootCa({ keyType: 'ec-p384' });
  const dir = await mkdtemp(path.join(scratch, 'p384-'));
  await writeFile(path.join(dir, 'c.pem'), p384.certPem);
  await writeFile(path.join(dir, 'k.pem'), p384.keyPem);
  const ca = await LocalCa.open({ stateDir: dir, caCertPath: path.join(dir, 'c.pem'), caKeyPath: path.join(dir, 'k.pem'), ttlMs: HOUR_MS });
  const leafPem = (await ca.fetchCertificate({ trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'cart' })).chainPem[0]!;
  t.match(execFileSync('openssl', ['x509', '-noout', '-text'], { input: leafPem, encoding: 'utf8' }), /Signature Algorithm: ecdsa-with-SHA384/);
  t.ok(new X509Certificate(leafPem).verify(new X509Certificate(p384.certPem).publicKey), 'node:crypto verifies it');

  const p521 = await createRootCa({ keyType: 'ec-p521' });
  await writeFile(path.join(dir, 'c521.pem'), p521.certPem);
  await writeFile(path.join(dir, 'k521.pem'), p521.keyPem);
  const refused = await LocalCa.open({ stateDir: dir, caCertPath: path.join(dir, 'c521.pem'), caKeyPath: path.join(dir, 'k521.pem'), ttlMs: HOUR_MS }).catch((e: unknown) => e);
  t.ok(isZtunnelError(refused) && refused.code === 'CONFIG_INVALID', 'CONFIG_INVALID');
  t.match((refused as Error).message, /curve secp521r1 is not supported; use P-256 or P-384/);
});

t.test('the Istio CSR carries an empty subject and one critical URI SAN, and its self-signature verifies', async (t) => {
  const { csrPem, keyPem, spki } = await createCsr(URI);
  t.match(csrPem, /^-----BEGIN CERTIFICATE REQUEST-----\n/);
  const key = createPrivateKey(keyPem);
  t.equal(key.asymmetricKeyType, 'ec');
  t.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1', 'a fresh ECDSA P-256 key');
  t.ok(createPublicKey(key).export({ type: 'spki', format: 'der' }).equals(spki), 'spki is the key\'s public half');

  const { x509 } = await loadX509();
  const csr = new x509.Pkcs10CertificateRequest(csrPem);
  t.ok(await csr.verify(), '@peculiar/x509 verifies the CSR signature');
  t.equal(csr.subject, '', 'empty subject');
  t.same(csr.signatureAlgorithm, { name: 'ECDSA', hash: { name: 'SHA-256' } }, 'ecdsa-with-SHA256');
  t.ok(Buffer.from(csr.publicKey.rawData).equals(spki), 'certifies the key that signed it');
  t.same(csr.extensions.map((e) => [e.type, e.critical]), [[OID.subjectAltName, true]], 'one critical SAN extension');
  const san = csr.getExtension(OID.subjectAltName);
  t.same(san && new x509.SubjectAlternativeNameExtension(san.rawData).names.toJSON(), [{ type: 'url', value: URI }], 'the SAN is the URI');

  const r = openssl(['req', '-verify', '-noout', '-text'], csrPem);
  t.equal(r.status, 0, 'openssl req -verify exits 0');
  t.match(r.out, /verify OK/i);
  t.notMatch(r.out, /failure/i);
  t.match(r.out, /Subject: *\n/, 'openssl: empty subject');
  t.match(r.out, /X509v3 Subject Alternative Name: critical\s+URI:spiffe:\/\/cluster\.local\/ns\/shop\/sa\/cart/);
  t.match(r.out, /Public-Key: \(256 bit\)[^]*NIST CURVE: P-256/);

  const bad = Buffer.from(csrPem.trim().split('\n').slice(1, -1).join(''), 'base64');
  bad[bad.length - 5]! ^= 0x01; // flip a bit in the signature
  const rb = openssl(['req', '-verify', '-noout', '-inform', 'DER'], bad);
  // OpenSSL 3.0 exits 0 even on a bad self-signature, so the message is what tells them apart.
  t.match(rb.out, /verify failure/i, 'a tampered CSR fails openssl req -verify');
  t.notMatch(rb.out, /verify OK/i);
});
