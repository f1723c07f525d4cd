// X.509 v3 certificates (RFC 5280) and PKCS#10 requests (RFC 2986) built and read with der.ts and
// node:crypto only: the shapes the local CA issues (config.md §6) and the Istio CA client asks
// for (xds.md §7). Signing is crypto.sign over the DER TBS; ECDSA signatures are DER-encoded
// Ecdsa-Sig-Value (RFC 5758 §3.2), RSA is PKCS#1 v1.5 (RFC 4055 §5).
import { createHash, createPublicKey, sign, type KeyObject } from 'node:crypto';
import {
  DerError, TAG, bitString, boolean, children, decode, explicit, expectTag, hasBit, ia5String, implicit,
  namedBits, nullValue, objectIdentifier, octetString, readBitString, readBoolean, readNode, readOid, readTime,
  sequence, setOf, smallInteger, time, unsignedInteger, utf8String, type DerNode,
} from './der.js';

export const OID = {
  commonName: '2.5.4.3',
  organizationName: '2.5.4.10',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  extensionRequest: '1.2.840.113549.1.9.14',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  sha256WithRsa: '1.2.840.113549.1.1.11',
} as const;

/** KeyUsage bit numbers (RFC 5280 §4.2.1.3). */
export const KEY_USAGE = {
  digitalSignature: 0,
  keyEncipherment: 2,
  keyCertSign: 5,
  cRLSign: 6,
} as const;

// ---------------------------------------------------------------------------------------------
// Extensions (RFC 5280 §4.1 Extension ::= SEQUENCE { extnID, critical DEFAULT FALSE, extnValue })

export interface ExtensionSpec {
  readonly oid: string;
  readonly critical: boolean;
  /** The DER of the extension's own value (wrapped in the OCTET STRING by the encoder). */
  readonly value: Buffer;
}

function encodeExtension(e: ExtensionSpec): Buffer {
  // DER omits a BOOLEAN equal to its DEFAULT (X.690 §11.5), so only critical=true is written.
  return sequence(objectIdentifier(e.oid), ...(e.critical ? [boolean(true)] : []), octetString(e.value));
}

/** subjectAltName with one uniformResourceIdentifier [6] IA5String (RFC 5280 §4.2.1.6). */
export function sanUriExtension(uri: string, critical: boolean): ExtensionSpec {
  const ia5 = ia5String(uri); // validates ASCII; [6] IMPLICIT keeps only its content
  return { oid: OID.subjectAltName, critical, value: sequence(implicit(6, readNode(ia5).content)) };
}

/** keyUsage as a minimal NamedBitList (RFC 5280 §4.2.1.3). */
export function keyUsageExtension(bits: readonly number[], critical: boolean): ExtensionSpec {
  return { oid: OID.keyUsage, critical, value: namedBits(bits) };
}

/** extKeyUsage: SEQUENCE OF KeyPurposeId (RFC 5280 §4.2.1.12). */
export function extKeyUsageExtension(oids: readonly string[], critical: boolean): ExtensionSpec {
  return { oid: OID.extKeyUsage, critical, value: sequence(...oids.map(objectIdentifier)) };
}

/** basicConstraints (RFC 5280 §4.2.1.9); cA FALSE is the DEFAULT and so encodes as an empty SEQUENCE. */
export function basicConstraintsExtension(ca: boolean, critical: boolean): ExtensionSpec {
  return { oid: OID.basicConstraints, critical, value: ca ? sequence(boolean(true)) : sequence() };
}

/** subjectKeyIdentifier: an OCTET STRING (RFC 5280 §4.2.1.2). */
export function subjectKeyIdExtension(keyId: Buffer): ExtensionSpec {
  return { oid: OID.subjectKeyIdentifier, critical: false, value: octetString(keyId) };
}

/** authorityKeyIdentifier with only keyIdentifier [0] (RFC 5280 §4.2.1.1). */
export function authorityKeyIdExtension(keyId: Buffer): ExtensionSpec {
  return { oid: OID.authorityKeyIdentifier, critical: false, value: sequence(implicit(0, keyId)) };
}

/** RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING's bits. */
export function keyIdentifier(spkiDer: Buffer): Buffer {
  const [, key] = children(expectTag(decode(spkiDer), TAG.SEQUENCE, 'SubjectPublicKeyInfo'));
  return createHash('sha1').update(readBitString(expectTag(key, TAG.BIT_STRING, 'subjectPublicKey')).bytes).digest();
}

// ---------------------------------------------------------------------------------------------
// Names and signatures

/** A Name with one attribute per RDN, UTF8String values (RFC 5280 §4.1.2.4). Empty list → empty Name. */
export function encodeName(attrs: ReadonlyArray<readonly [oid: string, value: string]>): Buffer {
  return sequence(...attrs.map(([oid, value]) => setOf(sequence(objectIdentifier(oid), utf8String(value)))));
}

export interface Signer {
  readonly key: KeyObject;
  /** AlgorithmIdentifier DER. */
  readonly algorithm: Buffer;
  readonly hash: 'sha256' | 'sha384';
}

/**
 * The signature a private key makes: ECDSA P-256 → ecdsa-with-SHA256, P-384 → ecdsa-with-SHA384
 * (parameters absent, RFC 5758 §3.2); RSA → sha256WithRSAEncryption (NULL parameters, RFC 4055 §5).
 */
export function signerFor(key: KeyObject): Signer {
  if (key.asymmetricKeyType === 'rsa') return { key, algorithm: sequence(objectIdentifier(OID.sha256WithRsa), nullValue()), hash: 'sha256' };
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return { key, algorithm: sequence(objectIdentifier(OID.ecdsaWithSha256)), hash: 'sha256' };
    if (curve === 'secp384r1') return { key, algorithm: sequence(objectIdentifier(OID.ecdsaWithSha384)), hash: 'sha384' };
  }
  throw new Error(`no signature algorithm for ${key.asymmetricKeyType ?? 'unknown'} key ${key.asymmetricKeyDetails?.namedCurve ?? ''}`.trim());
}

/** SEQUENCE { toBeSigned, signatureAlgorithm, BIT STRING signature } (certificate and CSR alike). */
function signed(tbs: Buffer, signer: Signer): Buffer {
  const sig = sign(signer.hash, tbs, { key: signer.key, dsaEncoding: 'der' });
  return sequence(tbs, signer.algorithm, bitString(sig));
}

// ---------------------------------------------------------------------------------------------
// Certificates and requests

export interface CertificateSpec {
  /** Serial magnitude (big-endian, positive; a leading 0x00 is added when needed). */
  readonly serial: Buffer;
  /** Issuer Name DER, copied verbatim from the issuer's subject (RFC 5280 §4.1.2.4). */
  readonly issuer: Buffer;
  readonly subject: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** SubjectPublicKeyInfo DER of the certified key. */
  readonly publicKey: Buffer;
  readonly extensions: readonly ExtensionSpec[];
  readonly signer: Signer;
}

/** A signed v3 Certificate (RFC 5280 §4.1), DER. */
export function buildCertificate(spec: CertificateSpec): Buffer {
  const tbs = sequence(
    explicit(0, smallInteger(2)), // version v3
    unsignedInteger(spec.serial),
    spec.signer.algorithm,
    spec.issuer,
    sequence(time(spec.notBefore), time(spec.notAfter)),
    spec.subject,
    spec.publicKey,
    ...(spec.extensions.length > 0 ? [explicit(3, sequence(...spec.extensions.map(encodeExtension)))] : []),
  );
  return signed(tbs, spec.signer);
}

/**
 * A PKCS#10 CertificationRequest (RFC 2986 §4) with an extensionRequest attribute (RFC 2985
 * §5.4.2) carrying `extensions`, signed by `signer` (whose public key it certifies).
 */
export function buildCsr(subject: Buffer, signer: Signer, extensions: readonly ExtensionSpec[]): Buffer {
  const spki = createPublicKey(signer.key).export({ type: 'spki', format: 'der' });
  const attributes = extensions.length > 0
    ? [sequence(objectIdentifier(OID.extensionRequest), setOf(sequence(...extensions.map(encodeExtension))))]
    : [];
  const info = sequence(smallInteger(0), subject, spki, implicit(0, Buffer.concat(attributes), true));
  return signed(info, signer);
}

/** RFC 7468 PEM, 64-column base64, no trailing newline (the form the project has always produced). */
export function toPem(der: Buffer, label: 'CERTIFICATE' | 'CERTIFICATE REQUEST'): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----`;
}

/** The DER of every `-----BEGIN CERTIFICATE-----` block in `text`, in order. */
export function pemCertificates(text: string): Buffer[] {
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)]
    .map((m) => Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
}

// ---------------------------------------------------------------------------------------------
// Reading certificates

export interface ParsedExtension {
  readonly critical: boolean;
  /** The extnValue OCTET STRING's content (the extension's own DER). */
  readonly value: Buffer;
}

export interface ParsedCertificate {
  /** INTEGER content bytes as lowercase hex (as @peculiar/x509 reported serials). */
  readonly serialHex: string;
  readonly issuer: Buffer;
  readonly subject: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly publicKey: Buffer;
  readonly extensions: ReadonlyMap<string, ParsedExtension>;
}

/** Walks Certificate → TBSCertificate (RFC 5280 §4.1); throws DerError on anything malformed. */
export function parseCertificate(der: Buffer): ParsedCertificate {
  const [tbsNode] = children(expectTag(decode(der), TAG.SEQUENCE, 'Certificate'));
  const fields = children(expectTag(tbsNode, TAG.SEQUENCE, 'TBSCertificate'));
  let i = fields[0]?.tag === 0xa0 ? 1 : 0; // version is optional (v1)
  const serial = expectTag(fields[i++], TAG.INTEGER, 'serialNumber');
  expectTag(fields[i++], TAG.SEQUENCE, 'signature');
  const issuer = expectTag(fields[i++], TAG.SEQUENCE, 'issuer');
  const validity = children(expectTag(fields[i++], TAG.SEQUENCE, 'validity'));
  const subject = expectTag(fields[i++], TAG.SEQUENCE, 'subject');
  const spki = expectTag(fields[i++], TAG.SEQUENCE, 'subjectPublicKeyInfo');
  if (validity.length !== 2) throw new DerError('validity must hold notBefore and notAfter');
  const extensions = new Map<string, ParsedExtension>();
  for (const f of fields.slice(i)) {
    if (f.tag !== 0xa3) continue; // issuerUniqueID [1] / subjectUniqueID [2]
    const [list] = children(f);
    for (const ext of children(expectTag(list, TAG.SEQUENCE, 'extensions'))) {
      const parts = children(expectTag(ext, TAG.SEQUENCE, 'Extension'));
      const oid = readOid(expectTag(parts[0], TAG.OID, 'extnID'));
      const critical = parts.length === 3 ? readBoolean(parts[1]!) : false;
      const value = expectTag(parts[parts.length - 1], TAG.OCTET_STRING, 'extnValue').content;
      if (extensions.has(oid)) throw new DerError(`extension ${oid} appears twice`); // RFC 5280 §4.2
      extensions.set(oid, { critical, value });
    }
  }
  return {
    serialHex: serial.content.toString('hex'),
    issuer: issuer.raw,
    subject: subject.raw,
    notBefore: readTime(validity[0]!),
    notAfter: readTime(validity[1]!),
    publicKey: spki.raw,
    extensions,
  };
}

/** basicConstraints cA (false when the extension is absent). */
export function isCa(cert: ParsedCertificate): boolean {
  const ext = cert.extensions.get(OID.basicConstraints);
  if (!ext) return false;
  const [first] = children(expectTag(decode(ext.value), TAG.SEQUENCE, 'BasicConstraints'));
  return first?.tag === TAG.BOOLEAN ? readBoolean(first) : false;
}

/** Whether keyUsage allows `bit`; undefined when the certificate has no keyUsage extension. */
export function keyUsageAllows(cert: ParsedCertificate, bit: number): boolean | undefined {
  const ext = cert.extensions.get(OID.keyUsage);
  return ext ? hasBit(readBitString(decode(ext.value)), bit) : undefined;
}

export function subjectKeyId(cert: ParsedCertificate): Buffer | undefined {
  const ext = cert.extensions.get(OID.subjectKeyIdentifier);
  return ext ? expectTag(decode(ext.value), TAG.OCTET_STRING, 'SubjectKeyIdentifier').content : undefined;
}

/** The uniformResourceIdentifier entries of subjectAltName (RFC 5280 §4.2.1.6). */
export function sanUris(cert: ParsedCertificate): string[] {
  const ext = cert.extensions.get(OID.subjectAltName);
  if (!ext) return [];
  return children(expectTag(decode(ext.value), TAG.SEQUENCE, 'GeneralNames'))
    .filter((n: DerNode) => n.tag === 0x86)
    .map((n) => n.content.toString('ascii'));
}
