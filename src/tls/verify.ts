// Peer identity checks on an mTLS connection (hbone.md §1). Node exposes SANs only as text, so
// everything goes through core/spiffe's parser; DNS SANs never count.
import type tls from 'node:tls';
import { ZtunnelError } from '../core/errors.js';
import { tlsVerifyError } from '../core/node-internals.js';
import { formatIdentity, identityEquals, parseIdentity, peerIdentityFromSanText, uriSansFromNodeText, type Identity } from '../core/spiffe.js';
import { loadX509, loadedX509 } from '../core/x509.js';
import { checkRevocation } from './crl.js';

/** The peer's identity: its first URI SAN in SPIFFE form, or null (no certificate / no such SAN). */
export function peerIdentity(socket: tls.TLSSocket): Identity | null {
  const cert = socket.getPeerCertificate();
  return peerIdentityFromSanText(cert?.subjectaltname);
}

function describeSans(text: string | undefined): string {
  const uris = uriSansFromNodeText(text);
  return uris.length === 0 ? 'no URI SAN' : uris.join(', ');
}

/**
 * Client side, hbone.md §1 step 2: at least one URI SAN, parsed as SPIFFE, equals one of the
 * expected identities. Shaped for `checkServerIdentity` (Node only calls it after the chain
 * validated). An empty `expected` list matches nothing.
 */
export function verifyServerIdentity(peerCert: tls.PeerCertificate, expected: readonly Identity[]): Error | undefined {
  const leaf = leafError(peerCert, 'server');
  if (leaf) return leaf;
  const text = peerCert?.subjectaltname;
  for (const uri of uriSansFromNodeText(text)) {
    const id = parseIdentity(uri);
    // CRL_PATH: a revoked server certificate fails the handshake (Node passes the detailed chain).
    if (id && expected.some((e) => identityEquals(e, id))) return checkRevocation(peerCert, 'source');
  }
  const want = expected.length === 0 ? '(none)' : expected.map(formatIdentity).join(', ');
  return new ZtunnelError('PEER_IDENTITY', `peer identity mismatch: expected one of [${want}], got [${describeSans(text)}]`);
}

/**
 * A CA certificate (BasicConstraints CA:TRUE) is never a valid end entity: webpki (rustls, Istio's
 * ztunnel) refuses it on both sides, OpenSSL's purpose check does not. Key usage and extended key
 * usage (serverAuth / clientAuth) are checked by OpenSSL's chain verification already.
 */
function leafError(cert: tls.PeerCertificate | undefined, side: 'client' | 'server'): ZtunnelError | undefined {
  if (!cert || Object.keys(cert).length === 0) return undefined;
  const ca = isCaCertificate(cert);
  if (ca === false) return undefined;
  return new ZtunnelError('TLS_HANDSHAKE', ca === true
    ? `${side} certificate is a CA certificate (CA:TRUE), not an end entity`
    : `${side} certificate could not be read: ${ca.message}`);
}

/** Reads a DER certificate's BasicConstraints cA: true / false, or an Error when it cannot be read. */
export type BasicConstraintsReader = (der: Buffer) => boolean | Error;

let basicConstraints: BasicConstraintsReader | undefined;

/**
 * Has this thread's peer checks read BasicConstraints with `reader` (the native addon's OpenSSL
 * reading, platform/native-addon.ts) instead of @peculiar/x509, which this thread then does not
 * load for them (docs/memory.md: a data-plane worker saves ~2.5 MB of heap). Set by the thread's
 * composition root before it serves.
 */
export function readBasicConstraintsWith(reader: BasicConstraintsReader): void {
  basicConstraints = reader;
}

/**
 * Whether the certificate's BasicConstraints say cA TRUE (webpki looks at that extension alone;
 * Node's `ca` field is OpenSSL's X509_check_ca, which is false for CA:TRUE without keyCertSign
 * usage). Read with the reader set by readBasicConstraintsWith, else with @peculiar/x509. Both
 * read the extension itself; they can differ only on a certificate @peculiar/x509 cannot parse
 * but OpenSSL can (OpenSSL had parsed and verified the chain before this runs). An unreadable
 * certificate is an Error (refused). The library is loaded before any handshake of this thread
 * (`prepareLeafChecks`); should neither be there, Node's own reading is used, which still
 * refuses every CA that may sign.
 */
export function isCaCertificate(cert: Pick<tls.PeerCertificate, 'raw' | 'ca'>): boolean | Error {
  if (cert.raw && basicConstraints) return basicConstraints(cert.raw);
  const tk = loadedX509();
  if (!tk || !cert.raw) return cert.ca === true;
  try {
    const ext = new tk.x509.X509Certificate(cert.raw).getExtension(tk.x509.BasicConstraintsExtension);
    return ext?.ca === true;
  } catch (e) {
    return e instanceof Error ? e : new Error(String(e));
  }
}

/** Loads what the peer checks read certificates with; awaited before this thread's first handshake. */
export async function prepareLeafChecks(): Promise<void> {
  if (basicConstraints) return;
  await loadX509();
}

/**
 * The result of Node's chain verification of the peer certificate (against the roots in the
 * socket's SecureContext, hbone.md §1 server step 1). Node's OpenSSL verify callback accepts
 * everything and leaves the decision to JS: `tls.Server` and `tls.connect` apply it, but a
 * server-side `new tls.TLSSocket(raw, { isServer: true })` — the only way to pick a SecureContext
 * per connection, since tls.Server ignores `secureContext` — does not, so it is read here from
 * the handle (the same call Node's own tls.Server makes). Fails closed when unknown.
 */
export function verifyPeerChain(socket: tls.TLSSocket): ZtunnelError | undefined {
  if (socket.authorized) return undefined;
  const error = tlsVerifyError(socket);
  if (error === undefined) {
    return new ZtunnelError('TLS_HANDSHAKE', 'peer certificate could not be verified (connection already closed)');
  }
  if (!error) return undefined;
  const code = (error as NodeJS.ErrnoException).code;
  return new ZtunnelError('TLS_HANDSHAKE', `peer certificate rejected: ${code ?? error.message}`, { cause: error });
}

/**
 * Server side, hbone.md §1: the client certificate chains to our roots (step 1, see
 * verifyPeerChain), no certificate of its chain is revoked (CRL_PATH, tls/crl.ts), and at least
 * one of its SPIFFE URI SANs has the trust domain of our own identity (step 2). Returns the peer identity (the first SPIFFE URI SAN, as the spec defines it)
 * or the error; on error the caller closes the socket before reading any HTTP/2 frame.
 */
export function checkClientTrustDomain(socket: tls.TLSSocket, local: Identity): Identity | ZtunnelError {
  const chainError = verifyPeerChain(socket);
  if (chainError) return chainError;
  const cert = socket.getPeerCertificate(true);
  if (!cert || Object.keys(cert).length === 0) return new ZtunnelError('TLS_HANDSHAKE', 'client presented no certificate');
  const leaf = leafError(cert, 'client');
  if (leaf) return leaf;
  const revoked = checkRevocation(cert, 'destination');
  if (revoked) return revoked;
  const text = cert.subjectaltname;
  const ids = uriSansFromNodeText(text).map(parseIdentity).filter((id): id is Identity => id !== null);
  if (ids.length === 0) return new ZtunnelError('PEER_IDENTITY', `client certificate has no SPIFFE URI SAN (got [${describeSans(text)}])`);
  if (!ids.some((id) => id.trustDomain === local.trustDomain)) {
    return new ZtunnelError('PEER_IDENTITY',
      `client trust domain mismatch: expected ${local.trustDomain}, got [${ids.map(formatIdentity).join(', ')}]`);
  }
  return ids[0]!;
}
