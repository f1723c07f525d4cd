// Test helpers that mint real certificates: a LocalCa in a temp dir, independent roots of any
// supported key type, intermediates, and leaves with arbitrary SANs and validity (expired,
// DNS-only, another trust domain, ...). Everything is real X.509 usable by node:tls.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type * as X509 from '@peculiar/x509';
import { parseIdentity, type Identity } from '../../src/core/spiffe.js';
import type { WorkloadCertificate } from '../../src/tls/certificate.js';
import { LocalCa, type IssueOptions } from '../../src/identity/local-ca.js';
import { loadX509, type X509Module } from './x509.js';

/** spiffe://<td>/ns/<ns>/sa/<sa> as an Identity; defaults cluster.local / default. */
export function testId(serviceAccount = 'default', namespace = 'default', trustDomain = 'cluster.local'): Identity {
  return { trustDomain, namespace, serviceAccount };
}

export type TestKeyType = 'ec-p256' | 'ec-p384' | 'ec-p521' | 'rsa-1024' | 'rsa-2048' | 'rsa-4096';

/** A CA certificate with its key; chainPem runs from this certificate up to the root. */
export interface TestAuthority {
  readonly certPem: string;
  /** PKCS#8 PEM. */
  readonly keyPem: string;
  /** [this, ...parents, root]. For a root: [root]. */
  readonly chainPem: readonly string[];
  readonly rootPem: string;
}

export interface AuthorityOptions {
  keyType?: TestKeyType;
  commonName?: string;
  notBefore?: Date;
  notAfter?: Date;
}

export interface LeafOptions {
  /** URI SANs (e.g. formatIdentity(id)); none by default. */
  uris?: readonly string[];
  dnsNames?: readonly string[];
  notBefore?: Date;
  notAfter?: Date;
  /** WorkloadCertificate.identity; defaults to the first URI that parses as SPIFFE. */
  identity?: Identity;
  /** Extended key usages; default serverAuth + clientAuth. */
  serverAuth?: boolean;
  clientAuth?: boolean;
  /** BasicConstraints on the leaf: true, CA:TRUE (a CA certificate used as an end entity); false, CA:FALSE (as Istio's CA issues); absent, none. */
  ca?: boolean;
  /** KeyUsage flags (@peculiar/x509 KeyUsageFlags); default digitalSignature | keyEncipherment. */
  keyUsage?: number;
}

const HOUR_MS = 3_600_000;

function keyAlgorithm(t: TestKeyType): { gen: object; sign: object } {
  switch (t) {
    case 'ec-p256': return { gen: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } };
    case 'ec-p384': return { gen: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-384' } };
    case 'ec-p521': return { gen: { name: 'ECDSA', namedCurve: 'P-521' }, sign: { name: 'ECDSA', hash: 'SHA-512' } };
    default: {
      const bits = Number(t.slice(4));
      const gen = { name: 'RSASSA-PKCS1-v1_5', modulusLength: bits, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };
      return { gen, sign: gen };
    }
  }
}

function serial(): string {
  const b = randomBytes(12);
  b[0] = (b[0]! & 0x7f) | 0x40;
  return b.toString('hex');
}

async function importSigner(authority: TestAuthority): Promise<{ key: CryptoKeyLike; sign: object; cert: X509.X509Certificate }> {
  const { x509, crypto } = await loadX509();
  const cert = new x509.X509Certificate(authority.certPem);
  const alg = cert.publicKey.algorithm as { name: string; namedCurve?: string };
  const pkcs8 = x509.PemConverter.decodeFirst(authority.keyPem);
  if (alg.name === 'ECDSA') {
    const hash = alg.namedCurve === 'P-384' ? 'SHA-384' : alg.namedCurve === 'P-521' ? 'SHA-512' : 'SHA-256';
    const key = await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve: alg.namedCurve! }, false, ['sign']);
    return { key, sign: { name: 'ECDSA', hash }, cert };
  }
  const key = await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['sign']);
  return { key, sign: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, cert };
}

type CryptoKeyLike = Awaited<ReturnType<Awaited<ReturnType<typeof loadX509>>['crypto']['subtle']['importKey']>>;

async function caExtensions(x509: X509Module, publicKey: CryptoKeyLike): Promise<X509.Extension[]> {
  return [
    new x509.BasicConstraintsExtension(true, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
  ];
}

/** A self-signed root of the given key type (default ECDSA P-256), valid from 1 h ago for 1 year. */
export async function createRootCa(opts: AuthorityOptions = {}): Promise<TestAuthority> {
  const { x509, crypto } = await loadX509();
  const { gen, sign } = keyAlgorithm(opts.keyType ?? 'ec-p256');
  const keys = (await crypto.subtle.generateKey(gen as never, true, ['sign', 'verify'])) as { publicKey: CryptoKeyLike; privateKey: CryptoKeyLike };
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${opts.commonName ?? 'test root'}`,
    notBefore: opts.notBefore ?? new Date(now - HOUR_MS),
    notAfter: opts.notAfter ?? new Date(now + 365 * 24 * HOUR_MS),
    keys: keys as never,
    signingAlgorithm: sign as never,
    extensions: await caExtensions(x509, keys.publicKey),
  });
  const pem = cert.toString('pem');
  const keyPem = x509.PemConverter.encode(await crypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
  return { certPem: pem, keyPem, chainPem: [pem], rootPem: pem };
}

/** An intermediate CA signed by `parent`. */
export async function createIntermediateCa(parent: TestAuthority, opts: AuthorityOptions = {}): Promise<TestAuthority> {
  const { x509, crypto } = await loadX509();
  const signer = await importSigner(parent);
  const { gen } = keyAlgorithm(opts.keyType ?? 'ec-p256');
  const keys = (await crypto.subtle.generateKey(gen as never, true, ['sign', 'verify'])) as { publicKey: CryptoKeyLike; privateKey: CryptoKeyLike };
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${opts.commonName ?? 'test intermediate'}`,
    issuer: signer.cert.subjectName,
    notBefore: opts.notBefore ?? new Date(now - HOUR_MS),
    notAfter: opts.notAfter ?? new Date(now + 180 * 24 * HOUR_MS),
    publicKey: keys.publicKey as never,
    signingKey: signer.key as never,
    signingAlgorithm: signer.sign as never,
    extensions: await caExtensions(x509, keys.publicKey),
  });
  const pem = cert.toString('pem');
  const keyPem = x509.PemConverter.encode(await crypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
  return { certPem: pem, keyPem, chainPem: [pem, ...parent.chainPem], rootPem: parent.rootPem };
}

/**
 * A leaf (ECDSA P-256) signed by `issuer` with exactly the SANs asked for. chainPem is the leaf
 * plus the issuer's chain without the root; rootsPem is the issuer's root.
 */
export async function issueLeaf(issuer: TestAuthority, opts: LeafOptions = {}): Promise<WorkloadCertificate> {
  const { x509, crypto } = await loadX509();
  const signer = await importSigner(issuer);
  const keys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as { publicKey: CryptoKeyLike; privateKey: CryptoKeyLike };
  const now = Date.now();
  const names = [
    ...(opts.uris ?? []).map((value) => ({ type: 'url' as const, value })),
    ...(opts.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
  ];
  const ekus: string[] = [];
  if (opts.serverAuth ?? true) ekus.push(x509.ExtendedKeyUsage.serverAuth);
  if (opts.clientAuth ?? true) ekus.push(x509.ExtendedKeyUsage.clientAuth);
  const extensions: X509.Extension[] = [
    new x509.KeyUsagesExtension(opts.keyUsage ?? (x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment), true),
  ];
  if (opts.ca !== undefined) extensions.push(new x509.BasicConstraintsExtension(opts.ca, undefined, true));
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, true));
  if (ekus.length > 0) extensions.push(new x509.ExtendedKeyUsageExtension(ekus, false));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: names.length > 0 ? [] : 'CN=no-san',
    issuer: signer.cert.subjectName,
    notBefore: opts.notBefore ?? new Date(now - 60_000),
    notAfter: opts.notAfter ?? new Date(now + 24 * HOUR_MS),
    publicKey: keys.publicKey as never,
    signingKey: signer.key as never,
    signingAlgorithm: signer.sign as never,
    extensions,
  });
  const identity = opts.identity
    ?? (opts.uris ?? []).map(parseIdentity).find((id): id is Identity => id !== null)
    ?? testId('no-identity');
  return {
    identity,
    chainPem: [cert.toString('pem'), ...issuer.chainPem.slice(0, -1)],
    keyPem: x509.PemConverter.encode(await crypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'),
    rootsPem: [issuer.rootPem],
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    serialNumber: cert.serialNumber,
  };
}

/** Writes an authority as LocalCa's given-root files: chain (issuing cert first, root last) + key. */
export async function writeAuthorityFiles(dir: string, authority: TestAuthority, name = 'given'): Promise<{ certPath: string; keyPath: string }> {
  const certPath = path.join(dir, `${name}-cert.pem`);
  const keyPath = path.join(dir, `${name}-key.pem`);
  await writeFile(certPath, authority.chainPem.join(''));
  await writeFile(keyPath, authority.keyPem, { mode: 0o600 });
  return { certPath, keyPath };
}

export interface TempCa {
  /** Temp directory; the CA state lives in `<dir>/state`. */
  readonly dir: string;
  readonly ca: LocalCa;
  readonly rootPem: string;
  /** The CA's own certificate and key, for issueLeaf (custom SANs) under the same root. */
  readonly authority: TestAuthority;
  issue(id: Identity, opts?: IssueOptions): Promise<WorkloadCertificate>;
  /** A certificate that expired an hour ago (issued two hours ago for one hour). */
  issueExpired(id: Identity): Promise<WorkloadCertificate>;
  cleanup(): Promise<void>;
}

/**
 * A LocalCa in a fresh temp dir: a generated ECDSA P-256 root, or `given` written as the
 * --ca-cert/--ca-key files. Call cleanup() (e.g. in t.teardown).
 */
export async function createTempCa(opts: { ttlMs?: number; given?: TestAuthority } = {}): Promise<TempCa> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ztunnel-ts-ca-'));
  const stateDir = path.join(dir, 'state');
  const files = opts.given ? await writeAuthorityFiles(dir, opts.given) : undefined;
  const ca = await LocalCa.open({
    stateDir,
    ttlMs: opts.ttlMs ?? 24 * HOUR_MS,
    ...(files ? { caCertPath: files.certPath, caKeyPath: files.keyPath } : {}),
  });
  const authority: TestAuthority = opts.given ?? await (async () => {
    const certPem = await readFile(path.join(stateDir, 'ca-cert.pem'), 'utf8');
    const keyPem = await readFile(path.join(stateDir, 'ca-key.pem'), 'utf8');
    return { certPem, keyPem, chainPem: [certPem], rootPem: certPem };
  })();
  return {
    dir,
    ca,
    rootPem: ca.rootPem(),
    authority,
    issue: (id, o) => ca.issue(id, o),
    issueExpired: (id) => ca.issue(id, { now: new Date(Date.now() - 2 * HOUR_MS), ttlMs: HOUR_MS }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
