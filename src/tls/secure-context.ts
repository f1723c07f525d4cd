// SecureContexts and socket options for HBONE mTLS (hbone.md §1). One SecureContext per
// (identity, certificate serial), reused by every connection and replaced on rotation: building
// a context per connection doubles client handshake CPU (perf-notes.md knob 4).
//
// The protocol settings (versions, suites, groups, tickets) live in the context, not in the
// socket options: Node ignores them when a `secureContext` is passed.
import { constants } from 'node:crypto';
import tls from 'node:tls';
import { ZtunnelError } from '../core/errors.js';
import { formatIdentity, type Identity } from '../core/spiffe.js';
import type { WorkloadCertificate } from './certificate.js';
import { verifyServerIdentity } from './verify.js';

export interface TlsTuning {
  /** TLS12_ENABLED: also allow TLS 1.2 with the four ECDHE AES-GCM suites. */
  tls12Enabled: boolean;
  /** COMPLIANCE_POLICY: undefined/'' (default) or 'pqc'. */
  compliancePolicy?: string;
}

/** TLS 1.3 suites in preference order, no ChaCha20 (hbone.md §1). */
export const TLS13_CIPHER_SUITES = 'TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256';
/** TLS 1.2 (only with TLS12_ENABLED): the ECDHE_ECDSA and ECDHE_RSA AES-GCM suites. */
export const TLS12_CIPHERS =
  'ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256';
/**
 * Default key-exchange groups: rustls' defaults without post-quantum (X25519 first, then P-256,
 * P-384). That covers every peer: Rust ztunnel with ring/aws-lc (X25519) and its OpenSSL build,
 * which pins P-256 and P-384 (hbone.md §1) — the latter costs one HelloRetryRequest when we are
 * the client. X448 and P-521 (OpenSSL's other defaults) are dropped: no peer offers them.
 */
export const DEFAULT_KEY_EXCHANGE_GROUPS = 'X25519:P-256:P-384';
/** COMPLIANCE_POLICY=pqc: only the hybrid post-quantum group (needs OpenSSL ≥ 3.5). */
export const PQC_KEY_EXCHANGE_GROUPS = 'X25519MLKEM768';
export const HBONE_ALPN: readonly string[] = ['h2'];

type ProtocolOptions = Pick<tls.SecureContextOptions, 'minVersion' | 'maxVersion' | 'ciphers' | 'ecdhCurve' | 'honorCipherOrder' | 'secureOptions'>;

const checked = new Map<string, ProtocolOptions | ZtunnelError>();

function tuningKey(t: TlsTuning): string {
  return `${t.tls12Enabled ? '12' : '13'}|${t.compliancePolicy ?? ''}`;
}

function compile(t: TlsTuning): ProtocolOptions | ZtunnelError {
  const policy = t.compliancePolicy ?? '';
  if (policy !== '' && policy !== 'pqc') {
    return new ZtunnelError('CONFIG_INVALID', `COMPLIANCE_POLICY=${policy} is not supported (supported: unset, pqc)`);
  }
  const ecdhCurve = policy === 'pqc' ? PQC_KEY_EXCHANGE_GROUPS : DEFAULT_KEY_EXCHANGE_GROUPS;
  const options: ProtocolOptions = {
    minVersion: t.tls12Enabled ? 'TLSv1.2' : 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    ciphers: t.tls12Enabled ? `${TLS13_CIPHER_SUITES}:${TLS12_CIPHERS}` : TLS13_CIPHER_SUITES,
    ecdhCurve,
    honorCipherOrder: true,
    // No session tickets from the server; the client never offers a session either (hbone.md §1).
    secureOptions: constants.SSL_OP_NO_TICKET,
  };
  try {
    tls.createSecureContext(options);
  } catch (e) {
    const why = policy === 'pqc'
      ? `COMPLIANCE_POLICY=pqc needs the ${PQC_KEY_EXCHANGE_GROUPS} key-exchange group, which this Node's OpenSSL ${process.versions.openssl} does not provide (OpenSSL 3.5 or newer does)`
      : `TLS settings rejected by OpenSSL ${process.versions.openssl}: ${(e as Error).message}`;
    return new ZtunnelError('CONFIG_INVALID', why, { cause: e });
  }
  return options;
}

function protocolOptions(t: TlsTuning): ProtocolOptions | ZtunnelError {
  const key = tuningKey(t);
  let r = checked.get(key);
  if (!r) checked.set(key, (r = compile(t)));
  return r;
}

/**
 * Startup check of TLS12_ENABLED / COMPLIANCE_POLICY against this Node's OpenSSL: returns a
 * CONFIG_INVALID error (e.g. pqc without X25519MLKEM768 support) instead of failing every
 * handshake later.
 */
export function checkTlsTuning(tuning: TlsTuning): ZtunnelError | undefined {
  const r = protocolOptions(tuning);
  return r instanceof ZtunnelError ? r : undefined;
}

function orThrow(t: TlsTuning): ProtocolOptions {
  const r = protocolOptions(t);
  if (r instanceof ZtunnelError) throw r;
  return r;
}

/**
 * Builds a context: chain = leaf + intermediates, key, CA = the certificate's roots (hbone.md §1:
 * peers are verified against the roots of our own workload certificate).
 * Throws ZtunnelError CONFIG_INVALID (tuning) or IDENTITY_UNAVAILABLE (unusable certificate).
 */
export function createWorkloadContext(cert: WorkloadCertificate, tuning: TlsTuning): tls.SecureContext {
  const proto = orThrow(tuning);
  try {
    return tls.createSecureContext({
      ...proto,
      cert: cert.chainPem.join('\n'),
      key: cert.keyPem,
      ca: [...cert.rootsPem],
    });
  } catch (e) {
    throw new ZtunnelError('IDENTITY_UNAVAILABLE',
      `certificate for ${formatIdentity(cert.identity)} (serial ${cert.serialNumber}) is unusable: ${(e as Error).message}`, { cause: e });
  }
}

interface CacheEntry {
  readonly serial: string;
  readonly tuningKey: string;
  readonly notAfterMs: number;
  readonly ctx: tls.SecureContext;
}

/** One SecureContext per identity: the newest certificate's. */
export class SecureContextCache {
  readonly #entries = new Map<string, CacheEntry>();

  /**
   * The context for this certificate, built once per (identity, serial). A newer certificate for
   * the identity replaces the cached context; a request for an older one (a connection that raced
   * a rotation) gets a context that is not kept. Throws like createWorkloadContext.
   */
  get(cert: WorkloadCertificate, tuning: TlsTuning): tls.SecureContext {
    const key = formatIdentity(cert.identity);
    const tk = tuningKey(tuning);
    const hit = this.#entries.get(key);
    if (hit && hit.serial === cert.serialNumber && hit.tuningKey === tk) return hit.ctx;
    const ctx = createWorkloadContext(cert, tuning);
    const notAfterMs = cert.notAfter.getTime();
    if (!hit || hit.tuningKey !== tk || notAfterMs >= hit.notAfterMs) {
      this.#entries.set(key, { serial: cert.serialNumber, tuningKey: tk, notAfterMs, ctx });
    }
    return ctx;
  }

  /** Drops the identity's context (its certificate was forgotten). */
  forget(id: Identity): void {
    this.#entries.delete(formatIdentity(id));
  }

  get size(): number {
    return this.#entries.size;
  }
}

function socketProtocolOptions(tuning: TlsTuning): ProtocolOptions {
  // Repeated on the socket options for readers and for `tls.createServer` misuse (see below);
  // the context already carries them.
  return orThrow(tuning);
}

/**
 * Options for a server-side `new tls.TLSSocket(rawSocket, serverTlsOptions(ctx, tuning))`.
 * A socket per connection (not `tls.createServer`) because the server picks the certificate per
 * connection (the destination workload's, hbone.md §1) and tls.Server ignores `secureContext`
 * (given to tls.createServer these options have no certificate, so every handshake fails: closed,
 * not open). Node does not enforce `rejectUnauthorized` on such a socket: after 'secure' the
 * caller must run verify.ts checkClientTrustDomain (chain + trust domain) and close on error
 * before reading any HTTP/2 frame.
 */
export function serverTlsOptions(ctx: tls.SecureContext, tuning: TlsTuning): tls.TlsOptions & tls.TLSSocketOptions & { isServer: true } {
  return {
    ...socketProtocolOptions(tuning),
    isServer: true,
    secureContext: ctx,
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: [...HBONE_ALPN],
  };
}

/**
 * Options for `tls.connect` (or an http2 `createConnection`): no `servername` (SNI is never sent,
 * hbone.md §1), no `session` (no resumption), chain verified against the context's roots, and the
 * server's URI SANs checked against `expected` (DNS SANs ignored).
 */
export function clientTlsOptions(ctx: tls.SecureContext, expected: readonly Identity[], tuning: TlsTuning): tls.ConnectionOptions {
  const want = [...expected];
  return {
    ...socketProtocolOptions(tuning),
    secureContext: ctx,
    ALPNProtocols: [...HBONE_ALPN],
    rejectUnauthorized: true,
    checkServerIdentity: (_host: string, cert: tls.PeerCertificate) => verifyServerIdentity(cert, want),
  };
}
