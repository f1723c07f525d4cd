// HbonePool against HboneServer over real TCP, real mTLS (certificates from the local CA) and
// real HTTP/2 on 127.0.0.1. The server's streams echo their bytes and end after the client's FIN.
import t from 'tap';
import http2 from 'node:http2';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { isZtunnelError } from '../../src/core/errors.js';
import { formatIdentity, type Identity } from '../../src/core/spiffe.js';
import { HbonePool, HboneStatusError, type HboneConnectResult, type HbonePoolOptions } from '../../src/hbone/client-pool.js';
import { HboneServer, respondError, type HboneServerOptions, type InboundConnect } from '../../src/hbone/server.js';
import { PlainSocketFactory } from '../../src/platform/plain-socket-factory.js';
import { relay, type RelayResult } from '../../src/proxy/relay.js';
import type { CertificateProvider, WorkloadCertificate } from '../../src/tls/certificate.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { createTempCa, createRootCa, issueLeaf, testId, type TempCa } from '../helpers/certs.js';

const logger = createLogger({ level: 'off' });
const sockets = new PlainSocketFactory();
const frontend = testId('frontend', 'shop');
const cart = testId('cart', 'shop');

/** Issues each identity's certificate once. */
function provider(issue: (id: Identity) => Promise<WorkloadCertificate>): CertificateProvider {
  const cache = new Map<string, Promise<WorkloadCertificate>>();
  return {
    getCertificate(id) {
      const k = formatIdentity(id);
      let c = cache.get(k);
      if (!c) cache.set(k, (c = issue(id)));
      return c;
    },
  };
}

interface Peer {
  readonly server: HboneServer;
  readonly listener: net.Server;
  readonly port: number;
  readonly requests: InboundConnect[];
}

/** Echo handler; authority `status:<N>` answers <N> instead. */
function echo(req: InboundConnect): void {
  const authority = String(req.headers[':authority'] ?? '');
  const m = /^status:(\d+)$/.exec(authority);
  if (m) return respondError(req.stream, Number(m[1]));
  req.stream.respond({ ':status': 200 });
  req.stream.on('data', (d: Buffer) => req.stream.write(d));
  req.stream.on('end', () => req.stream.end());
}

function newServer(certs: CertificateProvider, requests: InboundConnect[], over: Partial<HboneServerOptions> = {}): HboneServer {
  return new HboneServer({
    identity: cart,
    certs,
    tuning: { tls12Enabled: false },
    streamWindowBytes: 4 << 20,
    connectionWindowBytes: 16 << 20,
    frameSizeBytes: 1 << 20,
    maxConcurrentStreams: 200,
    pingIntervalMs: 10_000,
    pingTimeoutMs: 20_000,
    logger,
    onConnect: (req) => { requests.push(req); echo(req); },
    ...over,
  });
}

async function startPeer(certs: CertificateProvider, over: Partial<HboneServerOptions> = {}): Promise<Peer> {
  const { server: listener } = await sockets.listen({ host: '127.0.0.1', port: 0 });
  const requests: InboundConnect[] = [];
  const server = newServer(certs, requests, over);
  server.attach(listener);
  return { server, listener, port: (listener.address() as net.AddressInfo).port, requests };
}

function newPool(certs: CertificateProvider, over: Partial<HbonePoolOptions> = {}): HbonePool {
  return new HbonePool({
    certs,
    sockets,
    tuning: { tls12Enabled: false },
    streamWindowBytes: 4 << 20,
    connectionWindowBytes: 16 << 20,
    frameSizeBytes: 1 << 20,
    maxStreamsPerConnection: 100,
    unusedReleaseTimeoutMs: 5 * 60_000,
    connectTimeoutMs: 10_000,
    pingIntervalMs: 10_000,
    pingTimeoutMs: 20_000,
    logger,
    ...over,
  });
}

function connect(pool: HbonePool, port: number, over: { authority?: string; expected?: Identity[]; src?: Identity } = {}): Promise<HboneConnectResult> {
  return pool.connect({
    srcIdentity: over.src ?? frontend,
    expectedIdentities: over.expected ?? [cart],
    nextHop: { ip: '127.0.0.1', port },
    authority: over.authority ?? '10.0.0.1:8080',
    headers: { baggage: 'k8s.namespace.name=shop', forwarded: 'for="10.0.0.9:5000"', traceparent: '00-5f0c3a9e27d14b6c8a1e4f2b7d9c0a13-3c7e1a9b5d2f4e08-00' },
  });
}

/** Sends bytes, half-closes, and resolves with everything echoed back once the stream ends. */
function roundTrip(stream: http2.ClientHttp2Stream, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.once('end', () => resolve(Buffer.concat(chunks).toString()));
    stream.once('error', reject);
    stream.end(payload);
  });
}

function closed(stream: http2.ClientHttp2Stream): Promise<void> {
  return stream.closed && stream.destroyed ? Promise.resolve() : new Promise((r) => stream.once('close', () => r()));
}

/** Polls `cond` every 10 ms for at most `maxMs` (bounded wait for asynchronous teardown). */
async function eventually(cond: () => boolean, maxMs = 5000): Promise<boolean> {
  for (let waited = 0; waited < maxMs; waited += 10) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return cond();
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return isZtunnelError(e) ? e.code : `not a ZtunnelError: ${String(e)}`;
  }
}

let ca: TempCa;
let certs: CertificateProvider;
t.before(async () => {
  ca = await createTempCa();
  certs = provider((id) => ca.issue(id));
});
t.teardown(() => ca.cleanup());

t.test('100 concurrent CONNECTs with a 100-stream limit share exactly one connection', async (t) => {
  const peer = await startPeer(certs);
  const pool = newPool(certs);
  t.teardown(() => { pool.destroy(); peer.server.destroy(); peer.listener.close(); });
  const results = await Promise.all(Array.from({ length: 100 }, () => connect(pool, peer.port)));
  t.equal(pool.stats().sessionsDialed, 1, 'one dial: concurrent callers waited for it');
  t.equal(new Set(results.map((r) => r.sessionId)).size, 1);
  t.equal(pool.stats().streamsOpen, 100);
  t.equal(peer.server.sessionsOpen(), 1);
  const echoed = await Promise.all(results.map((r, i) => roundTrip(r.stream, `n${i}`)));
  t.same(echoed, results.map((_, i) => `n${i}`), 'every stream carried its own bytes');
  t.same(results[0]!.peerIdentity, cart, 'the server identity is reported');
});

t.test('the peer\'s SETTINGS_MAX_CONCURRENT_STREAMS (200) caps a larger pool limit: 250 streams need 2 connections', async (t) => {
  const peer = await startPeer(certs);
  const pool = newPool(certs, { maxStreamsPerConnection: 1000 });
  t.teardown(() => { pool.destroy(); peer.server.destroy(); peer.listener.close(); });
  const results = await Promise.all(Array.from({ length: 250 }, () => connect(pool, peer.port)));
  t.equal(pool.stats().sessionsDialed, 2);
  const perSession = new Map<number, number>();
  for (const r of results) perSession.set(r.sessionId, (perSession.get(r.sessionId) ?? 0) + 1);
  t.same([...perSession.values()].sort((a, b) => a - b), [50, 200]);
  await Promise.all(results.map((r) => roundTrip(r.stream, 'x')));
});

t.test('with 10 streams per connection, 100 concurrent CONNECTs dial exactly 10 connections', async (t) => {
  const peer = await startPeer(certs);
  const pool = newPool(certs, { maxStreamsPerConnection: 10 });
  t.teardown(() => { pool.destroy(); peer.server.destroy(); peer.listener.close(); });
  const results = await Promise.all(Array.from({ length: 100 }, () => connect(pool, peer.port)));
  t.equal(pool.stats().sessionsDialed, 10);
  const perSession = new Map<number, number>();
  for (const r of results) perSession.set(r.sessionId, (perSession.get(r.sessionId) ?? 0) + 1);
  t.same([...perSession.values()], Array(10).fill(10));
  await Promise.all(results.map((r) => roundTrip(r.stream, 'x')));
});

t.test('a connection that reached its limit is not returned to the pool when one of its streams ends', async (t) => {
  const peer = await startPeer(certs);
  const pool = newPool(certs, { maxStreamsPerConnection: 10 });
  t.teardown(() => { pool.destroy(); peer.server.destroy(); peer.listener.close(); });
  const first: HboneConnectResult[] = [];
  for (let i = 0; i < 10; i++) first.push(await connect(pool, peer.port));
  const a = first[0]!.sessionId;
  t.ok(first.every((r) => r.sessionId === a), 'the first 10 streams share a connection');
  const eleventh = await connect(pool, peer.port);
  t.not(eleventh.sessionId, a, 'the 11th stream dials a new connection');
  await roundTrip(first[0]!.stream, 'bye');
  await closed(first[0]!.stream);
  const twelfth = await connect(pool, peer.port);
  t.equal(twelfth.sessionId, eleventh.sessionId, 'a freed slot on the full connection is not reused');
  t.equal(pool.stats().sessionsDialed, 2);
  t.equal(pool.stats().sessionsOpen, 2);
  await Promise.all(first.slice(1).map((r) => roundTrip(r.stream, 'x')));
  t.ok(await eventually(() => pool.stats().sessionsOpen === 1), 'the full connection closed once its streams ended');
  t.ok(await eventually(() => peer.server.sessionsOpen() === 1), 'the server saw it close');
  t.equal(await roundTrip(twelfth.stream, 'still fine'), 'still fine');
});

t.test('the CONNECT request carries :authority and the given headers, and no :path or :scheme', async (t) => {
  const peer = await startPeer(certs);
  const pool = newPool(certs);
  t.teardown(() => { pool.destroy(); peer.server.destroy(); peer.listener.close(); });
  const r = await connect(pool, peer.port, { authority: '[fd00::1]:8080' });
  await roundTrip(r.stream, '');
  const req = peer.requests[0]!;
  t.equal(req.headers[':method'], 'CONNECT');
  t.equal(req.headers[':authority'], '[fd00::1]:8080');
  t.equal(req.headers[':path'], undefined);
  t.equal(req.headers[':scheme'], undefined);
  t.equal(req.headers['baggage'], 'k8s.namespace.name=shop');
  t.equal(req.headers['forwarded'], 'for="10.0.0.9:5000"');
  t.equal(req.headers['traceparent'], '00-5f0c3a9e27d14b6c8a1e4f2b7d9c0a13-3c7e1a9b5d2f4e08-00');
  t.same(req.peerIdentity, frontend, 'the server saw the client certificate identity');
  t.same(req.localAddr, { ip: '127.0.0.1', port: peer.port });
  t.equal(req.remoteAddr.ip, '127.0.0.1');
  t.equal(r.responseHeaders[':status'], 200);
});

t.test('a 503 from the server reaches the client as HBONE_STATUS "http status: 503 Service Unavailable"', async (t) => {
  const peer = await startPeer(certs);
  const pool = newPool(certs);
  t.teardown(() => { pool.destroy(); peer.server.destroy(); peer.listener.close(); });
  const err = await connect(pool, peer.port, { authority: 'status:503' }).then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof HboneStatusError);
  t.match(err, { code: 'HBONE_STATUS', message: 'http status: 503 Service Unavailable', httpStatus: 503, flag: 'CONNECT' });
  t.equal(pool.stats().sessionsOpen, 1, 'the connection itself stays usable');
  t.ok(await eventually(() => pool.stats().streamsOpen === 0), 'the failed stream is released');
  const ok = await connect(pool, peer.port);
  t.equal(await roundTrip(ok.stream, 'next'), 'next');
  t.equal(pool.stats().sessionsDialed, 1);
});

t.test('a server whose certificate is not one of the expected identities is refused with PEER_IDENTITY', async (t) => {
  const peer = await startPeer(certs);
  const pool = newPool(certs);
  t.teardown(() => { pool.destroy(); peer.server.destroy(); peer.listener.close(); });
  const err = await connect(pool, peer.port, { expected: [testId('payments', 'shop')] }).then(() => undefined, (e: unknown) => e);
  t.match(err, { code: 'PEER_IDENTITY', flag: 'TLS_FAILURE' });
  t.equal(peer.requests.length, 0, 'no CONNECT was sent');
  t.equal(pool.stats().sessionsOpen, 0);
});

t.test('a server with a certificate from an untrusted root fails the TLS handshake', async (t) => {
  const otherRoot = await createRootCa({ commonName: 'other root' });
  const rogue = provider((id) => issueLeaf(otherRoot, { uris: [formatIdentity(id)] }));
  const peer = await startPeer(rogue);
  const pool = newPool(certs);
  t.teardown(() => { pool.destroy(); peer.server.destroy(); peer.listener.close(); });
  t.equal(await codeOf(connect(pool, peer.port)), 'TLS_HANDSHAKE');
});

t.test('a refused TCP connection fails with a CONNECT-flagged error', async (t) => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const pool = newPool(certs);
  t.teardown(() => pool.destroy());
  const err = await connect(pool, port).then(() => undefined, (e: unknown) => e);
  t.match(err, { code: 'UPSTREAM_CONNECT', flag: 'CONNECT', message: 'io error: Connection refused (os error 111)' });
  t.match((err as Error).cause, { code: 'ECONNREFUSED' });
  t.same(pool.stats(), { sessionsDialed: 0, sessionsOpen: 0, streamsOpen: 0 });
});

t.test('concurrent callers waiting on a failed dial all get its error', async (t) => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const pool = newPool(certs);
  t.teardown(() => pool.destroy());
  const codes = await Promise.all(Array.from({ length: 5 }, () => codeOf(connect(pool, port))));
  t.same(codes, Array(5).fill('UPSTREAM_CONNECT'));
});

t.test('a client from another trust domain is closed by the server before any HTTP/2 stream', async (t) => {
  const peer = await startPeer(certs);
  const stranger = testId('frontend', 'shop', 'other.domain');
  const pool = newPool(certs);
  t.teardown(() => { pool.destroy(); peer.server.destroy(); peer.listener.close(); });
  const code = await codeOf(connect(pool, peer.port, { src: stranger }));
  t.ok(code === 'H2_FAILURE' || code === 'TLS_HANDSHAKE', `client sees the connection fail (${code})`);
  t.equal(peer.requests.length, 0, 'the server never handed a stream to onConnect');
  t.equal(peer.server.sessionsOpen(), 0);
});

t.test('a client certificate from an untrusted root is closed by the server before any HTTP/2 stream', async (t) => {
  const peer = await startPeer(certs);
  const otherRoot = await createRootCa({ commonName: 'rogue root' });
  // The rogue client trusts the real root (so it accepts the server) but presents a rogue leaf.
  const rogueClient = provider(async (id) => ({ ...(await issueLeaf(otherRoot, { uris: [formatIdentity(id)] })), rootsPem: [ca.rootPem] }));
  const pool = newPool(rogueClient);
  t.teardown(() => { pool.destroy(); peer.server.destroy(); peer.listener.close(); });
  const code = await codeOf(connect(pool, peer.port));
  t.ok(code === 'H2_FAILURE' || code === 'TLS_HANDSHAKE', `client sees the connection fail (${code})`);
  t.equal(peer.requests.length, 0);
});

t.test('a connection that received GOAWAY is not reused; its open stream still finishes', async (t) => {
  const peer = await startPeer(certs);
  const pool = newPool(certs);
  t.teardown(() => { pool.destroy(); peer.server.destroy(); peer.listener.close(); });
  const first = await connect(pool, peer.port);
  const goaway = new Promise<number>((r) => first.stream.session!.once('goaway', (code: number) => r(code)));
  // The server closes this one connection gracefully: GOAWAY NO_ERROR, its streams may finish.
  peer.requests[0]!.stream.session!.close();
  t.equal(await goaway, http2.constants.NGHTTP2_NO_ERROR);
  const next = await connect(pool, peer.port);
  t.not(next.sessionId, first.sessionId, 'a new connection was dialed');
  t.equal(pool.stats().sessionsDialed, 2);
  t.equal(await roundTrip(first.stream, 'in flight'), 'in flight', 'the GOAWAY\'d connection finished its stream');
  t.ok(await eventually(() => peer.server.sessionsOpen() === 1), 'the old connection closed after its stream');
  t.equal(await roundTrip(next.stream, 'new'), 'new');
});

t.test('an unused connection is released after the idle timeout and closes on both sides', async (t) => {
  const peer = await startPeer(certs);
  const pool = newPool(certs, { unusedReleaseTimeoutMs: 100 });
  t.teardown(() => { pool.destroy(); peer.server.destroy(); peer.listener.close(); });
  const r = await connect(pool, peer.port);
  t.equal(await roundTrip(r.stream, 'x'), 'x');
  await closed(r.stream);
  t.equal(pool.stats().sessionsOpen, 1, 'kept for reuse right after the stream ended');
  t.ok(await eventually(() => pool.stats().sessionsOpen === 0), 'released after the idle timeout');
  t.ok(await eventually(() => peer.server.sessionsOpen() === 0), 'the server saw the connection close');
  const again = await connect(pool, peer.port);
  t.equal(pool.stats().sessionsDialed, 2, 'the next CONNECT dials afresh');
  await roundTrip(again.stream, 'y');
});

t.test('a connection released while busy closes only after its last stream ends', async (t) => {
  const peer = await startPeer(certs);
  const pool = newPool(certs, { unusedReleaseTimeoutMs: 100 });
  t.teardown(() => { pool.destroy(); peer.server.destroy(); peer.listener.close(); });
  const r = await connect(pool, peer.port);
  const other = await connect(pool, peer.port); // a new dial: the first is no longer pooled
  void other;
  await new Promise((res) => setTimeout(res, 300)); // well past the idle timeout
  t.equal(pool.stats().sessionsOpen, 1, 'still open: it carries streams');
  t.equal(await roundTrip(r.stream, 'late'), 'late');
  await roundTrip(other.stream, 'x');
  t.ok(await eventually(() => pool.stats().sessionsOpen === 0), 'closed once the streams ended');
});

t.test('graceful pool close refuses new CONNECTs and waits for open streams', async (t) => {
  const peer = await startPeer(certs);
  const pool = newPool(certs);
  t.teardown(() => { pool.destroy(); peer.server.destroy(); peer.listener.close(); });
  const r = await connect(pool, peer.port);
  let done = false;
  const closing = pool.close().then(() => { done = true; });
  t.equal(await codeOf(connect(pool, peer.port)), 'DRAINING');
  t.equal(done, false, 'not closed while a stream is open');
  t.equal(await roundTrip(r.stream, 'last'), 'last');
  await closing;
  t.equal(pool.stats().sessionsOpen, 0);
});

t.test('graceful server close lets an in-flight stream finish and takes no new connections', async (t) => {
  const peer = await startPeer(certs);
  const pool = newPool(certs);
  t.teardown(() => { pool.destroy(); peer.server.destroy(); peer.listener.close(); });
  const r = await connect(pool, peer.port);
  const closing = peer.server.close();
  t.equal(await roundTrip(r.stream, 'finish me'), 'finish me');
  await closing;
  t.equal(peer.server.sessionsOpen(), 0);
  t.equal(await codeOf(connect(pool, peer.port)), 'TLS_HANDSHAKE', 'a new connection is closed during its handshake');
});

t.test('a socket its listener owner already resumed still completes the TLS handshake', async (t) => {
  // The owner may resume accepted sockets before handing them over (bind-before-accept queues);
  // the server must not lose the ClientHello while it looks up its certificate.
  const slowCerts: CertificateProvider = {
    getCertificate: (id) => new Promise((r) => setTimeout(r, 50)).then(() => certs.getCertificate(id)),
  };
  const { server: listener } = await sockets.listen({ host: '127.0.0.1', port: 0 });
  const feed = new net.Server();
  listener.on('connection', (s: net.Socket) => { s.resume(); feed.emit('connection', s); });
  const requests: InboundConnect[] = [];
  const server = newServer(slowCerts, requests);
  server.attach(feed);
  const pool = newPool(certs);
  t.teardown(() => { pool.destroy(); server.destroy(); listener.close(); });
  const r = await connect(pool, (listener.address() as net.AddressInfo).port);
  t.equal(await roundTrip(r.stream, 'hello'), 'hello');
});

t.test('a connection whose peer closed TCP without GOAWAY leaves the pool on both sides', async (t) => {
  const peer = await startPeer(certs);
  const pool = newPool(certs);
  t.teardown(() => { pool.destroy(); peer.server.destroy(); peer.listener.close(); });
  const r = await connect(pool, peer.port);
  r.stream.on('error', () => {});
  peer.requests[0]!.outerSocket.end(); // a bare FIN under TLS and HTTP/2
  t.ok(await eventually(() => pool.stats().sessionsOpen === 0), 'the client session closed');
  t.ok(await eventually(() => peer.server.sessionsOpen() === 0), 'the server session closed');
  const next = await connect(pool, peer.port);
  t.not(next.sessionId, r.sessionId);
  t.equal(await roundTrip(next.stream, 'fresh'), 'fresh');
});

t.test('keepalive PINGs that are acknowledged keep an idle connection open', async (t) => {
  const peer = await startPeer(certs, { pingIntervalMs: 20, pingTimeoutMs: 40 });
  const pool = newPool(certs, { pingIntervalMs: 20, pingTimeoutMs: 40 });
  t.teardown(() => { pool.destroy(); peer.server.destroy(); peer.listener.close(); });
  const r = await connect(pool, peer.port);
  await new Promise((res) => setTimeout(res, 300)); // many PING rounds both ways
  t.equal(pool.stats().sessionsOpen, 1);
  t.equal(peer.server.sessionsOpen(), 1);
  t.equal(await roundTrip(r.stream, 'alive'), 'alive');
  const again = await connect(pool, peer.port);
  t.equal(again.sessionId, r.sessionId, 'the same connection is still pooled');
  await roundTrip(again.stream, 'x');
});

/**
 * A whole tunnel: app client ─TCP─▶ relay ─ pool stream ═mTLS HTTP/2═ server stream ─ relay ─TCP─▶ app.
 * Resolves with both app sockets and the relays' results.
 */
async function tunnel(t: { teardown(fn: () => void): void }): Promise<{ client: net.Socket; app: net.Socket; relays: Promise<RelayResult[]> }> {
  const appListener = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => appListener.listen(0, '127.0.0.1', r));
  const appPort = (appListener.address() as net.AddressInfo).port;
  const appSocket = new Promise<net.Socket>((r) => appListener.once('connection', r));
  let serverRelay!: Promise<RelayResult>;
  let started!: () => void;
  const serverRelayStarted = new Promise<void>((r) => { started = r; });
  const peer = await startPeer(certs, {
    onConnect: (req) => {
      void sockets.connect({ host: '127.0.0.1', port: appPort, timeoutMs: 5000 }).then((up) => {
        req.stream.respond({ ':status': 200 });
        serverRelay = relay(req.stream, up);
        started();
      });
    },
  });
  const pool = newPool(certs);
  const front = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => front.once('connection', r));
  const client = net.connect({ host: '127.0.0.1', port: (front.address() as net.AddressInfo).port, allowHalfOpen: true });
  client.on('error', () => {});
  const down = await accepted;
  const { stream } = await connect(pool, peer.port, { authority: `127.0.0.1:${appPort}` });
  const clientRelay = relay(down, stream);
  await serverRelayStarted;
  const app = await appSocket;
  app.on('error', () => {});
  t.teardown(() => { client.destroy(); app.destroy(); pool.destroy(); peer.server.destroy(); peer.listener.close(); front.close(); appListener.close(); });
  return { client, app, relays: Promise.all([clientRelay, serverRelay]) };
}

t.test('a full mTLS tunnel carries 8 MiB each way byte-exact and carries the half-close', async (t) => {
  const { client, app, relays } = await tunnel(t);
  const up = randomBytes(8 << 20);
  const down = randomBytes(8 << 20);
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const collect = (s: net.Socket) => new Promise<Buffer>((r) => { const c: Buffer[] = []; s.on('data', (d: Buffer) => c.push(d)); s.once('end', () => r(Buffer.concat(c))); });
  const atApp = collect(app);
  const atClient = collect(client);
  client.end(up);
  // The app answers only after the client's FIN came through the tunnel.
  const got = await atApp;
  app.end(down);
  t.equal(sha(got), sha(up), 'client → app bytes identical');
  t.equal(sha(await atClient), sha(down), 'app → client bytes identical');
  for (const r of await relays) t.match(r, { aToB: 8 << 20, bToA: 8 << 20, reset: false });
});

t.test('a full mTLS tunnel turns an app reset into ECONNRESET at the client', async (t) => {
  const { client, app, relays } = await tunnel(t);
  const ending = new Promise<string>((r) => {
    client.on('error', (e: NodeJS.ErrnoException) => r(e.code ?? e.message));
    client.on('end', () => r('clean end'));
  });
  client.write('hi');
  await new Promise((r) => app.once('data', r));
  app.resetAndDestroy();
  t.equal(await ending, 'ECONNRESET');
  for (const r of await relays) t.equal(r.reset, true);
});

t.test('many streams sending megabytes both ways on one connection do not deadlock', { timeout: 60_000 }, async (t) => {
  // Node stops reading a session's socket while a write is in flight; with 4 MiB / 16 MiB windows
  // two busy peers used to stall forever (src/hbone/read-watchdog.ts).
  const peer = await startPeer(certs);
  const pool = newPool(certs);
  t.teardown(() => { pool.destroy(); peer.server.destroy(); peer.listener.close(); });
  const size = 8 << 20;
  const streams = await Promise.all(Array.from({ length: 8 }, () => connect(pool, peer.port)));
  t.equal(new Set(streams.map((s) => s.sessionId)).size, 1, 'all on one connection');
  const received = await Promise.all(streams.map(async ({ stream }, i) => {
    const payload = Buffer.alloc(size, i + 1);
    const got = new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      stream.on('data', (d: Buffer) => chunks.push(d));
      stream.once('end', () => resolve(Buffer.concat(chunks)));
      stream.once('error', reject);
    });
    for (let off = 0; off < size; off += 1 << 16) {
      if (!stream.write(payload.subarray(off, off + (1 << 16)))) await new Promise((r) => stream.once('drain', r));
    }
    stream.end();
    return (await got).equals(payload);
  }));
  t.same(received, Array(8).fill(true), 'every stream echoed its 8 MiB intact');
});

t.test('a source certificate that cannot be obtained fails with IDENTITY_UNAVAILABLE', async (t) => {
  const peer = await startPeer(certs);
  const broken: CertificateProvider = { getCertificate: () => Promise.reject(new Error('CA unreachable')) };
  const pool = newPool(broken);
  t.teardown(() => { pool.destroy(); peer.server.destroy(); peer.listener.close(); });
  const err = await connect(pool, peer.port).then(() => undefined, (e: unknown) => e);
  t.match(err, { code: 'IDENTITY_UNAVAILABLE', flag: 'IDENTITY_ERROR', message: 'CA unreachable' });
  t.equal(peer.requests.length, 0);
});

t.test('aborting a CONNECT before the response cancels that stream only', async (t) => {
  const stalled: InboundConnect[] = [];
  let serverClosed!: () => void;
  const serverSawCancel = new Promise<void>((r) => { serverClosed = r; });
  const peer = await startPeer(certs, {
    onConnect: (req) => { stalled.push(req); req.stream.once('close', serverClosed); }, // never answers
  });
  const pool = newPool(certs);
  t.teardown(() => { pool.destroy(); peer.server.destroy(); peer.listener.close(); });
  const ac = new AbortController();
  const pending = pool.connect({
    srcIdentity: frontend, expectedIdentities: [cart], nextHop: { ip: '127.0.0.1', port: peer.port },
    authority: '10.0.0.1:80', headers: {}, signal: ac.signal,
  });
  while (stalled.length === 0) await new Promise((r) => setTimeout(r, 5));
  const reason = new Error('client went away');
  ac.abort(reason);
  t.equal(await pending.then(() => 'resolved', (e: unknown) => e), reason);
  await serverSawCancel;
  t.pass('the server stream was closed');
  t.ok(await eventually(() => pool.stats().streamsOpen === 0));
  t.equal(pool.stats().sessionsOpen, 1, 'the connection stays for other streams');
});
