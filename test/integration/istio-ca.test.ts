// IstioCaClient against the stand-in istiod's IstioCertificateService (real grpc-js server over
// TLS on 127.0.0.1): CSR shape as the server sees it, impersonation metadata, chain splitting,
// identity check, failures, token and root rotation — and that the result works in a real TLS
// handshake.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { status as GrpcStatus } from '@grpc/grpc-js';
import t, { type Test } from 'tap';
import { IstioCaClient, type IstioCaConfig } from '../../src/identity/istio-ca-client.js';
import { loadX509 } from '../helpers/x509.js';
import { formatIdentity, type Identity } from '../../src/core/spiffe.js';
import { ZtunnelError } from '../../src/core/errors.js';
import type { WorkloadCertificate } from '../../src/tls/certificate.js';
import { FakeIstiod, mintCa, type FakeIstiodOptions } from '../helpers/fake-istiod.js';

const cart: Identity = { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'cart' };

interface Setup {
  readonly fake: FakeIstiod;
  readonly client: IstioCaClient;
  readonly tokenFile: string;
  readonly rootFile: string;
}

async function setup(tt: Test, config: Partial<IstioCaConfig> = {}, fakeOpts: FakeIstiodOptions = {}): Promise<Setup> {
  const fake = await FakeIstiod.start(fakeOpts);
  const dir = mkdtempSync(path.join(tmpdir(), 'istio-ca-'));
  const tokenFile = path.join(dir, 'istio-token');
  writeFileSync(tokenFile, 'ca-token-1\n');
  const rootFile = path.join(dir, 'root-cert.pem');
  writeFileSync(rootFile, fake.rootPem);
  const client = new IstioCaClient({
    config: {
      caAddress: fake.address,
      caRootCa: rootFile,
      authToken: tokenFile,
      clusterId: 'cluster-1',
      caHeaders: new Map([['X-Ca-Extra', 'yes']]),
      secretTtlMs: 3_600_000,
      proxyMode: 'shared',
      ...config,
    },
  });
  tt.teardown(async () => {
    client.close();
    await fake.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return { fake, client, tokenFile, rootFile };
}

async function rejection(p: Promise<unknown>): Promise<ZtunnelError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ZtunnelError) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}

/** A real TLS 1.3 handshake: server presents `cert`, client trusts only `cert.rootsPem`. */
async function handshake(cert: WorkloadCertificate): Promise<string | undefined> {
  const server = createServer({ cert: cert.chainPem.join(''), key: cert.keyPem, minVersion: 'TLSv1.3' }, (s) => s.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  try {
    const sock = await new Promise<TLSSocket>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, ca: [...cert.rootsPem], checkServerIdentity: () => undefined }, () => resolve(s));
      s.on('error', reject);
    });
    const san = sock.getPeerCertificate().subjectaltname;
    sock.destroy();
    return san;
  } finally {
    server.close();
  }
}

t.test('the CSR istiod receives has an empty subject, a P-256 key, a SHA-256 signature and one critical URI SAN', async (tt) => {
  const { fake, client } = await setup(tt);
  await client.fetchCertificate(cart);
  const req = await fake.waitForCaRequest();
  const { x509 } = await loadX509();
  const csr = new x509.Pkcs10CertificateRequest(req.csrPem);
  tt.equal(csr.subject, '', 'empty subject');
  tt.equal(await csr.verify(), true, 'self-signature verifies');
  tt.match(csr.publicKey.algorithm, { name: 'ECDSA', namedCurve: 'P-256' });
  tt.match(csr.signatureAlgorithm, { name: 'ECDSA', hash: { name: 'SHA-256' } });
  tt.equal(csr.extensions.length, 1, 'exactly one extension');
  const ext = csr.extensions[0]!;
  tt.equal(ext.type, '2.5.29.17', 'it is SubjectAltName');
  tt.equal(ext.critical, true, 'and critical');
  const names = new x509.SubjectAlternativeNameExtension(ext.rawData).names.items.map((n) => [n.type, n.value]);
  tt.same(names, [['url', 'spiffe://cluster.local/ns/shop/sa/cart']]);
  tt.equal(req.validitySeconds, 3600, 'validity_duration = SECRET_TTL in seconds');
  tt.equal(req.headers['authorization'], 'Bearer ca-token-1');
  tt.equal(req.headers['clusterid'], 'cluster-1');
  tt.equal(req.headers['x-ca-extra'], 'yes', 'CA_HEADER_* sent');
});

t.test('shared mode asks istiod to impersonate the workload; dedicated mode sends no metadata', async (tt) => {
  const shared = await setup(tt);
  await shared.client.fetchCertificate(cart);
  tt.same((await shared.fake.waitForCaRequest()).metadata, { ImpersonatedIdentity: 'spiffe://cluster.local/ns/shop/sa/cart' });

  const dedicated = await setup(tt, { proxyMode: 'dedicated' });
  await dedicated.client.fetchCertificate(cart);
  tt.equal((await dedicated.fake.waitForCaRequest()).metadata, undefined);
});

t.test('the certificate returned is the leaf for the identity, with its key, dates, serial and the root; it serves TLS', async (tt) => {
  const { client } = await setup(tt);
  const cert = await client.fetchCertificate(cart);
  tt.same(cert.identity, cart);
  tt.equal(cert.chainPem.length, 1, 'no intermediates in a [leaf, root] chain');
  tt.equal(cert.rootsPem.length, 1);
  tt.match(cert.keyPem, /^-----BEGIN PRIVATE KEY-----/, 'PKCS#8 key');
  const { x509 } = await loadX509();
  const leaf = new x509.X509Certificate(cert.chainPem[0]!);
  tt.equal(cert.serialNumber, leaf.serialNumber);
  tt.equal(cert.notAfter.getTime(), leaf.notAfter.getTime());
  const lifetimeS = (cert.notAfter.getTime() - cert.notBefore.getTime()) / 1000;
  tt.ok(lifetimeS > 3590 && lifetimeS < 3610, `lifetime follows validity_duration (${lifetimeS} s)`);
  tt.equal(await handshake(cert), 'URI:spiffe://cluster.local/ns/shop/sa/cart', 'a TLS peer sees the SPIFFE identity');
});

t.test('intermediates stay in the chain and several concatenated roots in the last entry are all kept', async (tt) => {
  const other = await mintCa('another trusted root');
  const { fake, client } = await setup(tt, {}, { intermediate: true, extraRootsPem: [other.certPem] });
  const cert = await client.fetchCertificate(cart);
  tt.equal(cert.chainPem.length, 2, 'leaf + intermediate');
  tt.equal(cert.rootsPem.length, 2, 'both roots split out of the last entry');
  tt.equal(cert.rootsPem[0], fake.rootPem);
  tt.equal(cert.rootsPem[1], other.certPem);
  tt.equal(await handshake(cert), 'URI:spiffe://cluster.local/ns/shop/sa/cart', 'leaf + intermediate verify against the roots');
});

t.test('a leaf for another identity is rejected with IDENTITY_UNAVAILABLE', async (tt) => {
  const { fake, client } = await setup(tt);
  fake.caResponder = ({ issue }) => issue('spiffe://cluster.local/ns/shop/sa/intruder');
  const e = await rejection(client.fetchCertificate(cart));
  tt.equal(e.code, 'IDENTITY_UNAVAILABLE');
  tt.match(e.message, /intruder/);
});

t.test('an empty chain is rejected with IDENTITY_UNAVAILABLE', async (tt) => {
  const { fake, client } = await setup(tt);
  fake.caResponder = () => [];
  tt.equal((await rejection(client.fetchCertificate(cart))).code, 'IDENTITY_UNAVAILABLE');
});

t.test('CA errors and an unreachable CA become IDENTITY_UNAVAILABLE with the gRPC error as cause', async (tt) => {
  const { fake, client } = await setup(tt);
  fake.caFailure = { code: GrpcStatus.PERMISSION_DENIED, details: 'not allowed to impersonate' };
  const denied = await rejection(client.fetchCertificate(cart));
  tt.equal(denied.code, 'IDENTITY_UNAVAILABLE');
  tt.match(denied.message, /not allowed to impersonate/);
  tt.match(denied.cause, { code: GrpcStatus.PERMISSION_DENIED });

  fake.caFailure = undefined;
  await fake.stop();
  const down = await rejection(client.fetchCertificate(cart));
  tt.equal(down.code, 'IDENTITY_UNAVAILABLE');
  tt.match(down.cause, { code: GrpcStatus.UNAVAILABLE });

  await fake.restart();
  const cert = await client.fetchCertificate(cart);
  tt.equal(formatIdentity(cert.identity), 'spiffe://cluster.local/ns/shop/sa/cart', 'works again once istiod is back');
});

t.test("CA_ADDRESS with http:// (istiod's plaintext 15010): as in Istio's ztunnel, nothing is sent; each call fails with \"unsupported scheme http\"", async (tt) => {
  const { fake, client } = await setup(tt, {}, { plaintext: true });
  tt.match(fake.address, /^http:\/\//);
  const e = await rejection(client.fetchCertificate(cart));
  tt.equal(e.code, 'IDENTITY_UNAVAILABLE');
  tt.match(String((e.cause as Error | undefined)?.message ?? e.message), /unsupported scheme http/);
  tt.equal(fake.caRequests.length, 0, 'no CSR reached the plaintext server');
});

t.test('a rotated token file and a replaced CA_ROOT_CA file are picked up by the next call', async (tt) => {
  const first = await setup(tt);
  await first.client.fetchCertificate(cart);
  writeFileSync(first.tokenFile, 'ca-token-2\n');
  await first.client.fetchCertificate(cart);
  tt.equal(first.fake.caRequests.at(-1)!.headers['authorization'], 'Bearer ca-token-2');

  // A new istiod with a new root on the same port: the old root refuses it ...
  const port = first.fake.port;
  await first.fake.stop();
  const second = await FakeIstiod.start({ port });
  tt.teardown(() => second.stop());
  const refused = await rejection(first.client.fetchCertificate(cart));
  tt.equal(refused.code, 'IDENTITY_UNAVAILABLE', 'old root does not verify the new server');
  // ... and writing the new root to CA_ROOT_CA rebuilds the channel.
  writeFileSync(first.rootFile, second.rootPem);
  const cert = await first.client.fetchCertificate(cart);
  tt.equal(cert.rootsPem[0], second.rootPem);
});
