// Scenario s2h's proxies: a bare Node HTTP/2 CONNECT two-hop pipe, the floor for any Node HTTP/2
// tunnel (HBONE without ztunnel-ts: no policy, no telemetry, no workload routing, no logging).
//
//   client ──TCP──▶ [A: TCP in, CONNECT out] ══mTLS 1.3 + HTTP/2══▶ [B: CONNECT in, TCP out] ──TCP──▶ server
//
// A carries every accepted connection as one CONNECT stream (`:authority` = B's target) on a
// shared HTTP/2 session to B, dialled lazily over a TCP socket A makes itself (setNoDelay) and
// wraps in TLS (perf-notes.md knob 5); a session that dies is replaced on the next connection.
// B answers `:status 200` once its TCP connection to the target is up (502 when it fails).
// TLS as hbone.md §1: TLS 1.3 only, the two AES-GCM suites in preference order, ALPN h2, client
// certificate required, peer checked by its SPIFFE URI SAN. Tuned as perf-notes.md "Knobs that
// mattered": 4 MiB stream and 16 MiB connection windows on both peers, one SecureContext, 256 KiB
// highWaterMarks, the copy loop of tls-pipe.ts (first chunk at once, then cork until setImmediate).
// B advertises 200 concurrent streams (hbone.md §2), so A opens a further session only when every
// live one is full (only the idle-connection measurement holds that many).
//
// Not copied from src/hbone/read-watchdog.ts: Node's Http2Session stops reading its socket while
// one of its own writes is in flight, so with windows this large two peers that both send heavily
// can deadlock. The benchmark's bulk flows one way only, so this floor does without the watchdog.
//
// Usage (forked by lib/scenarios.ts):
//   node h2-pipe.js a <listenHost> <B host:port> <target host:port>   (the CONNECT :authority)
//   node h2-pipe.js b <listenHost> <target host:port>                 (the one target B dials)
// Env: BENCH_TLS_CERT, BENCH_TLS_KEY, BENCH_TLS_CA (PEM paths), BENCH_TLS_PEER_URI (expected peer
// SAN). Reports { type: 'listening', port } over IPC.
import http2 from 'node:http2';
import { connect, createServer, type Server, type Socket } from 'node:net';
import tls from 'node:tls';
import { HIGH_WATER_MARK, hasPeerUri as peerHasUri, pipeTlsMaterial, raiseHighWaterMarks, relay, servePipe, splitHostPort } from './lib/pipe-common.js';

const STREAM_WINDOW_BYTES = 4 * 1024 * 1024;
const CONNECTION_WINDOW_BYTES = 16 * 1024 * 1024;
const MAX_CONCURRENT_STREAMS = 200;

const [role, listenHost, upstream, authority] = process.argv.slice(2);
if (!listenHost || !upstream || !(role === 'b' || (role === 'a' && authority))) {
  console.error('usage: h2-pipe.js a <listenHost> <B host:port> <target host:port> | b <listenHost> <target host:port>');
  process.exit(2);
}
const { host: upstreamHost, port: upstreamPort } = splitHostPort(upstream);
const { contextOptions, peerUri } = pipeTlsMaterial();
const hasPeerUri = (c: tls.PeerCertificate | undefined) => peerHasUri(c, peerUri);
const h2Settings: http2.Settings = { initialWindowSize: STREAM_WINDOW_BYTES, enablePush: false };

/** Connection window (perf-notes.md knob 1); the session has no native handle before 'connect'. */
function widenConnectionWindow(session: http2.Http2Session): void {
  const widen = () => {
    if (!session.destroyed) session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
  };
  if (session.connecting) session.once('connect', widen);
  else widen();
}

let server: Server;
if (role === 'a') {
  // A: TCP in, CONNECT streams out on shared sessions.
  const secureContext = tls.createSecureContext(contextOptions);
  interface Pooled {
    session: http2.ClientHttp2Session;
    streams: number;
  }
  const sessions: Pooled[] = [];

  const dial = (): Pooled => {
    const tcp = connect({ host: upstreamHost, port: upstreamPort, noDelay: true });
    raiseHighWaterMarks(tcp);
    tcp.on('error', () => {}); // surfaced through the session
    const sock = tls.connect({
      socket: tcp,
      secureContext,
      ALPNProtocols: ['h2'],
      rejectUnauthorized: true,
      // The peer is named by its SPIFFE URI SAN, not a DNS name: check that instead.
      checkServerIdentity: (_host: string, c: tls.PeerCertificate) => (hasPeerUri(c) ? undefined : new Error('unexpected peer identity')),
    });
    sock.once('secureConnect', () => {
      if (sock.alpnProtocol !== 'h2') sock.destroy(new Error('peer did not negotiate h2'));
    });
    const session = http2.connect(`https://${upstream}`, { createConnection: () => sock, settings: h2Settings });
    const p: Pooled = { session, streams: 0 };
    session.on('error', () => {}); // its streams fail with it; the next connection dials anew
    const drop = () => {
      const i = sessions.indexOf(p);
      if (i >= 0) sessions.splice(i, 1);
    };
    session.once('close', drop);
    session.once('goaway', drop);
    widenConnectionWindow(session);
    sessions.push(p);
    return p;
  };

  /** The first live session with a free stream slot (Node reads the peer's limit as 100 until its SETTINGS arrive). */
  const sessionWithRoom = (): Pooled => {
    for (const p of sessions) {
      const limit = p.session.remoteSettings?.maxConcurrentStreams ?? 100;
      if (!p.session.closed && !p.session.destroyed && p.streams < limit) return p;
    }
    return dial();
  };

  server = createServer({ allowHalfOpen: true, noDelay: true, highWaterMark: HIGH_WATER_MARK }, (inbound: Socket) => {
    inbound.pause();
    raiseHighWaterMarks(inbound);
    const p = sessionWithRoom();
    let stream: http2.ClientHttp2Stream;
    try {
      stream = p.session.request({ ':method': 'CONNECT', ':authority': authority! }, { endStream: false });
    } catch {
      inbound.destroy();
      return;
    }
    p.streams++;
    stream.once('close', () => p.streams--);
    raiseHighWaterMarks(stream);
    const early = () => inbound.destroy(); // refused, reset, or the session died before the answer
    stream.once('close', early);
    stream.on('error', () => inbound.destroy());
    inbound.on('error', () => stream.destroy());
    stream.once('response', (headers) => {
      if (headers[':status'] !== 200) {
        stream.destroy();
        inbound.destroy();
        return;
      }
      stream.removeListener('close', early);
      relay(inbound, stream);
      inbound.resume();
    });
  });
} else {
  // B: CONNECT in (client certificate required; createSecureServer builds its one SecureContext), TCP out.
  const h2 = http2.createSecureServer({
    ...contextOptions,
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: ['h2'],
    settings: { ...h2Settings, maxConcurrentStreams: MAX_CONCURRENT_STREAMS },
  });
  h2.on('connection', (s: Socket) => {
    s.setNoDelay(true);
    raiseHighWaterMarks(s);
  });
  h2.on('tlsClientError', () => {});
  h2.on('sessionError', () => {});
  h2.on('unknownProtocol', (s: tls.TLSSocket) => s.destroy());
  h2.on('session', (session: http2.ServerHttp2Session) => {
    // Synchronous with the handshake's end: no HTTP/2 frame has been read yet.
    if (!hasPeerUri((session.socket as tls.TLSSocket).getPeerCertificate())) return session.destroy();
    widenConnectionWindow(session);
  });
  h2.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    stream.on('error', () => {});
    // B is not an open proxy: it dials only the target it was started with.
    if (headers[':method'] !== 'CONNECT' || headers[':authority'] !== upstream) {
      stream.respond({ ':status': 400 }, { endStream: true });
      return;
    }
    raiseHighWaterMarks(stream);
    const out = connect({ host: upstreamHost, port: upstreamPort, allowHalfOpen: true, noDelay: true });
    raiseHighWaterMarks(out);
    const fail = () => {
      if (!stream.destroyed && !stream.headersSent) stream.respond({ ':status': 502 }, { endStream: true });
      else stream.destroy();
    };
    const early = () => out.destroy(); // the stream went away while B was still dialling
    out.once('error', fail);
    stream.once('close', early);
    out.once('connect', () => {
      out.removeListener('error', fail);
      stream.removeListener('close', early);
      if (stream.destroyed) return out.destroy();
      stream.respond({ ':status': 200 });
      relay(stream, out);
    });
  });
  server = h2;
}
servePipe(server, `h2-pipe ${role}`, listenHost);
