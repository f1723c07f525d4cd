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
import { readFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';

const HIGH_WATER_MARK = 256 * 1024;
const CIPHERS = 'TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256';

const [role, listenHost, upstream] = process.argv.slice(2);
if ((role !== 'a' && role !== 'b') || !listenHost || !upstream) {
  console.error('usage: tls-pipe.js <a|b> <listenHost> <upstreamHost:port>');
  process.exit(2);
}
const sep = upstream.lastIndexOf(':');
const upstreamHost = upstream.slice(0, sep);
const upstreamPort = Number(upstream.slice(sep + 1));
const env = (k: string) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const cert = readFileSync(env('BENCH_TLS_CERT'));
const key = readFileSync(env('BENCH_TLS_KEY'));
const ca = readFileSync(env('BENCH_TLS_CA'));
const peerUri = env('BENCH_TLS_PEER_URI');

/** Node only raises these at creation for some socket kinds; the fields are read on every push/write. */
function raiseHighWaterMarks(d: Duplex): void {
  const r = (d as unknown as { _readableState?: { highWaterMark: number } })._readableState;
  const w = (d as unknown as { _writableState?: { highWaterMark: number } })._writableState;
  if (r && r.highWaterMark < HIGH_WATER_MARK) r.highWaterMark = HIGH_WATER_MARK;
  if (w && w.highWaterMark < HIGH_WATER_MARK) w.highWaterMark = HIGH_WATER_MARK;
}

function peerHasUri(s: tls.TLSSocket): boolean {
  const san = s.getPeerCertificate()?.subjectaltname ?? '';
  return san.split(', ').includes(`URI:${peerUri}`);
}

/** One direction: adaptive batching (first chunk at once, the rest of the burst corked). */
function copy(src: Duplex, dst: Duplex): void {
  let corked = false;
  let waiting = false;
  const uncork = () => {
    corked = false;
    dst.uncork();
  };
  const resume = () => {
    waiting = false;
    src.resume();
  };
  src.on('data', (chunk: Buffer) => {
    let ok: boolean;
    if (!corked) {
      ok = dst.write(chunk);
      dst.cork();
      corked = true;
      setImmediate(uncork);
    } else {
      ok = dst.write(chunk);
    }
    if (!ok && !waiting) {
      waiting = true;
      src.pause();
      dst.once('drain', resume);
    }
  });
  src.on('end', () => dst.end()); // FIN → FIN (end() also flushes a cork)
}

/** Joins two ends: data both ways, FIN carried over, an error or abrupt close destroys both. */
function relay(a: Duplex, b: Duplex): void {
  copy(a, b);
  copy(b, a);
  const kill = () => {
    a.destroy();
    b.destroy();
  };
  a.on('error', kill);
  b.on('error', kill);
  a.on('close', () => (b.writableEnded ? undefined : b.destroy()));
  b.on('close', () => (a.writableEnded ? undefined : a.destroy()));
}

const contextOptions: tls.SecureContextOptions = { cert, key, ca, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ciphers: CIPHERS };
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
      checkServerIdentity: (_host: string, c: tls.PeerCertificate) => (c.subjectaltname?.split(', ').includes(`URI:${peerUri}`) ? undefined : new Error('unexpected peer identity')),
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
server.maxConnections = 19_000;
server.on('error', (e) => {
  console.error(`tls-pipe ${role}: ${e.message}`);
  process.exit(1);
});
server.listen(0, listenHost, () => {
  process.send?.({ type: 'listening', port: (server.address() as AddressInfo).port });
});
// Exit through process.exit so --cpu-prof (run.ts --profile-dir) writes its profile.
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
