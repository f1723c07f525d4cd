// Peer identity checks on an mTLS connection (hbone.md §1). Node exposes SANs only as text, so
// everything goes through core/spiffe's parser; DNS SANs never count.
import type tls from 'node:tls';
import { ZtunnelError } from '../core/errors.js';
import { tlsVerifyError } from '../core/node-internals.js';
import { formatIdentity, identityEquals, parseIdentity, peerIdentityFromSanText, uriSansFromNodeText, type Identity } from '../core/spiffe.js';
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
  // Node's `ca` field is OpenSSL's X509_check_ca, false for CA:TRUE without keyCertSign usage;
  // webpki looks at BasicConstraints alone, so the extension is read from the DER.
  if (cert && ((cert as { ca?: boolean }).ca === true || (cert.raw && hasCaTrueBasicConstraints(cert.raw)))) {
    return new ZtunnelError('TLS_HANDSHAKE', `${side} certificate is a CA certificate (CA:TRUE), not an end entity`);
  }
  return undefined;
}

/** DER of the BasicConstraints extension id (2.5.29.19). */
const BASIC_CONSTRAINTS_OID = Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x13]);

/**
 * Whether a certificate's DER has a BasicConstraints extension with cA TRUE: OID, optional
 * `critical` BOOLEAN, OCTET STRING { SEQUENCE { BOOLEAN TRUE, ... } }. Every occurrence of the OID
 * is looked at, so text that imitates an extension (inside a SAN) cannot hide the real one.
 */
export function hasCaTrueBasicConstraints(der: Buffer): boolean {
  let i = der.indexOf(BASIC_CONSTRAINTS_OID);
  while (i >= 0) {
    let j = i + BASIC_CONSTRAINTS_OID.length;
    if (der[j] === 0x01 && der[j + 1] === 0x01) j += 3; // critical
    // OCTET STRING (short length) holding SEQUENCE (short length) whose first element is BOOLEAN
    if (der[j] === 0x04 && der[j + 2] === 0x30 && der[j + 4] === 0x01 && der[j + 5] === 0x01 && der[j + 6] !== 0x00 && der[j + 3]! > 0) return true;
    i = der.indexOf(BASIC_CONSTRAINTS_OID, i + 1);
  }
  return false;
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
