import t from 'tap';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isZtunnelError } from '../core/errors.js';
import { formatIdentity } from '../core/spiffe.js';
import { CLOCK_SKEW_MS, LocalCa } from './local-ca.js';
import { loadX509 } from '../../test/helpers/x509.js';
import {
  createIntermediateCa, createRootCa, issueLeaf, testId, writeAuthorityFiles,
} from '../../test/helpers/certs.js';

const HOUR_MS = 3_600_000;

const scratch = await mkdtemp(path.join(tmpdir(), 'local-ca-test-'));
t.teardown(() => rm(scratch, { recursive: true, force: true }));

function tempDir(): Promise<string> {
  return mkdtemp(path.join(scratch, 'case-'));
}

/** What LocalCa.open rejected with, as { code, message }; code 'opened' if it did not reject. */
async function openFailure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
    return { code: 'opened', message: '' };
  } catch (e) {
    return { code: isZtunnelError(e) ? e.code : `not a ZtunnelError: ${String(e)}`, message: (e as Error).message };
  }
}

t.test('first start generates an ECDSA P-256 root with a private key file, and the next start reuses it', async (t) => {
  const dir = await tempDir();
  const stateDir = path.join(dir, 'state');
  const ca1 = await LocalCa.open({ stateDir, ttlMs: HOUR_MS });
  t.equal((await stat(stateDir)).mode & 0o777, 0o700, 'state dir is created 0700');
  t.equal((await stat(path.join(stateDir, 'ca-key.pem'))).mode & 0o777, 0o600, 'key file is 0600');
  const certPem = await readFile(path.join(stateDir, 'ca-cert.pem'), 'utf8');
  t.equal(ca1.rootPem().trim(), certPem.trim(), 'rootPem() is the file written');

  const root = new X509Certificate(certPem);
  t.equal(root.ca, true, 'root is CA:true');
  t.equal(root.publicKey.asymmetricKeyType, 'ec');
  t.equal(root.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1', 'root key is P-256');
  t.ok(root.verify(root.publicKey), 'root is self-signed');
  const years = (Date.parse(root.validTo) - Date.now()) / (365 * 24 * HOUR_MS);
  t.ok(years > 9.9 && years < 10.1, `root lives ~10 years (${years.toFixed(2)})`);

  const { x509 } = await loadX509();
  const parsed = new x509.X509Certificate(certPem);
  const bc = parsed.getExtension(x509.BasicConstraintsExtension);
  t.ok(bc?.ca && bc.critical, 'basicConstraints CA:true is critical');
  const ku = parsed.getExtension(x509.KeyUsagesExtension);
  t.ok(ku?.critical, 'keyUsage is critical');
  t.equal(ku?.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, 'keyUsage is keyCertSign+cRLSign');

  const ca2 = await LocalCa.open({ stateDir, ttlMs: HOUR_MS });
  t.equal(ca2.rootPem(), ca1.rootPem(), 'second start reuses the same root');
  const leaf = await ca2.fetchCertificate(testId('reuse'));
  t.ok(new X509Certificate(leaf.chainPem[0]!).verify(root.publicKey), 'leaf from the reopened CA verifies under the first root');
});

t.test('an issued leaf has one critical URI SAN, a P-256 PKCS#8 key, both EKUs and the TTL as validity', async (t) => {
  const dir = await tempDir();
  const fixedNow = new Date('2030-01-02T03:04:05.000Z');
  const ttlMs = 7 * HOUR_MS;
  const ca = await LocalCa.open({ stateDir: path.join(dir, 'state'), ttlMs, now: () => fixedNow });
  const id = testId('reviews', 'bookinfo', 'example.org');
  const cert = await ca.fetchCertificate(id);
  const { x509 } = await loadX509();
  const leaf = new x509.X509Certificate(cert.chainPem[0]!);

  const sans = leaf.getExtensions(x509.SubjectAlternativeNameExtension);
  t.equal(sans.length, 1, 'exactly one SAN extension');
  t.equal(sans[0]!.critical, true, 'SAN is critical');
  t.same(sans[0]!.names.toJSON(), [{ type: 'url', value: 'spiffe://example.org/ns/bookinfo/sa/reviews' }], 'SAN is exactly the SPIFFE URI');
  t.equal(leaf.subject, '', 'subject is empty');

  const ku = leaf.getExtension(x509.KeyUsagesExtension);
  t.equal(ku?.critical, true, 'keyUsage critical');
  t.equal(ku?.usages, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
  const eku = leaf.getExtension(x509.ExtendedKeyUsageExtension);
  t.same([...(eku?.usages ?? [])].sort(), [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth].sort(), 'serverAuth + clientAuth');
  t.equal(leaf.getExtension(x509.BasicConstraintsExtension)?.ca, false, 'leaf is not a CA');

  t.match(cert.keyPem, /^-----BEGIN PRIVATE KEY-----/, 'key is PKCS#8 PEM');
  const key = createPrivateKey(cert.keyPem);
  t.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1', 'leaf key is P-256');
  const nodeLeaf = new X509Certificate(cert.chainPem[0]!);
  t.ok(createPublicKey(key).export({ type: 'spki', format: 'der' }).equals(nodeLeaf.publicKey.export({ type: 'spki', format: 'der' })), 'key matches the certificate');

  t.equal(cert.notAfter.getTime() - fixedNow.getTime(), ttlMs, 'notAfter = now + TTL');
  t.equal(fixedNow.getTime() - cert.notBefore.getTime(), CLOCK_SKEW_MS, 'notBefore = now - clock skew allowance');
  t.equal(CLOCK_SKEW_MS, 60_000);
  t.same(cert.identity, id);
  t.equal(cert.serialNumber, leaf.serialNumber);
  t.ok(parseInt(cert.serialNumber.slice(0, 1), 16) < 8, 'serial is positive');
  t.same(cert.rootsPem, [ca.rootPem()], 'rootsPem carries the root');
  t.equal(cert.chainPem.length, 1, 'a generated root has no intermediates');
  t.ok(nodeLeaf.verify(new X509Certificate(ca.rootPem()).publicKey), 'leaf verifies under the root');

  const other = await ca.fetchCertificate(id);
  t.not(other.serialNumber, cert.serialNumber, 'every issue gets a fresh serial');
  t.not(other.keyPem, cert.keyPem, 'and a fresh key');
  t.same((await readdir(path.join(dir, 'state'))).sort(), ['ca-cert.pem', 'ca-key.pem'], 'leaves are never written to disk');
});

t.test('a given root signs leaves with its own key type', async (t) => {
  const rows = [
    { name: 'RSA-2048 root (PKCS#8 key) signs with RSASSA-PKCS1-v1_5 SHA-256', keyType: 'rsa-2048', pkcs1: false, sig: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
    { name: 'RSA-2048 root with a PKCS#1 "RSA PRIVATE KEY" file (istiod style) works too', keyType: 'rsa-2048', pkcs1: true, sig: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
    { name: 'ECDSA P-384 root signs with ECDSA SHA-384', keyType: 'ec-p384', pkcs1: false, sig: 'ECDSA', hash: 'SHA-384' },
  ] as const;
  for (const row of rows) {
    await t.test(row.name, async (t) => {
      const dir = await tempDir();
      const root = await createRootCa({ keyType: row.keyType });
      const files = await writeAuthorityFiles(dir, root);
      if (row.pkcs1) await writeFile(files.keyPath, createPrivateKey(root.keyPem).export({ type: 'pkcs1', format: 'pem' }) as string);
      const stateDir = path.join(dir, 'state');
      const ca = await LocalCa.open({ stateDir, caCertPath: files.certPath, caKeyPath: files.keyPath, ttlMs: HOUR_MS });
      t.equal(ca.rootPem().trim(), root.rootPem.trim(), 'rootPem() is the given root');
      const cert = await ca.fetchCertificate(testId('given'));
      const leaf = new X509Certificate(cert.chainPem[0]!);
      t.ok(leaf.verify(new X509Certificate(root.certPem).publicKey), 'node:crypto verifies the leaf with the root key');
      t.equal(createPrivateKey(cert.keyPem).asymmetricKeyDetails?.namedCurve, 'prime256v1', 'leaf key is still ECDSA P-256');
      const { x509 } = await loadX509();
      const alg = new x509.X509Certificate(cert.chainPem[0]!).signatureAlgorithm as { name: string; hash: { name: string } };
      t.equal(alg.name, row.sig);
      t.equal(alg.hash.name, row.hash);
      await t.rejects(stat(stateDir), 'nothing is written to the state dir when a root is given');
    });
  }
});

t.test('a chain file (intermediate first, root last) issues from the intermediate and trusts the root', async (t) => {
  const dir = await tempDir();
  const root = await createRootCa({ keyType: 'rsa-2048', commonName: 'chain root' });
  const inter = await createIntermediateCa(root, { commonName: 'chain intermediate' });
  const files = await writeAuthorityFiles(dir, inter);
  const ca = await LocalCa.open({ stateDir: path.join(dir, 'state'), caCertPath: files.certPath, caKeyPath: files.keyPath, ttlMs: HOUR_MS });
  const cert = await ca.fetchCertificate(testId('chained'));
  t.equal(cert.chainPem.length, 2, 'leaf + intermediate are presented');
  t.equal(cert.chainPem[1]!.trim(), inter.certPem.trim(), 'second entry is the intermediate');
  t.same(cert.rootsPem.map((p) => p.trim()), [root.rootPem.trim()], 'the trusted root is the last certificate');
  const leaf = new X509Certificate(cert.chainPem[0]!);
  const interCert = new X509Certificate(inter.certPem);
  t.ok(leaf.checkIssued(interCert) && leaf.verify(interCert.publicKey), 'leaf issued by the intermediate');
  t.ok(interCert.verify(new X509Certificate(root.rootPem).publicKey), 'intermediate issued by the root');

  // Root first, then the intermediate (wrong order), with the root's key: refused, not mis-issued.
  const reversed = path.join(dir, 'reversed.pem');
  await writeFile(reversed, root.rootPem + inter.certPem);
  const rootFiles = await writeAuthorityFiles(dir, root, 'root');
  const f = await openFailure(LocalCa.open({ stateDir: path.join(dir, 's2'), caCertPath: reversed, caKeyPath: rootFiles.keyPath, ttlMs: HOUR_MS }));
  t.equal(f.code, 'CONFIG_INVALID', 'a chain in the wrong order is refused');
  t.match(f.message, /is not signed by certificate #2.*issuing certificate first, root last/);
});

t.test('bad or mismatched CA files are refused with CONFIG_INVALID and a clear message', async (t) => {
  const dir = await tempDir();
  const good = await createRootCa();
  const other = await createRootCa();
  const goodFiles = await writeAuthorityFiles(dir, good, 'good');
  const otherFiles = await writeAuthorityFiles(dir, other, 'other');
  const garbage = path.join(dir, 'garbage.pem');
  await writeFile(garbage, 'this is not a certificate\n');
  const badBlock = path.join(dir, 'bad-block.pem');
  await writeFile(badBlock, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
  const p521 = await writeAuthorityFiles(dir, await createRootCa({ keyType: 'ec-p521' }), 'p521');
  const rsa1024 = await writeAuthorityFiles(dir, await createRootCa({ keyType: 'rsa-1024' }), 'rsa1024');
  const expired = await writeAuthorityFiles(dir, await createRootCa({ notBefore: new Date(Date.now() - 48 * HOUR_MS), notAfter: new Date(Date.now() - HOUR_MS) }), 'expired');
  const leaf = await issueLeaf(good, { uris: [formatIdentity(testId('x'))] });
  const leafCert = path.join(dir, 'leaf-cert.pem');
  const leafKey = path.join(dir, 'leaf-key.pem');
  await writeFile(leafCert, leaf.chainPem[0]! + good.rootPem);
  await writeFile(leafKey, leaf.keyPem);

  const rows: Array<{ name: string; cert?: string; key?: string; message: RegExp }> = [
    { name: 'a certificate file without any PEM certificate', cert: garbage, key: goodFiles.keyPath, message: /no PEM CERTIFICATE/ },
    { name: 'a PEM block that is not X.509', cert: badBlock, key: goodFiles.keyPath, message: /not valid X\.509/ },
    { name: 'a key file that is not a private key', cert: goodFiles.certPath, key: garbage, message: /not an unencrypted PEM private key/ },
    { name: 'a key that belongs to another certificate', cert: goodFiles.certPath, key: otherFiles.keyPath, message: /does not belong/ },
    { name: 'a missing certificate file', cert: path.join(dir, 'nope.pem'), key: goodFiles.keyPath, message: /cannot read CA certificate/ },
    { name: 'a certificate given without its key', cert: goodFiles.certPath, message: /must be given together/ },
    { name: 'an ECDSA P-521 root', cert: p521.certPath, key: p521.keyPath, message: /P-521|secp521r1/ },
    { name: 'an RSA-1024 root', cert: rsa1024.certPath, key: rsa1024.keyPath, message: /1024 bits/ },
    { name: 'an expired root', cert: expired.certPath, key: expired.keyPath, message: /expired/ },
    { name: 'a leaf certificate posing as the CA', cert: leafCert, key: leafKey, message: /not a CA certificate/ },
  ];
  for (const row of rows) {
    await t.test(row.name, async (t) => {
      const f = await openFailure(LocalCa.open({
        stateDir: path.join(dir, 'unused'),
        ...(row.cert !== undefined ? { caCertPath: row.cert } : {}),
        ...(row.key !== undefined ? { caKeyPath: row.key } : {}),
        ttlMs: HOUR_MS,
      }));
      t.equal(f.code, 'CONFIG_INVALID');
      t.match(f.message, row.message);
    });
  }

  await t.test('a state dir holding a certificate but no key is not silently replaced', async (t) => {
    const stateDir = path.join(dir, 'half');
    await LocalCa.open({ stateDir, ttlMs: HOUR_MS });
    await rm(path.join(stateDir, 'ca-key.pem'));
    const f = await openFailure(LocalCa.open({ stateDir, ttlMs: HOUR_MS }));
    t.equal(f.code, 'CONFIG_INVALID');
    t.match(f.message, /found .*ca-cert\.pem but not .*ca-key\.pem/);
  });
});

t.test('issuing for a malformed identity rejects with IDENTITY_UNAVAILABLE', async (t) => {
  const dir = await tempDir();
  const ca = await LocalCa.open({ stateDir: path.join(dir, 'state'), ttlMs: HOUR_MS });
  await t.rejects(ca.fetchCertificate({ trustDomain: 'cluster.local', namespace: 'a/b', serviceAccount: 'sa' }), { code: 'IDENTITY_UNAVAILABLE' });
});
