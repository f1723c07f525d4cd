// HBONE server (port 15008): TCP → TLS 1.3 mTLS → HTTP/2; every stream goes to onConnect, which
// decides the status (hbone.md §4 phases live in proxy/inbound.ts). One TLS socket per accepted
// connection so the certificate can follow rotation (tls/secure-context.ts), and the client's
// trust domain is checked before any HTTP/2 frame is read (hbone.md §1).
import http2 from 'node:http2';
import type net from 'node:net';
import tls from 'node:tls';
import { ZtunnelError, asZtunnelError, hboneStatus } from '../core/errors.js';
import { canonicalIp, type SocketAddr } from '../core/net.js';
import { formatIdentity, type Identity } from '../core/spiffe.js';
import type { CertificateProvider } from '../tls/certificate.js';
import { SecureContextCache, serverTlsOptions, type TlsTuning } from '../tls/secure-context.js';
import { checkClientTrustDomain } from '../tls/verify.js';
import { armResetOnClose } from '../platform/native-addon.js';
import type { Logger } from '../telemetry/logger.js';
import { noteUnauthenticatedClose } from '../platform/memory-reclaim.js';
import { startKeepalive } from './keepalive.js';
import { watchSessionReads } from './read-watchdog.js';
import { RELAY_HIGH_WATER_MARK, raiseHighWaterMarks } from './stream-buffers.js';

/** hbone.md §2: the server advertises a 64 KiB header list and keeps 400 KiB per stream. */
export const SERVER_MAX_HEADER_LIST_BYTES = 64 * 1024;
export const SERVER_SEND_BUFFER_BYTES = 400 * 1024;

/**
 * Time from accept to a finished TLS handshake (certificate lookup included). Istio's ztunnel has
 * no such bound; without one, idle or half-done handshakes hold an fd each until the process runs
 * out (issue 16). 10 s: what Node's own HTTP/2 server gives a connection with no protocol and
 * Go's HTTP client gives a TLS handshake; a real handshake on a node's network takes milliseconds.
 */
export const HANDSHAKE_DEADLINE_MS = 10_000;

/**
 * Rapid reset (CVE-2023-44487): streams the client resets before they were answered. More than
 * this many within RAPID_RESET_WINDOW_MS and the session ends with GOAWAY ENHANCE_YOUR_CALM. A
 * well-behaved client resets a stream before its response only when its own app gave up during
 * the connect, so the bound is far above normal use (half the advertised concurrent streams).
 */
export const RAPID_RESET_LIMIT = 100;
export const RAPID_RESET_WINDOW_MS = 10_000;

export interface HboneServerOptions {
  /** The identity whose certificate this listener presents (the destination workload's). */
  readonly identity: Identity;
  readonly certs: CertificateProvider;
  readonly tuning: TlsTuning;
  readonly streamWindowBytes: number;
  readonly connectionWindowBytes: number;
  readonly frameSizeBytes: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS advertised (hbone.md §2: 200). */
  readonly maxConcurrentStreams: number;
  readonly pingIntervalMs: number;
  readonly pingTimeoutMs: number;
  readonly logger: Logger;
  /** Every stream (any method); the callee answers it (respondError or 200 + relay). */
  readonly onConnect: (req: InboundConnect) => void;
  /**
   * A connection closed before its HTTP/2 session started: TLS error, client certificate refused,
   * handshake deadline. The caller logs it (Istio: WARN "connection failed" on the access target).
   */
  readonly onHandshakeFailed?: (remote: SocketAddr, local: SocketAddr, err: ZtunnelError) => void;
  /** Default HANDSHAKE_DEADLINE_MS. */
  readonly handshakeDeadlineMs?: number;
}

export interface InboundConnect {
  readonly stream: http2.ServerHttp2Stream;
  readonly headers: http2.IncomingHttpHeaders;
  /** The client certificate's identity (first SPIFFE URI SAN). */
  readonly peerIdentity: Identity;
  /** Local address of the outer TCP connection (the IP the client connected to). */
  readonly localAddr: SocketAddr;
  readonly remoteAddr: SocketAddr;
  /** The raw accepted TCP socket, e.g. for SO_ORIGINAL_DST. */
  readonly outerSocket: net.Socket;
  readonly tlsSocket: tls.TLSSocket;
}

type ConnInfo = Omit<InboundConnect, 'stream' | 'headers'>;

/** Per-session rapid-reset accounting (mutable; one per session). */
interface ResetWindow {
  start: number;
  count: number;
}

/**
 * An error response: HEADERS with END_STREAM, no body (hbone.md §4), then RST_STREAM(NO_ERROR) when
 * the client has not ended its side (RFC 9113 §8.1: stop sending; Istio's server does the same).
 * Never throws.
 */
export function respondError(stream: http2.ServerHttp2Stream, status: number): void {
  if (stream.destroyed || stream.closed) return;
  try {
    if (stream.headersSent) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    else {
      stream.respond({ ':status': status }, { endStream: true });
      if (!stream.endAfterHeaders) stream.close(http2.constants.NGHTTP2_NO_ERROR);
    }
  } catch {
    stream.destroy();
  }
}

const kResets = Symbol('hbone.resets');
type CountedSession = http2.ServerHttp2Session & { [kResets]?: ResetWindow };

/**
 * 'aborted' of a stream (emitted synchronously while nghttp2 processes the client's RST_STREAM, so
 * a burst is counted as it is read): counts a client reset of a stream that was never answered.
 */
function onStreamAborted(this: http2.ServerHttp2Stream): void {
  if (this.headersSent) return;
  const session = this.session as CountedSession | undefined;
  if (!session || session.destroyed) return;
  const now = Date.now();
  let w = session[kResets];
  if (!w || now - w.start > RAPID_RESET_WINDOW_MS) session[kResets] = w = { start: now, count: 0 };
  if (++w.count > RAPID_RESET_LIMIT) {
    // GOAWAY ENHANCE_YOUR_CALM, then the connection is closed (RFC 9113 §5.4.1).
    session.destroy(new Error(`rapid reset: more than ${RAPID_RESET_LIMIT} streams reset before their response`), http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
  }
}

function addrOf(ip: string | undefined, port: number | undefined): SocketAddr {
  return { ip: (ip && canonicalIp(ip)) || '0.0.0.0', port: port ?? 0 };
}

export class HboneServer {
  readonly #opts: HboneServerOptions;
  readonly #h2: http2.Http2Server;
  readonly #contexts = new SecureContextCache();
  readonly #listeners = new Map<net.Server, (s: net.Socket) => void>();
  /** Accepted sockets still in the TLS handshake / trust check. */
  readonly #handshaking = new Set<net.Socket>();
  readonly #sessions = new Map<http2.ServerHttp2Session, ConnInfo>();
  /** Set only while emitting 'connection', so the synchronous 'session' event can pick it up. */
  #handoff: ConnInfo | undefined;
  #closing = false;
  #closeWaiters: (() => void)[] = [];
  #closed: Promise<void> | undefined;

  constructor(opts: HboneServerOptions) {
    this.#opts = opts;
    this.#h2 = http2.createServer({
      settings: {
        initialWindowSize: opts.streamWindowBytes,
        maxFrameSize: opts.frameSizeBytes,
        maxHeaderListSize: SERVER_MAX_HEADER_LIST_BYTES,
        maxConcurrentStreams: opts.maxConcurrentStreams,
      },
    });
    this.#h2.on('session', (s: http2.ServerHttp2Session) => this.#onSession(s));
    this.#h2.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => this.#onStream(stream, headers));
    this.#h2.on('sessionError', (err: Error) => opts.logger.debug({ err: err.message }, 'hbone session error'));
  }

  /** Serves the 'connection's of a listener made by a SocketFactory (allowHalfOpen). */
  attach(listener: net.Server): void {
    if (this.#listeners.has(listener)) return;
    const onConnection = (socket: net.Socket) => this.#accept(socket);
    this.#listeners.set(listener, onConnection);
    listener.on('connection', onConnection);
  }

  sessionsOpen(): number {
    return this.#sessions.size;
  }

  /**
   * Graceful: GOAWAY (NO_ERROR) on every session, in-flight streams finish, connections that
   * still arrive are closed. Resolves when the last session closed.
   */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#stopAccepting();
      this.#closed = new Promise<void>((resolve) => {
        this.#closeWaiters.push(resolve);
        for (const s of this.#sessions.keys()) if (!s.closed) s.close();
        this.#maybeClosed();
      });
    }
    return this.#closed;
  }

  /** Forced: every session and pending handshake is destroyed; new connections are closed. */
  destroy(): void {
    this.#stopAccepting();
    for (const s of this.#sessions.keys()) s.destroy();
  }

  #stopAccepting(): void {
    // Listeners stay subscribed: a connection that still arrives is closed at once (#accept)
    // rather than left unanswered; the listener's owner closes the listener itself.
    this.#closing = true;
    for (const s of this.#handshaking) s.destroy();
    this.#handshaking.clear();
  }

  #maybeClosed(): void {
    if (this.#sessions.size > 0) return;
    const waiters = this.#closeWaiters;
    this.#closeWaiters = [];
    for (const w of waiters) w();
  }

  #accept(socket: net.Socket): void {
    const log = this.#opts.logger;
    socket.on('error', (err) => log.debug({ err: err.message }, 'hbone socket error'));
    if (this.#closing) {
      socket.destroy();
      return;
    }
    // Keep the ClientHello buffered until the TLS socket takes over (the certificate lookup is
    // asynchronous); a socket its owner already resumed would otherwise drop it.
    socket.pause();
    try {
      socket.setNoDelay(true);
    } catch {
      // already closed
    }
    const localAddr = addrOf(socket.localAddress, socket.localPort);
    const remoteAddr = addrOf(socket.remoteAddress, socket.remotePort);
    this.#handshaking.add(socket);
    const deadlineMs = this.#opts.handshakeDeadlineMs ?? HANDSHAKE_DEADLINE_MS;
    let tlsSocket: tls.TLSSocket | undefined;
    const deadline = setTimeout(() => {
      if (!this.#handshaking.has(socket)) return;
      this.#failHandshake(socket, tlsSocket, remoteAddr, localAddr,
        new ZtunnelError('TLS_HANDSHAKE', `tls handshake error: no handshake within ${deadlineMs / 1000}s`));
    }, deadlineMs);
    deadline.unref();
    socket.once('close', () => {
      clearTimeout(deadline);
      this.#handshaking.delete(socket);
    });
    this.#opts.certs.getCertificate(this.#opts.identity).then(
      (cert) => {
        if (socket.destroyed || this.#closing) {
          socket.destroy();
          return;
        }
        let secure: tls.TLSSocket;
        try {
          const ctx = this.#contexts.get(cert, this.#opts.tuning);
          tlsSocket = secure = new tls.TLSSocket(socket, serverTlsOptions(ctx, this.#opts.tuning));
          // The accepted socket is half-open capable (for the relays); the HTTP/2 transport is
          // not: a peer's FIN must close the session, not leave it waiting forever.
          secure.allowHalfOpen = false;
        } catch (e) {
          log.warn({ err: asZtunnelError(e, 'TLS_HANDSHAKE').message }, 'hbone: cannot start TLS');
          socket.destroy();
          return;
        }
        secure.on('error', (err) => {
          if (this.#handshaking.has(socket)) {
            this.#failHandshake(socket, secure, remoteAddr, localAddr, new ZtunnelError('TLS_HANDSHAKE', `tls handshake error: ${err.message}`, { cause: err }));
            return;
          }
          log.debug({ err: err.message, 'src.addr': `${remoteAddr.ip}:${remoteAddr.port}` }, 'hbone TLS error');
          secure.destroy();
          socket.destroy();
        });
        secure.once('secure', () => this.#onSecure(socket, secure, localAddr, remoteAddr));
      },
      (e: unknown) => {
        const err = asZtunnelError(e, 'IDENTITY_UNAVAILABLE');
        log.warn({ err: err.message, identity: formatIdentity(this.#opts.identity) }, 'hbone: no certificate to serve');
        socket.destroy();
      },
    );
  }

  /** Ends a connection that never reached HTTP/2: logged once, then closed (or reset). */
  #failHandshake(socket: net.Socket, tlsSocket: tls.TLSSocket | undefined, remote: SocketAddr, local: SocketAddr, err: ZtunnelError, reset = false): void {
    if (!this.#handshaking.delete(socket)) return;
    noteUnauthenticatedClose();
    if (this.#opts.onHandshakeFailed) this.#opts.onHandshakeFailed(remote, local, err);
    else this.#opts.logger.warn({ 'src.addr': `${remote.ip}:${remote.port}`, error: err.message }, 'connection failed');
    if (reset) armResetOnClose(socket);
    tlsSocket?.destroy();
    socket.destroy();
  }

  #onSecure(socket: net.Socket, tlsSocket: tls.TLSSocket, localAddr: SocketAddr, remoteAddr: SocketAddr): void {
    if (this.#closing) {
      this.#handshaking.delete(socket);
      tlsSocket.destroy();
      socket.destroy();
      return;
    }
    const peer = checkClientTrustDomain(tlsSocket, this.#opts.identity);
    if (peer instanceof ZtunnelError) {
      // Refused before any HTTP/2 frame is read (hbone.md §1). TLS 1.3 lets the client finish its
      // side of the handshake before we verify its certificate; Node verifies in JavaScript after
      // the handshake and offers no way to send the alert rustls sends; Node's resetAndDestroy under
      // a TLS socket takes the process down (Node 20 and 24), so the socket is armed with SO_LINGER 0
      // and its close is a TCP RST: the client sees a reset, not a clean end (plain close without
      // the native addon).
      this.#failHandshake(socket, tlsSocket, remoteAddr, localAddr, new ZtunnelError(peer.code, `tls handshake error: ${peer.message}`, { cause: peer }), true);
      return;
    }
    this.#handshaking.delete(socket);
    // rustls serves HTTP/2 to a client that offered no ALPN (Istio's ztunnel does, issue 16); Node's
    // HTTP/2 server would wait 10 s for an 'unknownProtocol' handler and then drop it.
    if (tlsSocket.alpnProtocol === false) (tlsSocket as { alpnProtocol: string | false }).alpnProtocol = 'h2';
    // What Node's own tls.Server does on 'secure': without it the HTTP/2 session would wait for a
    // 'secureConnect' that a server-side TLSSocket never emits.
    (tlsSocket as unknown as { secureConnecting: boolean }).secureConnecting = false;
    watchSessionReads(socket, tlsSocket);
    this.#handoff = { peerIdentity: peer, localAddr, remoteAddr, outerSocket: socket, tlsSocket };
    try {
      this.#h2.emit('connection', tlsSocket);
    } finally {
      this.#handoff = undefined;
    }
  }

  #onSession(session: http2.ServerHttp2Session): void {
    const info = this.#handoff;
    if (!info) {
      session.destroy();
      return;
    }
    this.#sessions.set(session, info);
    session.on('error', (err) => this.#opts.logger.debug({ err: err.message }, 'hbone session error'));
    session.once('close', () => {
      this.#sessions.delete(session);
      this.#maybeClosed();
    });
    // Connection-level window (hbone.md §2, perf-notes.md knob 1).
    const widen = () => {
      try {
        session.setLocalWindowSize(this.#opts.connectionWindowBytes);
      } catch {
        // session already gone
      }
    };
    if (session.connecting) session.once('connect', widen);
    else widen();
    startKeepalive(session, { intervalMs: this.#opts.pingIntervalMs, timeoutMs: this.#opts.pingTimeoutMs }, () => {
      this.#opts.logger.debug({ 'src.addr': `${info.remoteAddr.ip}:${info.remoteAddr.port}` }, 'hbone: PING not acknowledged, closing');
      // destroy() sends GOAWAY NO_ERROR, then closes (hbone.md §2).
      session.destroy();
    });
    if (this.#closing) session.close();
  }

  #onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', () => {}); // peer resets are seen by the relay
    stream.once('aborted', onStreamAborted);
    const info = this.#sessions.get(stream.session as http2.ServerHttp2Session);
    if (!info) {
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    raiseHighWaterMarks(stream, RELAY_HIGH_WATER_MARK, SERVER_SEND_BUFFER_BYTES);
    try {
      this.#opts.onConnect({ stream, headers, ...info });
    } catch (e) {
      this.#opts.logger.warn({ err: e instanceof Error ? e.message : String(e) }, 'hbone: stream handler failed');
      respondError(stream, hboneStatus(asZtunnelError(e, 'UPSTREAM_CONNECT')));
    }
  }
}
