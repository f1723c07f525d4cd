// The embedded local CA (config.md §6): a root generated into the state directory on first start
// and reused afterwards, or a given root (RSA 2048–4096 / ECDSA P-256, P-384, optionally a chain
// file). It issues workload certificates shaped like istiod's (xds.md §7 CSR rules): a fresh
// ECDSA P-256 key, empty subject, one critical URI SAN, serverAuth+clientAuth. Leaves live only in
// memory; only the root is ever written to disk.
import { createPrivateKey, createPublicKey, randomBytes, type KeyObject, type webcrypto } from 'node:crypto';
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ZtunnelError, asZtunnelError } from '../core/errors.js';
import { formatIdentity, parseIdentity, type Identity } from '../core/spiffe.js';
import type { WorkloadCertificate } from '../tls/certificate.js';
import type { Logger } from '../telemetry/logger.js';
import type { CaClient } from './ca-client.js';
import { loadX509 } from '../core/x509.js';
import type * as X509 from '@peculiar/x509';

export interface LocalCaOptions {
  readonly stateDir: string;
  /** Given root (or chain file: issuing cert first, trusted root last); needs caKeyPath too. */
  readonly caCertPath?: string;
  readonly caKeyPath?: string;
  /** Lifetime of issued leaves (SECRET_TTL). */
  readonly ttlMs: number;
  readonly now?: () => Date;
  readonly logger?: Logger;
}

export interface IssueOptions {
  /** Issue as if the clock read this (tests mint expired or not-yet-valid certificates). */
  readonly now?: Date;
  readonly ttlMs?: number;
}

const ROOT_VALIDITY_MS = 10 * 365 * 24 * 3600 * 1000;
/** Leaves are back-dated by one minute so a peer whose clock is slightly behind accepts them. */
export const CLOCK_SKEW_MS = 60_000;
const ROOT_NAME = 'CN=ztunnel-ts local CA, O=ztunnel-ts';

interface Issuer {
  readonly cert: X509.X509Certificate;
  /** Certificates sent after the leaf: the file's certificates except the trusted root. */
  readonly intermediatesPem: readonly string[];
  readonly rootPem: string;
  readonly signingKey: webcrypto.CryptoKey;
  readonly signingAlgorithm: webcrypto.Algorithm | webcrypto.EcdsaParams;
  readonly authorityKeyId?: string;
}

export class LocalCa implements CaClient {
  readonly #issuer: Issuer;
  readonly #ttlMs: number;
  readonly #now: () => Date;

  private constructor(issuer: Issuer, ttlMs: number, now: () => Date) {
    this.#issuer = issuer;
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  /** Loads (or on first start generates) the root. Bad files reject with CONFIG_INVALID. */
  static async open(opts: LocalCaOptions): Promise<LocalCa> {
    const now = opts.now ?? (() => new Date());
    if (!(opts.ttlMs > 0)) throw new ZtunnelError('CONFIG_INVALID', `local CA: certificate TTL must be positive, got ${opts.ttlMs} ms`);
    if ((opts.caCertPath === undefined) !== (opts.caKeyPath === undefined)) {
      throw new ZtunnelError('CONFIG_INVALID', 'local CA: --ca-cert and --ca-key (ZTUNNEL_CA_CERT / ZTUNNEL_CA_KEY) must be given together');
    }
    try {
      let certPath: string;
      let keyPath: string;
      if (opts.caCertPath !== undefined && opts.caKeyPath !== undefined) {
        certPath = opts.caCertPath;
        keyPath = opts.caKeyPath;
      } else {
        certPath = path.join(opts.stateDir, 'ca-cert.pem');
        keyPath = path.join(opts.stateDir, 'ca-key.pem');
        const [haveCert, haveKey] = await Promise.all([exists(certPath), exists(keyPath)]);
        if (haveCert !== haveKey) {
          throw new ZtunnelError('CONFIG_INVALID',
            `local CA: found ${haveCert ? certPath : keyPath} but not ${haveCert ? keyPath : certPath}; restore it or remove both to generate a new root`);
        }
        if (!haveCert) {
          await generateRoot(opts.stateDir, certPath, keyPath, now());
          opts.logger?.info({ certPath }, 'local CA: generated a new ECDSA P-256 root');
        }
      }
      const issuer = await loadIssuer(certPath, keyPath, now());
      opts.logger?.info({ certPath, subject: issuer.cert.subject, notAfter: issuer.cert.notAfter.toISOString() }, 'local CA: root loaded');
      return new LocalCa(issuer, opts.ttlMs, now);
    } catch (e) {
      throw asZtunnelError(e, 'CONFIG_INVALID');
    }
  }

  /** The trusted root (PEM), for distributing trust to other daemons. */
  rootPem(): string {
    return this.#issuer.rootPem;
  }

  async fetchCertificate(id: Identity): Promise<WorkloadCertificate> {
    try {
      return await this.issue(id);
    } catch (e) {
      throw asZtunnelError(e, 'IDENTITY_UNAVAILABLE');
    }
  }

  /** Issues a leaf for `id`; `opts` lets tests pick the clock and lifetime. */
  async issue(id: Identity, opts: IssueOptions = {}): Promise<WorkloadCertificate> {
    const uri = formatIdentity(id);
    if (!parseIdentity(uri)) throw new ZtunnelError('IDENTITY_UNAVAILABLE', `not a valid SPIFFE identity: ${uri}`);
    const { x509, crypto } = await loadX509();
    const nowMs = (opts.now ?? this.#now()).getTime();
    const ttlMs = opts.ttlMs ?? this.#ttlMs;
    const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    const issuer = this.#issuer;
    const extensions: X509.Extension[] = [
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: uri }], true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
      new x509.BasicConstraintsExtension(false, undefined, true),
    ];
    if (issuer.authorityKeyId) extensions.push(new x509.AuthorityKeyIdentifierExtension(issuer.authorityKeyId, false));
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: [],
      issuer: issuer.cert.subjectName,
      notBefore: new Date(nowMs - CLOCK_SKEW_MS),
      notAfter: new Date(nowMs + ttlMs),
      publicKey: keys.publicKey,
      signingKey: issuer.signingKey,
      signingAlgorithm: issuer.signingAlgorithm,
      extensions,
    }, crypto);
    const pkcs8 = await crypto.subtle.exportKey('pkcs8', keys.privateKey);
    return {
      identity: { trustDomain: id.trustDomain, namespace: id.namespace, serviceAccount: id.serviceAccount },
      chainPem: [cert.toString('pem'), ...issuer.intermediatesPem],
      keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'),
      rootsPem: [issuer.rootPem],
      notBefore: cert.notBefore,
      notAfter: cert.notAfter,
      serialNumber: cert.serialNumber,
    };
  }
}

/** 16 random bytes, top bit clear (a positive INTEGER) and second bit set (no leading zero byte). */
function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x40;
  return b.toString('hex');
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new ZtunnelError('CONFIG_INVALID', `local CA: cannot access ${p}: ${(e as Error).message}`, { cause: e });
  }
}

async function generateRoot(stateDir: string, certPath: string, keyPath: string, now: Date): Promise<void> {
  const { x509, crypto } = await loadX509();
  const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: ROOT_NAME,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(now.getTime() + ROOT_VALIDITY_MS),
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
    ],
  }, crypto);
  const keyPem = x509.PemConverter.encode(await crypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  // Key first, cert last: a crash in between leaves a key without a cert, which open() reports
  // instead of silently generating a second root.
  await writeAtomically(keyPath, keyPem, 0o600);
  await writeAtomically(certPath, cert.toString('pem'), 0o644);
}

async function writeAtomically(file: string, data: string, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, data, { mode });
  await chmod(tmp, mode); // the file may have pre-existed with another mode
  await rename(tmp, file);
}

async function readText(p: string, what: string): Promise<string> {
  try {
    return await readFile(p, 'utf8');
  } catch (e) {
    throw new ZtunnelError('CONFIG_INVALID', `local CA: cannot read ${what} ${p}: ${(e as Error).message}`, { cause: e });
  }
}

function invalid(message: string, cause?: unknown): ZtunnelError {
  return new ZtunnelError('CONFIG_INVALID', `local CA: ${message}`, cause === undefined ? undefined : { cause });
}

async function loadIssuer(certPath: string, keyPath: string, now: Date): Promise<Issuer> {
  const { x509, crypto } = await loadX509();
  const certText = await readText(certPath, 'CA certificate');
  const keyText = await readText(keyPath, 'CA key');

  let blocks: ArrayBuffer[];
  try {
    blocks = x509.PemConverter.decodeWithHeaders(certText).filter((b) => b.type === 'CERTIFICATE').map((b) => b.rawData);
  } catch (e) {
    throw invalid(`${certPath} is not PEM: ${(e as Error).message}`, e);
  }
  if (blocks.length === 0) throw invalid(`${certPath} holds no PEM CERTIFICATE block`);
  const certs = blocks.map((der, i) => {
    try {
      return new x509.X509Certificate(der);
    } catch (e) {
      throw invalid(`${certPath}: certificate #${i + 1} is not valid X.509: ${(e as Error).message}`, e);
    }
  });

  let key: KeyObject;
  try {
    key = createPrivateKey(keyText);
  } catch (e) {
    throw invalid(`${keyPath} is not an unencrypted PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC): ${(e as Error).message}`, e);
  }
  const { importAlg, signingAlgorithm, description } = keyAlgorithms(key, keyPath);

  const issuing = certs[0]!;
  const root = certs[certs.length - 1]!;
  const keySpki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  if (!keySpki.equals(Buffer.from(issuing.publicKey.rawData))) {
    throw invalid(`${keyPath} (${description}) does not belong to the first certificate in ${certPath} (${issuing.subject})`);
  }
  for (let i = 0; i < certs.length; i++) {
    const c = certs[i]!;
    if (c.notAfter.getTime() <= now.getTime()) throw invalid(`${certPath}: certificate #${i + 1} (${c.subject}) expired at ${c.notAfter.toISOString()}`);
    const bc = c.getExtension(x509.BasicConstraintsExtension);
    if (!bc?.ca) throw invalid(`${certPath}: certificate #${i + 1} (${c.subject}) is not a CA certificate (basicConstraints CA:true missing)`);
    const ku = c.getExtension(x509.KeyUsagesExtension);
    if (ku && (ku.usages & x509.KeyUsageFlags.keyCertSign) === 0) throw invalid(`${certPath}: certificate #${i + 1} (${c.subject}) lacks keyUsage keyCertSign`);
    if (i + 1 < certs.length) {
      const parent = certs[i + 1]!;
      const signed = await c.verify({ publicKey: parent.publicKey, signatureOnly: true }, crypto).catch(() => false);
      if (!signed) throw invalid(`${certPath}: certificate #${i + 1} (${c.subject}) is not signed by certificate #${i + 2} (${parent.subject}); order must be issuing certificate first, root last`);
    }
  }
  if (!(await root.isSelfSigned(crypto).catch(() => false))) {
    throw invalid(`${certPath}: the last certificate (${root.subject}) must be the self-signed root`);
  }

  let signingKey: webcrypto.CryptoKey;
  try {
    const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
    signingKey = await crypto.subtle.importKey('pkcs8', pkcs8, importAlg, false, ['sign']);
  } catch (e) {
    throw invalid(`${keyPath}: cannot import ${description} key: ${(e as Error).message}`, e);
  }
  const ski = issuing.getExtension(x509.SubjectKeyIdentifierExtension);
  return {
    cert: issuing,
    intermediatesPem: certs.slice(0, -1).map((c) => c.toString('pem')),
    rootPem: root.toString('pem'),
    signingKey,
    signingAlgorithm,
    ...(ski ? { authorityKeyId: ski.keyId } : {}),
  };
}

/** Supported root key types (config.md §6) and the signature each produces. */
function keyAlgorithms(key: KeyObject, keyPath: string): {
  importAlg: webcrypto.RsaHashedImportParams | webcrypto.EcKeyImportParams;
  signingAlgorithm: webcrypto.Algorithm | webcrypto.EcdsaParams;
  description: string;
} {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < 2048 || bits > 4096) throw invalid(`${keyPath}: RSA key of ${bits} bits; supported are 2048 to 4096`);
    return {
      importAlg: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as webcrypto.Algorithm,
      description: `RSA-${bits}`,
    };
  }
  if (key.asymmetricKeyType === 'ec') {
    if (details.namedCurve === 'prime256v1') {
      return { importAlg: { name: 'ECDSA', namedCurve: 'P-256' }, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' }, description: 'ECDSA P-256' };
    }
    if (details.namedCurve === 'secp384r1') {
      return { importAlg: { name: 'ECDSA', namedCurve: 'P-384' }, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' }, description: 'ECDSA P-384' };
    }
    throw invalid(`${keyPath}: ECDSA curve ${details.namedCurve ?? 'unknown'} is not supported; use P-256 or P-384`);
  }
  throw invalid(`${keyPath}: ${key.asymmetricKeyType ?? 'unknown'} keys are not supported; use RSA (2048-4096) or ECDSA P-256/P-384`);
}
