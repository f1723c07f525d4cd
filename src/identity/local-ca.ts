// The embedded local CA (config.md §6): a root generated into the state directory on first start
// and reused afterwards, or a given root (RSA 2048–4096 / ECDSA P-256, P-384, optionally a chain
// file). It issues workload certificates shaped like istiod's (xds.md §7 CSR rules): a fresh
// ECDSA P-256 key, empty subject, one critical URI SAN, serverAuth+clientAuth. Leaves live only in
// memory; only the root is ever written to disk.
//
// Certificates are built with the small DER encoder in x509-builder.ts on top of node:crypto, so
// the daemon never loads an ASN.1 library (issue 7: idle RSS).
import { X509Certificate, createPrivateKey, createPublicKey, generateKeyPair, randomBytes, type KeyObject } from 'node:crypto';
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { ZtunnelError, asZtunnelError } from '../core/errors.js';
import { formatIdentity, parseIdentity, type Identity } from '../core/spiffe.js';
import type { WorkloadCertificate } from '../tls/certificate.js';
import type { Logger } from '../telemetry/logger.js';
import type { CaClient } from './ca-client.js';
import {
  KEY_USAGE, OID, authorityKeyIdExtension, basicConstraintsExtension, buildCertificate, encodeName, extKeyUsageExtension,
  isCa, keyIdentifier, keyUsageAllows, keyUsageExtension, parseCertificate, pemCertificates, sanUriExtension, signerFor,
  subjectKeyIdExtension, subjectKeyId, toPem, type ExtensionSpec, type ParsedCertificate, type Signer,
} from './x509-builder.js';

const generateKeyPairAsync = promisify(generateKeyPair);

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
const ROOT_NAME: ReadonlyArray<readonly [string, string]> = [[OID.commonName, 'ztunnel-ts local CA'], [OID.organizationName, 'ztunnel-ts']];

interface Issuer {
  /** The issuing certificate's subject Name DER, copied verbatim into leaves' issuer field. */
  readonly subjectDer: Buffer;
  readonly subject: string;
  readonly notAfter: Date;
  /** Certificates sent after the leaf: the file's certificates except the trusted root. */
  readonly intermediatesPem: readonly string[];
  readonly rootPem: string;
  readonly signer: Signer;
  readonly authorityKeyId?: Buffer;
}

/** A fresh ECDSA P-256 key pair (config.md §6, xds.md §7). */
async function newP256Key(): Promise<{ privateKey: KeyObject; spki: Buffer }> {
  const { privateKey, publicKey } = await generateKeyPairAsync('ec', { namedCurve: 'prime256v1' });
  return { privateKey, spki: publicKey.export({ type: 'spki', format: 'der' }) };
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
      opts.logger?.info({ certPath, subject: issuer.subject, notAfter: issuer.notAfter.toISOString() }, 'local CA: root loaded');
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
    const nowMs = (opts.now ?? this.#now()).getTime();
    const ttlMs = opts.ttlMs ?? this.#ttlMs;
    const key = await newP256Key();
    const issuer = this.#issuer;
    // Leaf shape (config.md §6, like istiod's): empty subject, so the URI SAN is critical
    // (RFC 5280 §4.2.1.6); TLS client+server usages; not a CA.
    const extensions: ExtensionSpec[] = [
      sanUriExtension(uri, true),
      keyUsageExtension([KEY_USAGE.digitalSignature, KEY_USAGE.keyEncipherment], true),
      extKeyUsageExtension([OID.serverAuth, OID.clientAuth], false),
      basicConstraintsExtension(false, true),
    ];
    if (issuer.authorityKeyId) extensions.push(authorityKeyIdExtension(issuer.authorityKeyId));
    const serial = randomSerial();
    const notBefore = new Date(nowMs - CLOCK_SKEW_MS);
    const notAfter = new Date(nowMs + ttlMs);
    const der = buildCertificate({
      serial,
      issuer: issuer.subjectDer,
      subject: encodeName([]),
      notBefore,
      notAfter,
      publicKey: key.spki,
      extensions,
      signer: issuer.signer,
    });
    return {
      identity: { trustDomain: id.trustDomain, namespace: id.namespace, serviceAccount: id.serviceAccount },
      chainPem: [toPem(der, 'CERTIFICATE'), ...issuer.intermediatesPem],
      keyPem: key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      rootsPem: [issuer.rootPem],
      // What the certificate holds: X.509 times have whole seconds.
      notBefore: new Date(Math.floor(notBefore.getTime() / 1000) * 1000),
      notAfter: new Date(Math.floor(notAfter.getTime() / 1000) * 1000),
      serialNumber: serial.toString('hex'),
    };
  }
}

/** 16 random bytes, top bit clear (a positive INTEGER) and second bit set (no leading zero byte). */
function randomSerial(): Buffer {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x40;
  return b;
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
  const key = await newP256Key();
  const name = encodeName(ROOT_NAME);
  // Root shape (config.md §6): CA:true and keyCertSign|cRLSign, both critical (RFC 5280 §4.2.1.9,
  // §4.2.1.3), and a subjectKeyIdentifier that leaves reference in their AKI (§4.2.1.2).
  const der = buildCertificate({
    serial: randomSerial(),
    issuer: name,
    subject: name,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(now.getTime() + ROOT_VALIDITY_MS),
    publicKey: key.spki,
    extensions: [
      basicConstraintsExtension(true, true),
      keyUsageExtension([KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign], true),
      subjectKeyIdExtension(keyIdentifier(key.spki)),
    ],
    signer: signerFor(key.privateKey),
  });
  const keyPem = key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  // Key first, cert last: a crash in between leaves a key without a cert, which open() reports
  // instead of silently generating a second root.
  await writeAtomically(keyPath, keyPem, 0o600);
  await writeAtomically(certPath, toPem(der, 'CERTIFICATE'), 0o644);
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

/** A CA certificate of the file: node's view (signatures, subject text) and our DER walk (extensions). */
interface LoadedCert {
  readonly x509: X509Certificate;
  readonly parsed: ParsedCertificate;
  readonly subject: string;
  readonly pem: string;
}

async function loadIssuer(certPath: string, keyPath: string, now: Date): Promise<Issuer> {
  const certText = await readText(certPath, 'CA certificate');
  const keyText = await readText(keyPath, 'CA key');

  const blocks = pemCertificates(certText);
  if (blocks.length === 0) throw invalid(`${certPath} holds no PEM CERTIFICATE block`);
  const certs = blocks.map((der, i): LoadedCert => {
    try {
      const x509 = new X509Certificate(der);
      return { x509, parsed: parseCertificate(der), subject: (x509.subject ?? '').replace(/\n/g, ', '), pem: toPem(der, 'CERTIFICATE') };
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
  const description = keyDescription(key, keyPath);

  const issuing = certs[0]!;
  const root = certs[certs.length - 1]!;
  const keySpki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  if (!keySpki.equals(issuing.parsed.publicKey)) {
    throw invalid(`${keyPath} (${description}) does not belong to the first certificate in ${certPath} (${issuing.subject})`);
  }
  for (let i = 0; i < certs.length; i++) {
    const c = certs[i]!;
    const notAfter = c.parsed.notAfter;
    if (notAfter.getTime() <= now.getTime()) throw invalid(`${certPath}: certificate #${i + 1} (${c.subject}) expired at ${notAfter.toISOString()}`);
    let ca: boolean;
    let certSign: boolean | undefined;
    try {
      ca = isCa(c.parsed);
      certSign = keyUsageAllows(c.parsed, KEY_USAGE.keyCertSign);
    } catch (e) {
      throw invalid(`${certPath}: certificate #${i + 1} is not valid X.509: ${(e as Error).message}`, e);
    }
    if (!ca) throw invalid(`${certPath}: certificate #${i + 1} (${c.subject}) is not a CA certificate (basicConstraints CA:true missing)`);
    if (certSign === false) throw invalid(`${certPath}: certificate #${i + 1} (${c.subject}) lacks keyUsage keyCertSign`);
    if (i + 1 < certs.length) {
      const parent = certs[i + 1]!;
      if (!verifies(c, parent)) throw invalid(`${certPath}: certificate #${i + 1} (${c.subject}) is not signed by certificate #${i + 2} (${parent.subject}); order must be issuing certificate first, root last`);
    }
  }
  // Self-signed: issuer Name equals subject Name and its own key verifies the signature.
  if (!root.parsed.issuer.equals(root.parsed.subject) || !verifies(root, root)) {
    throw invalid(`${certPath}: the last certificate (${root.subject}) must be the self-signed root`);
  }

  let signer: Signer;
  try {
    signer = signerFor(key);
  } catch (e) {
    throw invalid(`${keyPath}: cannot import ${description} key: ${(e as Error).message}`, e);
  }
  const ski = subjectKeyId(issuing.parsed);
  return {
    subjectDer: issuing.parsed.subject,
    subject: issuing.subject,
    notAfter: issuing.parsed.notAfter,
    intermediatesPem: certs.slice(0, -1).map((c) => c.pem),
    rootPem: root.pem,
    signer,
    ...(ski ? { authorityKeyId: ski } : {}),
  };
}

function verifies(child: LoadedCert, parent: LoadedCert): boolean {
  try {
    return child.x509.verify(parent.x509.publicKey);
  } catch {
    return false;
  }
}

/**
 * Supported root key types (config.md §6): RSA 2048–4096 signs sha256WithRSAEncryption, ECDSA
 * P-256 ecdsa-with-SHA256, P-384 ecdsa-with-SHA384 (see signerFor).
 */
function keyDescription(key: KeyObject, keyPath: string): string {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < 2048 || bits > 4096) throw invalid(`${keyPath}: RSA key of ${bits} bits; supported are 2048 to 4096`);
    return `RSA-${bits}`;
  }
  if (key.asymmetricKeyType === 'ec') {
    if (details.namedCurve === 'prime256v1') return 'ECDSA P-256';
    if (details.namedCurve === 'secp384r1') return 'ECDSA P-384';
    throw invalid(`${keyPath}: ECDSA curve ${details.namedCurve ?? 'unknown'} is not supported; use P-256 or P-384`);
  }
  throw invalid(`${keyPath}: ${key.asymmetricKeyType ?? 'unknown'} keys are not supported; use RSA (2048-4096) or ECDSA P-256/P-384`);
}
