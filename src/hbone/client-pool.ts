// HBONE client: a pool of mTLS HTTP/2 connections, one CONNECT stream per user connection.
//
// Pool invariants (hbone.md §5, after istio/ztunnel src/proxy/pool.rs):
// - Key = source identity + sorted expected identities + next hop + source IP; a connection is
//   reused only on a full key match.
// - At most one connection per key is *pooled* (available for checkout). A checkout that brings
//   its stream count to the limit min(maxStreamsPerConnection, peer SETTINGS_MAX_CONCURRENT_STREAMS)
//   takes the connection out of the pool: it serves its streams and closes when they end; the
//   next checkout dials a new one.
// - One dial per key at a time: concurrent callers wait for it and share its outcome.
// - GOAWAY'd, errored or closed connections leave the pool at once and are never handed out.
// - A pooled connection without a checkout for unusedReleaseTimeoutMs leaves the pool and closes
//   once it has no streams.
import http2 from 'node:http2';
import type net from 'node:net';
import tls from 'node:tls';
import { STATUS_CODES } from 'node:http';
import { ZtunnelError, asZtunnelError, osErrorText } from '../core/errors.js';
import { formatAddr, type SocketAddr } from '../core/net.js';
import { formatIdentity, type Identity } from '../core/spiffe.js';
import type { KeepaliveOptions, SocketFactory } from '../platform/socket-factory.js';
import type { CertificateProvider } from '../tls/certificate.js';
import { SecureContextCache, clientTlsOptions, type TlsTuning } from '../tls/secure-context.js';
import { peerIdentity, prepareLeafChecks } from '../tls/verify.js';
import type { Logger } from '../telemetry/logger.js';
import { startKeepalive } from './keepalive.js';
import { watchSessionReads } from './read-watchdog.js';
import { RELAY_HIGH_WATER_MARK, raiseHighWaterMarks } from './stream-buffers.js';

/** hbone.md §2: the client advertises a 16 KiB header list. */
export const CLIENT_MAX_HEADER_LIST_BYTES = 16 * 1024;

export interface HbonePoolOptions {
  readonly certs: CertificateProvider;
  readonly sockets: SocketFactory;
  readonly tuning: TlsTuning;
  readonly streamWindowBytes: number;
  readonly connectionWindowBytes: number;
  readonly frameSizeBytes: number;
  readonly maxStreamsPerConnection: number;
  readonly unusedReleaseTimeoutMs: number;
  /** Whole dial (TCP, TLS, HTTP/2 settings); hbone.md §9: 10 s. */
  readonly connectTimeoutMs: number;
  readonly pingIntervalMs: number;
  readonly pingTimeoutMs: number;
  readonly mark?: number;
  readonly keepalive?: KeepaliveOptions;
  readonly logger: Logger;
}

export interface HboneConnectRequest {
  readonly srcIdentity: Identity;
  readonly expectedIdentities: readonly Identity[];
  readonly nextHop: SocketAddr;
  readonly sourceIp?: string;
  /** IP_TOS of a newly dialled connection (transparent mode's DSCP mark, capture.md §8). */
  readonly tos?: number;
  readonly authority: string;
  /** Extra request headers (baggage, forwarded, traceparent, ...), lower-case names. */
  readonly headers: Record<string, string>;
  readonly signal?: AbortSignal;
}

export interface HboneConnectResult {
  readonly stream: http2.ClientHttp2Stream;
  readonly responseHeaders: http2.IncomingHttpHeaders;
  readonly peerIdentity: Identity;
  readonly sessionId: number;
}

export interface HbonePoolStats {
  /** HTTP/2 connections established since the pool was made. */
  sessionsDialed: number;
  sessionsOpen: number;
  streamsOpen: number;
}

/**
 * The peer answered the CONNECT with a non-200 status (hbone.md §4): `http status: 503 Service
 * Unavailable`, the status with its reason phrase as Istio's ztunnel prints it.
 */
export class HboneStatusError extends ZtunnelError {
  readonly httpStatus: number;
  constructor(httpStatus: number) {
    super('HBONE_STATUS', `http status: ${httpStatus}${STATUS_CODES[httpStatus] ? ` ${STATUS_CODES[httpStatus]}` : ''}`);
    this.httpStatus = httpStatus;
  }
}

interface PooledSession {
  readonly id: number;
  readonly key: string;
  readonly session: http2.ClientHttp2Session;
  readonly peerIdentity: Identity;
  readonly limit: number;
  streams: number;
  pooled: boolean;
  broken: boolean;
  lastCheckoutMs: number;
  idleTimer: NodeJS.Timeout | undefined;
}

const { NGHTTP2_CANCEL } = http2.constants;

function poolKey(r: HboneConnectRequest): string {
  const expected = r.expectedIdentities.map(formatIdentity).sort();
  return JSON.stringify([formatIdentity(r.srcIdentity), expected, formatAddr(r.nextHop), r.sourceIp ?? '']);
}

/** Rejects with the signal's reason once it aborts; listeners are removed either way. */
function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
      (e) => { signal.removeEventListener('abort', onAbort); reject(e); },
    );
  });
}

/** Waits for `ok` on an emitter; `fail` events or the signal reject. Listeners are removed. */
function waitFor<T>(emitter: NodeJS.EventEmitter, ok: string, fail: readonly string[], signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const handlers: [string, (...a: unknown[]) => void][] = [];
    const done = () => {
      for (const [e, h] of handlers) emitter.off(e, h);
      signal.removeEventListener('abort', onAbort);
    };
    const onAbort = () => { done(); reject(signal.reason); };
    handlers.push([ok, (v: unknown) => { done(); resolve(v as T); }]);
    for (const f of fail) {
      handlers.push([f, (e: unknown) => { done(); reject(e instanceof Error ? e : new Error(`${f} during connection setup`)); }]);
    }
    for (const [e, h] of handlers) emitter.on(e, h);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

class DialTimeout extends Error {}

export class HbonePool {
  readonly #opts: HbonePoolOptions;
  readonly #contexts = new SecureContextCache();
  /** Pooled (checkout-able) connection per key. */
  readonly #available = new Map<string, PooledSession>();
  readonly #dialing = new Map<string, Promise<PooledSession>>();
  readonly #dialAborts = new Set<AbortController>();
  /** Every open connection, pooled or not. */
  readonly #all = new Set<PooledSession>();
  #nextId = 1;
  #sessionsDialed = 0;
  #closing = false;
  #closeWaiters: (() => void)[] = [];
  #closed: Promise<void> | undefined;

  constructor(opts: HbonePoolOptions) {
    this.#opts = opts;
  }

  /** Opens a CONNECT stream to `authority` over a pooled (or new) connection to `nextHop`. */
  async connect(req: HboneConnectRequest): Promise<HboneConnectResult> {
    const ps = await this.#checkout(poolKey(req), req);
    return this.#open(ps, req);
  }

  /**
   * Double HBONE (hbone.md §8): the inner tunnel through an outer CONNECT stream already open to a
   * network gateway. mTLS runs again inside that stream, to the final peer, on an HTTP/2
   * connection of its own that is never pooled (as Istio's ztunnel does: pooling would pin every
   * connection to one remote workload); it closes with the one stream it carries, and the outer
   * stream closes with it.
   */
  async connectInner(outer: http2.ClientHttp2Stream, req: Omit<HboneConnectRequest, 'nextHop' | 'sourceIp' | 'tos'>): Promise<HboneConnectResult> {
    const o = this.#opts;
    const hop = `inner:${req.authority}`;
    let tlsSocket: tls.TLSSocket | undefined;
    let session: http2.ClientHttp2Session | undefined;
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new ZtunnelError('TLS_HANDSHAKE', `inner TLS handshake for ${req.authority} timed out`)), o.connectTimeoutMs);
    const onOuterAbort = () => ac.abort(req.signal?.reason);
    req.signal?.addEventListener('abort', onOuterAbort, { once: true });
    let stage: 'tls' | 'h2' = 'tls';
    try {
      const cert = await o.certs.getCertificate(req.srcIdentity);
      const ctx = this.#contexts.get(cert, o.tuning);
      tlsSocket = tls.connect({ socket: outer, ...clientTlsOptions(ctx, req.expectedIdentities, o.tuning) });
      tlsSocket.on('error', () => {});
      await waitFor(tlsSocket, 'secureConnect', ['error', 'close'], ac.signal);
      const peer = peerIdentity(tlsSocket);
      if (!peer) throw new ZtunnelError('PEER_IDENTITY', `inner peer for ${req.authority} presented no SPIFFE identity`);
      stage = 'h2';
      const sock = tlsSocket;
      session = http2.connect(`https://${req.authority}`, {
        createConnection: () => sock,
        settings: { initialWindowSize: o.streamWindowBytes, maxFrameSize: o.frameSizeBytes, maxHeaderListSize: CLIENT_MAX_HEADER_LIST_BYTES, enablePush: false },
      });
      session.on('error', (err) => o.logger.debug({ err: err.message, 'dst.hbone_addr': req.authority }, 'hbone inner session error'));
      const s = session;
      s.once('close', () => {
        sock.destroy();
        if (!outer.closed) outer.close(NGHTTP2_CANCEL);
      });
      await waitFor<http2.Settings>(s, 'remoteSettings', ['error', 'close'], ac.signal);
      const ps: PooledSession = {
        id: this.#nextId++, key: hop, session: s, peerIdentity: peer, limit: 1, streams: 1,
        pooled: false, broken: false, lastCheckoutMs: Date.now(),
      } as PooledSession;
      return await this.#open(ps, req as HboneConnectRequest);
    } catch (e) {
      session?.destroy();
      tlsSocket?.destroy();
      if (!outer.closed) outer.close(NGHTTP2_CANCEL);
      if (e instanceof ZtunnelError) throw e;
      const msg = e instanceof Error ? e.message : String(e);
      throw stage === 'tls'
        ? new ZtunnelError('TLS_HANDSHAKE', `inner TLS handshake for ${req.authority} failed: ${msg}`, { cause: e })
        : new ZtunnelError('H2_FAILURE', `inner HTTP/2 for ${req.authority} failed: ${msg}`, { cause: e });
    } finally {
      clearTimeout(timer);
      req.signal?.removeEventListener('abort', onOuterAbort);
    }
  }

  stats(): HbonePoolStats {
    let streamsOpen = 0;
    for (const ps of this.#all) streamsOpen += ps.streams;
    return { sessionsDialed: this.#sessionsDialed, sessionsOpen: this.#all.size, streamsOpen };
  }

  /** Graceful: no new checkouts; connections close once their streams end. */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closing = true;
      for (const ps of [...this.#available.values()]) this.#unpool(ps);
      this.#closed = new Promise<void>((resolve) => {
        this.#closeWaiters.push(resolve);
        this.#maybeClosed();
      });
    }
    return this.#closed;
  }

  /** Forced: in-flight dials are aborted and every connection (and its streams) destroyed. */
  destroy(err?: Error): void {
    this.#closing = true;
    for (const ac of this.#dialAborts) ac.abort(err ?? new ZtunnelError('DRAINING', 'hbone pool destroyed'));
    for (const ps of [...this.#all]) {
      ps.broken = true;
      this.#unpool(ps);
      ps.session.destroy(err);
    }
  }

  #maybeClosed(): void {
    if (!this.#closing || this.#all.size > 0 || this.#dialing.size > 0) return;
    const waiters = this.#closeWaiters;
    this.#closeWaiters = [];
    for (const w of waiters) w();
  }

  async #checkout(key: string, req: HboneConnectRequest): Promise<PooledSession> {
    for (;;) {
      if (this.#closing) throw new ZtunnelError('DRAINING', 'hbone pool is closed');
      req.signal?.throwIfAborted();
      const pooled = this.#available.get(key);
      if (pooled) {
        if (this.#usable(pooled)) {
          this.#take(pooled);
          return pooled;
        }
        this.#unpool(pooled);
      }
      let dial = this.#dialing.get(key);
      if (!dial) {
        dial = this.#dial(key, req).finally(() => {
          this.#dialing.delete(key);
          this.#maybeClosed();
        });
        dial.catch(() => {}); // every waiter gets the rejection; none may be left
        this.#dialing.set(key, dial);
      }
      // The dial pooled its connection (or failed for everyone waiting on it); check out again.
      await abortable(dial, req.signal);
    }
  }

  #usable(ps: PooledSession): boolean {
    return !ps.broken && !ps.session.closed && !ps.session.destroyed && ps.streams < ps.limit;
  }

  #take(ps: PooledSession): void {
    ps.streams++;
    ps.lastCheckoutMs = Date.now();
    // hbone.md §5: the stream that reaches the limit gets the connection, the pool does not.
    if (ps.streams >= ps.limit) this.#unpool(ps);
  }

  #release(ps: PooledSession): void {
    ps.streams--;
    if (!ps.pooled && ps.streams === 0 && !ps.session.closed) ps.session.close();
  }

  #pool(ps: PooledSession): void {
    if (this.#closing) {
      if (ps.streams === 0) ps.session.close();
      return;
    }
    ps.pooled = true;
    this.#available.set(ps.key, ps);
    this.#armIdle(ps, this.#opts.unusedReleaseTimeoutMs);
  }

  #unpool(ps: PooledSession): void {
    if (ps.pooled) {
      ps.pooled = false;
      if (this.#available.get(ps.key) === ps) this.#available.delete(ps.key);
    }
    if (ps.idleTimer) clearTimeout(ps.idleTimer);
    ps.idleTimer = undefined;
    if (ps.streams === 0 && !ps.session.closed && !ps.session.destroyed) ps.session.close();
  }

  #armIdle(ps: PooledSession, delayMs: number): void {
    ps.idleTimer = setTimeout(() => {
      ps.idleTimer = undefined;
      if (!ps.pooled) return;
      const idleMs = Date.now() - ps.lastCheckoutMs;
      if (idleMs >= this.#opts.unusedReleaseTimeoutMs) {
        this.#opts.logger.debug({ session: ps.id }, 'hbone pool: releasing unused connection');
        this.#unpool(ps);
      } else {
        this.#armIdle(ps, this.#opts.unusedReleaseTimeoutMs - idleMs);
      }
    }, delayMs);
    ps.idleTimer.unref();
  }

  async #dial(key: string, req: HboneConnectRequest): Promise<PooledSession> {
    const o = this.#opts;
    let ctx: tls.SecureContext;
    try {
      const cert = await o.certs.getCertificate(req.srcIdentity);
      ctx = this.#contexts.get(cert, o.tuning);
    } catch (e) {
      throw asZtunnelError(e, 'IDENTITY_UNAVAILABLE');
    }

    const ac = new AbortController();
    const timeout = new DialTimeout('dial timed out');
    const timer = setTimeout(() => ac.abort(timeout), o.connectTimeoutMs);
    this.#dialAborts.add(ac);
    const hop = formatAddr(req.nextHop);
    let tcp: net.Socket | undefined;
    let tlsSocket: tls.TLSSocket | undefined;
    let session: http2.ClientHttp2Session | undefined;
    let stage: 'tcp' | 'tls' | 'h2' = 'tcp';
    try {
      tcp = await o.sockets.connect({
        host: req.nextHop.ip,
        port: req.nextHop.port,
        ...(req.sourceIp ? { sourceIp: req.sourceIp } : {}),
        ...(o.mark !== undefined ? { mark: o.mark } : {}),
        ...(req.tos !== undefined ? { tos: req.tos } : {}),
        ...(o.keepalive ? { keepalive: o.keepalive } : {}),
        timeoutMs: o.connectTimeoutMs,
        signal: ac.signal,
      });
      tcp.on('error', () => {}); // surfaced through the TLS socket / session
      tcp.setNoDelay(true); // perf-notes.md knob 5: on the raw socket, before TLS wraps it

      stage = 'tls';
      await prepareLeafChecks(); // the peer's leaf is checked in the handshake (tls/verify.ts)
      tlsSocket = tls.connect({ socket: tcp, ...clientTlsOptions(ctx, req.expectedIdentities, o.tuning) });
      // Dialed sockets are half-open capable; an HTTP/2 transport must close on the peer's FIN.
      tlsSocket.allowHalfOpen = false;
      tlsSocket.on('error', () => {});
      await waitFor(tlsSocket, 'secureConnect', ['error', 'close'], ac.signal);
      const peer = peerIdentity(tlsSocket);
      if (!peer) throw new ZtunnelError('PEER_IDENTITY', `peer at ${hop} presented no SPIFFE identity`);
      if (tlsSocket.alpnProtocol !== 'h2') throw new ZtunnelError('H2_FAILURE', `peer at ${hop} did not negotiate ALPN h2`);

      stage = 'h2';
      const sock = tlsSocket;
      watchSessionReads(tcp, sock);
      session = http2.connect(`https://${hop}`, {
        createConnection: () => sock,
        settings: {
          initialWindowSize: o.streamWindowBytes,
          maxFrameSize: o.frameSizeBytes,
          maxHeaderListSize: CLIENT_MAX_HEADER_LIST_BYTES,
          enablePush: false,
        },
      });
      session.on('error', (err) => o.logger.debug({ err: err.message, 'dst.addr': hop }, 'hbone client session error'));
      // The stream limit needs the peer's SETTINGS (Node reads 100 until they arrive).
      const settings = await waitFor<http2.Settings>(session, 'remoteSettings', ['error', 'close'], ac.signal);
      session.setLocalWindowSize(o.connectionWindowBytes);

      const peerMax = settings.maxConcurrentStreams ?? Number.MAX_SAFE_INTEGER;
      const ps: PooledSession = {
        id: this.#nextId++,
        key,
        session,
        peerIdentity: peer,
        limit: Math.max(1, Math.min(o.maxStreamsPerConnection, peerMax)),
        streams: 0,
        pooled: false,
        broken: false,
        lastCheckoutMs: Date.now(),
        idleTimer: undefined,
      };
      this.#track(ps, hop);
      this.#sessionsDialed++;
      this.#pool(ps);
      return ps;
    } catch (e) {
      session?.destroy();
      tlsSocket?.destroy();
      tcp?.destroy();
      throw this.#dialError(e, stage, hop, ac.signal.reason === timeout);
    } finally {
      clearTimeout(timer);
      this.#dialAborts.delete(ac);
    }
  }

  #dialError(e: unknown, stage: 'tcp' | 'tls' | 'h2', hop: string, timedOut: boolean): ZtunnelError {
    if (e instanceof ZtunnelError) return e;
    const code = (e as NodeJS.ErrnoException | undefined)?.code;
    const msg = e instanceof Error ? e.message : String(e);
    if (stage === 'tcp') {
      // hbone.md §5: a dial timeout suggests a NetworkPolicy blocking 15008 (flag NETWORK_POLICY).
      if (timedOut || code === 'ETIMEDOUT') return new ZtunnelError('POOL_TIMEOUT', undefined, { cause: e });
      // Istio's pool turns the io::Error into `io error: Connection refused (os error 111)`.
      const os = osErrorText(e);
      return new ZtunnelError('UPSTREAM_CONNECT', os !== undefined ? `io error: ${os}` : `connect to ${hop} failed: ${msg}`, { cause: e });
    }
    if (stage === 'tls') {
      return new ZtunnelError('TLS_HANDSHAKE', timedOut ? `TLS handshake with ${hop} timed out` : `TLS handshake with ${hop} failed: ${msg}`, { cause: e });
    }
    if (typeof code === 'string' && code.startsWith('ERR_SSL')) {
      // A TLS 1.3 server rejects our certificate after our side finished the handshake.
      return new ZtunnelError('TLS_HANDSHAKE', `TLS with ${hop} failed: ${msg}`, { cause: e });
    }
    return new ZtunnelError('H2_FAILURE', timedOut ? `HTTP/2 handshake with ${hop} timed out` : `HTTP/2 handshake with ${hop} failed: ${msg}`, { cause: e });
  }

  #track(ps: PooledSession, hop: string): void {
    const { session } = ps;
    this.#all.add(ps);
    const evict = () => {
      ps.broken = true;
      this.#unpool(ps);
    };
    session.on('goaway', evict);
    session.on('error', evict);
    session.once('close', () => {
      evict();
      this.#all.delete(ps);
      this.#maybeClosed();
    });
    startKeepalive(session, { intervalMs: this.#opts.pingIntervalMs, timeoutMs: this.#opts.pingTimeoutMs }, () => {
      this.#opts.logger.debug({ session: ps.id, 'dst.addr': hop }, 'hbone: PING not acknowledged, closing');
      evict();
      session.destroy();
    });
  }

  #open(ps: PooledSession, req: HboneConnectRequest): Promise<HboneConnectResult> {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = ps.session.request({ ...req.headers, ':method': 'CONNECT', ':authority': req.authority }, { endStream: false });
    } catch (e) {
      this.#release(ps);
      return Promise.reject(asZtunnelError(e, 'H2_FAILURE'));
    }
    stream.on('error', () => {}); // later errors are the relay's business
    stream.once('close', () => this.#release(ps));
    // hbone.md §2: send buffer per stream = stream window; 256 KiB reads (perf-notes.md knob 2).
    raiseHighWaterMarks(stream, RELAY_HIGH_WATER_MARK, this.#opts.streamWindowBytes);
    return new Promise<HboneConnectResult>((resolve, reject) => {
      const { signal } = req;
      const done = () => {
        stream.off('response', onResponse);
        stream.off('error', onError);
        stream.off('close', onClose);
        signal?.removeEventListener('abort', onAbort);
      };
      const onResponse = (headers: http2.IncomingHttpHeaders) => {
        done();
        const status = Number(headers[':status']);
        if (status === 200) {
          resolve({ stream, responseHeaders: headers, peerIdentity: ps.peerIdentity, sessionId: ps.id });
        } else {
          stream.close(NGHTTP2_CANCEL);
          reject(new HboneStatusError(status));
        }
      };
      const onError = (e: Error) => {
        done();
        reject(asZtunnelError(e, 'H2_FAILURE'));
      };
      const onClose = () => {
        done();
        reject(new ZtunnelError('H2_FAILURE', `stream closed before a response (RST_STREAM ${stream.rstCode ?? '?'})`));
      };
      const onAbort = () => {
        done();
        stream.close(NGHTTP2_CANCEL);
        reject(signal?.reason);
      };
      stream.on('response', onResponse);
      stream.on('error', onError);
      stream.on('close', onClose);
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
