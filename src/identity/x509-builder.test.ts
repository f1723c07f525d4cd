// The certificates and requests x509-builder.ts produces are read back by independent parsers:
// @peculiar/x509 (a devDependency, test-only here), node:crypto's X509Certificate (OpenSSL) and the
// openssl command line.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate, createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LocalCa } from './local-ca.js';
import {
  KEY_USAGE, OID, basicConstraintsExtension, buildCertificate, buildCsr, encodeName, keyIdentifier, keyUsageExtension,
  parseCertificate, pemCertificates, sanUriExtension, sanUris, signerFor, subjectKeyIdExtension, subjectKeyId, toPem,
} from './x509-builder.js';
import { loadX509 } from '../../test/helpers/x509.js';

const HOUR_MS = 3_600_000;
const URI = 'spiffe://cluster.local/ns/shop/sa/cart';

const scratch = await mkdtemp(path.join(tmpdir(), 'x509-builder-test-'));
t.teardown(() => rm(scratch, { recursive: true, force: true }));

// openssl is installed on the build machines (Debian's openssl package); these checks do not skip.
function openssl(args: string[], input?: string | Buffer): { status: number | null; out: string } {
  const r = spawnSync('openssl', args, { input, encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

function spki(key: KeyObject): Buffer {
  return key.export({ type: 'spki', format: 'der' });
}

/** A self-signed CA certificate built with the builder from a node:crypto key pair. */
function selfSignedRoot(keys: { privateKey: KeyObject; publicKey: KeyObject }, cn: string): string {
  const name = encodeName([[OID.commonName, cn]]);
  return toPem(buildCertificate({
    serial: Buffer.from('00ff', 'hex'), // high bit set after the zero is dropped: needs the 0x00 back
    issuer: name,
    subject: name,
    notBefore: new Date(Date.now() - HOUR_MS),
    notAfter: new Date(Date.now() + 24 * HOUR_MS),
    publicKey: spki(keys.publicKey),
    extensions: [
      basicConstraintsExtension(true, true),
      keyUsageExtension([KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign], true),
      subjectKeyIdExtension(keyIdentifier(spki(keys.publicKey))),
    ],
    signer: signerFor(keys.privateKey),
  }), 'CERTIFICATE');
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
  t.same(parseCertificate(pemCertificates(leafPem)[0]!).issuer, parseCertificate(pemCertificates(rootPem)[0]!).subject, 'issuer Name bytes are the root subject bytes');
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

t.test('an RSA root built from a node:crypto key signs leaves that verify, through the local CA too', async (t) => {
  const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rootPem = selfSignedRoot(keys, 'builder RSA root');
  const nodeRoot = new X509Certificate(rootPem);
  t.ok(nodeRoot.verify(keys.publicKey), 'the RSA root is self-signed');
  t.equal(nodeRoot.serialNumber.replace(/^0+/, ''), 'FF', 'serial 0x00ff kept positive');
  const { x509 } = await loadX509();
  const pec = new x509.X509Certificate(rootPem);
  t.same(pec.signatureAlgorithm, { name: 'RSASSA-PKCS1-v1_5', hash: { name: 'SHA-256' } }, 'sha256WithRSAEncryption');
  t.equal(pec.getExtension(x509.KeyUsagesExtension)?.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
  t.equal(pec.getExtension(x509.KeyUsagesExtension)?.critical, true);

  const dir = await mkdtemp(path.join(scratch, 'rsa-'));
  const certPath = path.join(dir, 'ca-cert.pem');
  const keyPath = path.join(dir, 'ca-key.pem');
  await writeFile(certPath, rootPem);
  await writeFile(keyPath, keys.privateKey.export({ type: 'pkcs1', format: 'pem' }));
  const ca = await LocalCa.open({ stateDir: path.join(dir, 'state'), caCertPath: certPath, caKeyPath: keyPath, ttlMs: HOUR_MS });
  const leafPem = (await ca.fetchCertificate({ trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'cart' })).chainPem[0]!;
  const leaf = new X509Certificate(leafPem);
  t.ok(leaf.checkIssued(nodeRoot) && leaf.verify(keys.publicKey), 'the leaf verifies under the RSA root');
  const pecLeaf = new x509.X509Certificate(leafPem);
  t.ok(await pecLeaf.verify({ publicKey: pec.publicKey, signatureOnly: true }), '@peculiar/x509 verifies it too');
  t.equal(pecLeaf.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, pec.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId, 'AKI = RSA root SKI');
  t.match(execFileSync('openssl', ['x509', '-noout', '-text'], { input: leafPem, encoding: 'utf8' }), /Signature Algorithm: sha256WithRSAEncryption/);
  const leafFile = path.join(dir, 'leaf.pem');
  await writeFile(leafFile, leafPem);
  const v = openssl(['verify', '-CAfile', certPath, leafFile]);
  t.equal(v.status, 0, `openssl verify accepts it: ${v.out}`);
});

t.test('an ECDSA P-384 key signs with ecdsa-with-SHA384', async (t) => {
  const keys = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
  const rootPem = selfSignedRoot(keys, 'p384');
  t.ok(new X509Certificate(rootPem).verify(keys.publicKey));
  t.match(execFileSync('openssl', ['x509', '-noout', '-text'], { input: rootPem, encoding: 'utf8' }), /Signature Algorithm: ecdsa-with-SHA384/);
  t.throws(() => signerFor(generateKeyPairSync('ec', { namedCurve: 'secp521r1' }).privateKey), 'P-521 has no signer');
});

t.test('the Istio CSR carries an empty subject and one critical URI SAN, and its self-signature verifies', async (t) => {
  const keys = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const csrPem = toPem(buildCsr(encodeName([]), signerFor(keys.privateKey), [sanUriExtension(URI, true)]), 'CERTIFICATE REQUEST');
  t.match(csrPem, /^-----BEGIN CERTIFICATE REQUEST-----\n/);

  const { x509 } = await loadX509();
  const csr = new x509.Pkcs10CertificateRequest(csrPem);
  t.ok(await csr.verify(), '@peculiar/x509 verifies the CSR signature');
  t.equal(csr.subject, '', 'empty subject');
  t.same(csr.signatureAlgorithm, { name: 'ECDSA', hash: { name: 'SHA-256' } }, 'ecdsa-with-SHA256');
  t.ok(Buffer.from(csr.publicKey.rawData).equals(spki(keys.publicKey)), 'certifies the key that signed it');
  t.same(csr.extensions.map((e) => [e.type, e.critical]), [[OID.subjectAltName, true]], 'one critical SAN extension');
  t.same(csr.getExtension(OID.subjectAltName) && new x509.SubjectAlternativeNameExtension(csr.getExtension(OID.subjectAltName)!.rawData).names.toJSON(),
    [{ type: 'url', value: URI }]);

  const r = openssl(['req', '-verify', '-noout', '-text'], csrPem);
  t.equal(r.status, 0, 'openssl req -verify exits 0');
  t.match(r.out, /verify OK/i);
  t.notMatch(r.out, /failure/i);
  t.match(r.out, /X509v3 Subject Alternative Name: critical\s+URI:spiffe:\/\/cluster\.local\/ns\/shop\/sa\/cart/);

  const bad = Buffer.from(csrPem.split('\n').slice(1, -1).join(''), 'base64');
  bad[bad.length - 5]! ^= 0x01; // flip a bit in the signature
  const rb = openssl(['req', '-verify', '-noout', '-inform', 'DER'], bad);
  // OpenSSL 3.0 exits 0 even on a bad self-signature, so the message is what tells them apart.
  t.match(rb.out, /verify failure/i, 'a tampered CSR fails openssl req -verify');
  t.notMatch(rb.out, /verify OK/i);
});

t.test('reading certificates: SAN URIs, SKI and issuer bytes come back out of the DER', async (t) => {
  const keys = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const rootPem = selfSignedRoot(keys, 'reader');
  const parsed = parseCertificate(pemCertificates(rootPem)[0]!);
  t.ok(subjectKeyId(parsed)?.equals(keyIdentifier(spki(keys.publicKey))), 'SKI reads back');
  t.ok(parsed.publicKey.equals(spki(keys.publicKey)), 'SPKI bytes read back verbatim');
  t.equal(parsed.serialHex, '00ff', 'serial content bytes (with the sign byte)');
  t.same(sanUris(parsed), [], 'no SAN on a root');
  t.same(pemCertificates(`junk\n${rootPem}\n${rootPem}`).length, 2, 'every CERTIFICATE block is found');
  t.throws(() => parseCertificate(Buffer.from('3003020101', 'hex')), 'a non-certificate is refused');
});
