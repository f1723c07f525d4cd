// relay() over real loopback sockets and real HTTP/2 (h2c; TLS is not the relay's concern).
// Two topologies, every case run on both:
//   tcp:  app client ─TCP─▶ [accepted] relay [dialed] ─TCP─▶ app server
//   h2:   app client ─TCP─▶ [accepted] relay [CONNECT stream] ═HTTP/2═ [server stream] relay [dialed] ─TCP─▶ app server
import t from 'tap';
import { createHash } from 'node:crypto';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { relay, type RelayResult } from './relay.js';

interface Harness {
  /** The app client's socket (connected through the relay chain). */
  client: net.Socket;
  /** The app server's accepted socket. */
  server: net.Socket;
  /** Results of every relay in the chain (1 for tcp, 2 for h2), client side first. */
  results: Promise<RelayResult[]>;
  /** Bytes the client-side relay reported to its counter. */
  counted: { aToB: number; bToA: number };
  abort(reason?: Error): void;
  cleanup(): Promise<void>;
}

function listen(handler: (s: net.Socket) => void): Promise<net.Server> {
  const srv = net.createServer({ allowHalfOpen: true }, handler);
  return new Promise((r) => srv.listen(0, '127.0.0.1', () => r(srv)));
}
const portOf = (s: net.Server | http2.Http2Server) => (s.address() as AddressInfo).port;

function dial(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
  });
}

function once<T>(emitter: NodeJS.EventEmitter, event: string): Promise<T> {
  return new Promise((r) => emitter.once(event, r as never));
}

async function harness(kind: 'tcp' | 'h2'): Promise<Harness> {
  const abort = new AbortController();
  const counted = { aToB: 0, bToA: 0 };
  const counter = { addClientToServer: (n: number) => { counted.aToB += n; }, addServerToClient: (n: number) => { counted.bToA += n; } };
  const app = await listen((s) => s.on('error', () => {}));
  const appServerSock = once<net.Socket>(app, 'connection');
  const results: Promise<RelayResult>[] = [];
  const closers: (() => void)[] = [() => app.close()];

  let accepted!: Promise<net.Socket>;
  const front = await listen(() => {});
  accepted = once<net.Socket>(front, 'connection');
  closers.push(() => front.close());

  if (kind === 'tcp') {
    const client = await dial(portOf(front));
    const p1 = await accepted;
    const p2 = await dial(portOf(app));
    results.push(relay(p1, p2, { signal: abort.signal, counter }));
    const server = await appServerSock;
    return {
      client, server, counted,
      results: Promise.all(results),
      abort: (r) => abort.abort(r),
      cleanup: async () => { client.destroy(); server.destroy(); closers.forEach((c) => c()); },
    };
  }

  // h2: a plain HTTP/2 server whose streams are relayed to the app server.
  const h2srv = http2.createServer({ settings: { initialWindowSize: 4 << 20 } });
  const serverSideDone = new Promise<RelayResult>((resolveServer) => {
    h2srv.on('stream', (stream) => {
      stream.on('error', () => {});
      void dial(portOf(app)).then((up) => {
        stream.respond({ ':status': 200 });
        resolveServer(relay(stream, up));
      });
    });
  });
  await new Promise<void>((r) => h2srv.listen(0, '127.0.0.1', r));
  const session = http2.connect(`http://127.0.0.1:${portOf(h2srv)}`, { settings: { initialWindowSize: 4 << 20 } });
  session.on('error', () => {});
  const client = await dial(portOf(front));
  const p1 = await accepted;
  const stream = session.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${portOf(app)}` });
  stream.on('error', () => {});
  await once(stream, 'response');
  results.push(relay(p1, stream, { signal: abort.signal, counter }));
  results.push(serverSideDone);
  const server = await appServerSock;
  closers.push(() => { session.destroy(); h2srv.close(); });
  return {
    client, server, counted,
    results: Promise.all(results),
    abort: (r) => abort.abort(r),
    cleanup: async () => { client.destroy(); server.destroy(); closers.forEach((c) => c()); },
  };
}

/** Collects everything a socket reads and how its read side ended. */
function reader(s: net.Socket): Promise<{ data: Buffer; ending: 'end' | string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    s.once('end', () => resolve({ data: Buffer.concat(chunks), ending: 'end' }));
    s.once('error', (e: NodeJS.ErrnoException) => resolve({ data: Buffer.concat(chunks), ending: e.code ?? e.message }));
    s.once('close', () => resolve({ data: Buffer.concat(chunks), ending: 'close-without-end' }));
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Writes `total` pseudo-random bytes in 64 KiB chunks honouring backpressure; returns their hash. */
async function writeRandom(s: net.Socket, total: number, seed: number): Promise<string> {
  const h = createHash('sha256');
  let x = seed >>> 0;
  for (let sent = 0; sent < total; ) {
    const n = Math.min(65536, total - sent);
    const chunk = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i += 4) {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      chunk.writeUInt32LE(x, i);
    }
    h.update(chunk);
    sent += n;
    if (!s.write(chunk)) await once(s, 'drain');
  }
  s.end();
  return h.digest('hex');
}

function hashReader(s: net.Socket): Promise<{ bytes: number; hash: string }> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    let bytes = 0;
    s.on('data', (d: Buffer) => { bytes += d.length; h.update(d); });
    s.once('end', () => resolve({ bytes, hash: h.digest('hex') }));
    s.once('error', reject);
  });
}

for (const kind of ['tcp', 'h2'] as const) {
  const via = kind === 'tcp' ? 'TCP to TCP' : 'TCP through an HTTP/2 CONNECT stream';

  t.test(`${via}: a connection that sends nothing closes cleanly on both sides with 0 bytes`, async (t) => {
    const h = await harness(kind);
    t.teardown(h.cleanup);
    const atServer = reader(h.server);
    const atClient = reader(h.client);
    h.client.end();
    const s = await atServer;
    t.equal(s.ending, 'end', 'server sees a FIN');
    t.equal(s.data.length, 0);
    h.server.end();
    const c = await atClient;
    t.equal(c.ending, 'end', 'client sees a FIN');
    t.equal(c.data.length, 0);
    const results = await h.results;
    for (const r of results) t.match(r, { aToB: 0, bToA: 0, reset: false });
    t.equal(results[0]!.error, undefined);
  });

  t.test(`${via}: a single byte goes through and comes back`, async (t) => {
    const h = await harness(kind);
    t.teardown(h.cleanup);
    h.server.on('data', (d: Buffer) => h.server.write(d));
    h.server.on('end', () => h.server.end());
    const atClient = reader(h.client);
    h.client.end(Buffer.from([0x7f]));
    const c = await atClient;
    t.same([...c.data], [0x7f]);
    t.equal(c.ending, 'end');
    const [r] = await h.results;
    t.match(r, { aToB: 1, bToA: 1, reset: false });
    t.same(h.counted, { aToB: 1, bToA: 1 }, 'the counter was told of the copied bytes');
  });

  t.test(`${via}: 64 MiB each way arrive byte-exact (sha256) while both directions run at once`, async (t) => {
    const h = await harness(kind);
    t.teardown(h.cleanup);
    const size = 64 * 1024 * 1024;
    const atServer = hashReader(h.server);
    const atClient = hashReader(h.client);
    const [sentUp, sentDown] = await Promise.all([writeRandom(h.client, size, 1), writeRandom(h.server, size, 2)]);
    const [up, down] = await Promise.all([atServer, atClient]);
    t.equal(up.bytes, size);
    t.equal(up.hash, sentUp, 'client → server bytes are identical');
    t.equal(down.bytes, size);
    t.equal(down.hash, sentDown, 'server → client bytes are identical');
    const results = await h.results;
    for (const r of results) t.match(r, { aToB: size, bToA: size, reset: false });
    t.same(h.counted, { aToB: size, bToA: size });
  });

  t.test(`${via}: the server can still reply after the client's FIN arrived (half-close carried)`, async (t) => {
    const h = await harness(kind);
    t.teardown(h.cleanup);
    const got: Buffer[] = [];
    h.server.on('data', (d: Buffer) => got.push(d));
    h.server.on('end', () => {
      // Reply only once the request's FIN is here.
      h.server.end(`reply to ${Buffer.concat(got).toString()}`);
    });
    const atClient = reader(h.client);
    h.client.end('request');
    const c = await atClient;
    t.equal(c.data.toString(), 'reply to request');
    t.equal(c.ending, 'end');
    const [r] = await h.results;
    t.match(r, { aToB: 7, bToA: 16, reset: false });
  });

  t.test(`${via}: the client can still send after the server's FIN arrived (half-close the other way)`, async (t) => {
    const h = await harness(kind);
    t.teardown(h.cleanup);
    const atServer = reader(h.server);
    h.client.on('end', () => h.client.end('late data'));
    h.client.resume();
    h.server.end('bye');
    const s = await atServer;
    t.equal(s.data.toString(), 'late data');
    t.equal(s.ending, 'end');
    const [r] = await h.results;
    t.match(r, { aToB: 9, bToA: 3, reset: false });
  });

  t.test(`${via}: a server reset reaches the client as ECONNRESET, not a clean end`, async (t) => {
    const h = await harness(kind);
    t.teardown(h.cleanup);
    const atClient = reader(h.client);
    h.client.write('hello');
    await once(h.server, 'data');
    h.server.resetAndDestroy();
    const c = await atClient;
    t.equal(c.ending, 'ECONNRESET');
    const results = await h.results;
    for (const r of results) {
      t.equal(r.reset, true, 'relay reports the reset');
      t.equal(r.error, undefined, 'a reset is swallowed as a normal close');
    }
  });

  t.test(`${via}: a client reset reaches the server as ECONNRESET`, async (t) => {
    const h = await harness(kind);
    t.teardown(h.cleanup);
    const atServer = reader(h.server);
    h.server.write('hello');
    await once(h.client, 'data');
    h.client.resetAndDestroy();
    const s = await atServer;
    t.equal(s.ending, 'ECONNRESET');
    const results = await h.results;
    for (const r of results) t.equal(r.reset, true);
  });

  t.test(`${via}: aborting the signal closes both sides and reports the reason`, async (t) => {
    const h = await harness(kind);
    t.teardown(h.cleanup);
    h.server.write('y');
    await once(h.client, 'data');
    const atClient = reader(h.client);
    const atServer = reader(h.server);
    h.client.write('x');
    await once(h.server, 'data');
    const reason = new Error('policy revoked');
    h.abort(reason);
    const [c, s] = await Promise.all([atClient, atServer]);
    t.match(c.ending, /^(end|ECONNRESET)$/, 'the client connection ended');
    t.match(s.ending, /^(end|ECONNRESET)$/, 'the server connection ended');
    const [r] = await h.results;
    t.equal(r!.error, reason);
    t.match(r, { aToB: 1, bToA: 1 });
  });
}

t.test('a peer that closes its stream with an error code after END_STREAM still resets the TCP side', async (t) => {
  // Node's stream.close(code) sends END_STREAM and only then RST_STREAM (perf-notes.md
  // "Pitfalls"): the relay must not leave that as a clean end.
  const h2srv = http2.createServer();
  h2srv.on('stream', (stream) => {
    stream.on('error', () => {});
    stream.respond({ ':status': 200 });
    stream.write('partial', () => setTimeout(() => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR), 20));
  });
  await new Promise<void>((r) => h2srv.listen(0, '127.0.0.1', r));
  const session = http2.connect(`http://127.0.0.1:${portOf(h2srv)}`);
  session.on('error', () => {});
  const front = await listen(() => {});
  const accepted = once<net.Socket>(front, 'connection');
  const client = await dial(portOf(front));
  const p1 = await accepted;
  t.teardown(() => { client.destroy(); session.destroy(); h2srv.close(); front.close(); });
  const stream = session.request({ ':method': 'CONNECT', ':authority': '127.0.0.1:1' });
  stream.on('error', () => {});
  await once(stream, 'response');
  const done = relay(p1, stream);
  const ending = new Promise<string>((r) => {
    client.on('error', (e: NodeJS.ErrnoException) => r(e.code ?? e.message));
    client.on('close', () => r('clean close'));
  });
  const chunks: Buffer[] = [];
  client.on('data', (d: Buffer) => chunks.push(d));
  // Keep talking: a reset that follows the FIN shows up on the client's next write.
  client.on('end', () => client.write('more'));
  const r = await done;
  t.equal(r.reset, true);
  client.end();
  t.match(await ending, /^(ECONNRESET|EPIPE)$/, 'the client sees the connection reset');
  t.equal(Buffer.concat(chunks).toString(), 'partial', 'bytes before the reset were delivered');
});

const eofResets: [string, (s: http2.ServerHttp2Stream) => void, number][] = [
  ['RST_STREAM NO_ERROR without END_STREAM', (s) => s.destroy(), http2.constants.NGHTTP2_NO_ERROR],
  ['END_STREAM then RST_STREAM CANCEL', (s) => s.close(http2.constants.NGHTTP2_CANCEL), http2.constants.NGHTTP2_CANCEL],
];
for (const [name, close, code] of eofResets) {
  t.test(`a peer's ${name} counts as end of stream: the TCP side gets a FIN, not a reset`, async (t) => {
    // hbone.md §6: NO_ERROR and CANCEL are EOF (Rust ztunnel cancels streams it drops).
    const h2srv = http2.createServer();
    h2srv.on('stream', (stream) => {
      stream.on('error', () => {});
      stream.respond({ ':status': 200 });
      stream.write('data', () => close(stream));
    });
    await new Promise<void>((r) => h2srv.listen(0, '127.0.0.1', r));
    const session = http2.connect(`http://127.0.0.1:${portOf(h2srv)}`);
    session.on('error', () => {});
    const front = await listen(() => {});
    const accepted = once<net.Socket>(front, 'connection');
    const client = await dial(portOf(front));
    const p1 = await accepted;
    t.teardown(() => { client.destroy(); session.destroy(); h2srv.close(); front.close(); });
    const stream = session.request({ ':method': 'CONNECT', ':authority': '127.0.0.1:1' });
    stream.on('error', () => {});
    await once(stream, 'response');
    const done = relay(p1, stream);
    const c = await reader(client);
    t.equal(c.ending, 'end');
    t.equal(c.data.toString(), 'data');
    const r = await done;
    t.equal(r.reset, false);
    t.equal(r.error, undefined);
    t.equal(stream.rstCode, code, 'the peer really sent that code');
  });
}

t.test('ends that already finished before the relay started still complete the relay', async (t) => {
  const front = await listen(() => {});
  const accepted = once<net.Socket>(front, 'connection');
  const client = await dial(portOf(front));
  const p1 = await accepted;
  const app = await listen((s) => { s.on('error', () => {}); s.on('end', () => s.end()); s.resume(); });
  t.teardown(() => { client.destroy(); front.close(); app.close(); });
  // The client sent its bytes and FIN before the proxy got around to relaying.
  client.end('early');
  // Wait until the bytes reached the proxy's socket (unread: the relay will read them).
  for (const deadline = Date.now() + 5_000; p1.readableLength < 'early'.length && Date.now() < deadline;) await new Promise((r) => setImmediate(r));
  t.equal(p1.readableLength, 'early'.length, 'the bytes wait unread at the proxy');
  const p2 = await dial(portOf(app));
  const atClient = reader(client);
  const r = await relay(p1, p2);
  t.match(r, { aToB: 5, bToA: 0, reset: false });
  t.equal((await atClient).ending, 'end');
});

t.test('relay leaves no listeners behind on ends that outlive it', async (t) => {
  const front = await listen(() => {});
  const accepted = once<net.Socket>(front, 'connection');
  const client = await dial(portOf(front));
  const p1 = await accepted;
  const app = await listen((s) => { s.on('error', () => {}); s.on('end', () => s.end()); s.resume(); });
  t.teardown(() => { client.destroy(); front.close(); app.close(); });
  const p2 = await dial(portOf(app));
  const before = ['data', 'end', 'error', 'close', 'drain', 'finish'].map((e) => p1.listenerCount(e) + p2.listenerCount(e));
  client.resume();
  client.end();
  await relay(p1, p2);
  const after = ['data', 'end', 'error', 'close', 'drain', 'finish'].map((e) => p1.listenerCount(e) + p2.listenerCount(e));
  t.same(after, before);
});
