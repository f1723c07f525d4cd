// Scenario 2's proxies: a plain Node TLS two-hop pipe, the floor for any Node TLS proxy.
//
//   client ──TCP──▶ [A: TCP in, mTLS 1.3 out] ══TLS══▶ [B: mTLS 1.3 in, TCP out] ──TCP──▶ server
//
// One TLS connection per app connection (no pooling, no HTTP/2), TLS 1.3 with the AES-GCM suites
// and ECDSA P-256 certificates from the orchestrator's throwaway CA, mutual authentication with a
// URI SAN check. Tuned as fairly as we know (perf-notes.md "Knobs that mattered" 2 and 4): one
// SecureContext reused for every connection, setNoDelay, 256 KiB highWaterMarks, and a copy loop
// that writes the first chunk of a burst at once, then corks and uncorks in setImmediate.
//
// Usage (forked by lib/tls-pipe-pair.ts): node tls-pipe.js <a|b> <listenHost> <upstreamHost:port>
// Env: BENCH_TLS_CERT, BENCH_TLS_KEY, BENCH_TLS_CA (PEM paths), BENCH_TLS_PEER_URI (expected peer
// SAN). Reports { type: 'listening', port } over IPC.
import { connect, createServer, type Server, type Socket } from 'node:net';
import tls from 'node:tls';
import { HIGH_WATER_MARK, hasPeerUri, pipeTlsMaterial, raiseHighWaterMarks, relay, servePipe, splitHostPort } from './lib/pipe-common.js';

const [role, listenHost, upstream] = process.argv.slice(2);
if ((role !== 'a' && role !== 'b') || !listenHost || !upstream) {
  console.error('usage: tls-pipe.js <a|b> <listenHost> <upstreamHost:port>');
  process.exit(2);
}
const { host: upstreamHost, port: upstreamPort } = splitHostPort(upstream);
const { contextOptions, peerUri } = pipeTlsMaterial();

function peerHasUri(s: tls.TLSSocket): boolean {
  return hasPeerUri(s.getPeerCertificate(), peerUri);
}

/** Client side: one context for every connection (passing PEMs per connect doubles handshake CPU). */
const secureContext = tls.createSecureContext(contextOptions);

let server: Server;
if (role === 'a') {
  // A: TCP in, TLS client out.
  server = createServer({ allowHalfOpen: true, noDelay: true, highWaterMark: HIGH_WATER_MARK }, (inbound: Socket) => {
    inbound.pause();
    raiseHighWaterMarks(inbound);
    const tcp = connect({ host: upstreamHost, port: upstreamPort, allowHalfOpen: true, noDelay: true });
    raiseHighWaterMarks(tcp);
    const out = tls.connect({
      socket: tcp,
      secureContext,
      allowHalfOpen: true,
      rejectUnauthorized: true,
      // The peer is named by its SPIFFE URI SAN, not a DNS name: check that instead.
      checkServerIdentity: (_host: string, c: tls.PeerCertificate) => (hasPeerUri(c, peerUri) ? undefined : new Error('unexpected peer identity')),
    } as tls.ConnectionOptions); // allowHalfOpen is honoured by tls.connect but missing from its type
    raiseHighWaterMarks(out);
    out.on('error', () => inbound.destroy());
    inbound.on('error', () => out.destroy());
    out.once('secureConnect', () => {
      relay(inbound, out);
      inbound.resume();
    });
  });
} else {
  // B: TLS server in (client certificate required), TCP out.
  // The server builds its one shared context from these options.
  server = tls.createServer({ ...contextOptions, requestCert: true, rejectUnauthorized: true, allowHalfOpen: true });
  server.on('connection', (s: Socket) => {
    s.setNoDelay(true);
    raiseHighWaterMarks(s);
  });
  server.on('tlsClientError', () => {});
  server.on('secureConnection', (inbound: tls.TLSSocket) => {
    if (!peerHasUri(inbound)) return inbound.destroy();
    inbound.pause();
    raiseHighWaterMarks(inbound);
    const out = connect({ host: upstreamHost, port: upstreamPort, allowHalfOpen: true, noDelay: true });
    raiseHighWaterMarks(out);
    out.on('error', () => inbound.destroy());
    inbound.on('error', () => out.destroy());
    out.once('connect', () => {
      relay(inbound, out);
      inbound.resume();
    });
  });
}
servePipe(server, `tls-pipe ${role}`, listenHost);
