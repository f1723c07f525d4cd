// What a hostile or careless peer can do to 15008 (issue 16 items 1–4, 11–13; issue 14: the WARN
// on a failed handshake, RST_STREAM(NO_ERROR) after an error response). One real daemon serving
// workload b on B, apps on B's address, and clients no one on the project wrote for the daemon:
// raw TCP, a raw HTTP/2 frame writer (test/helpers/h2-raw.ts) over real TLS, Node's http2 client
// with certificates of every wrong kind. Assertions are what a client or an operator sees: frames,
// resets, statuses, log lines, and the daemon's open file descriptors (/proc/<pid>/fd).
import { readdirSync } from 'node:fs';
import http2 from 'node:http2';
import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import { spawn } from 'node:child_process';
import t from 'tap';
import { formatIdentity } from '../../src/core/spiffe.js';
import { LocalCa } from '../../src/identity/local-ca.js';
import type { WorkloadCertificate } from '../../src/tls/certificate.js';
import { createRootCa, issueLeaf, testId, type TestAuthority } from '../helpers/certs.js';
import { dedicatedEnv, randomLoopback, startDaemon, tempDir, writeTemp, type Daemon } from '../helpers/daemon.js';
import { FRAME, H2_ERROR, RawH2, dataFrame, frame, headersFrame, rstStreamFrame } from '../helpers/h2-raw.js';
import { startEchoServer } from '../helpers/servers.js';

const B = randomLoopback();
const SA_A = testId('sa-a', 'shop');
const dir = tempDir('zt-harden-');

// Apps on B: an echo server, a sink that accepts and never reads, and a port nothing listens on.
const echo = await startEchoServer(B);
const sinkSockets: Socket[] = [];
const sink = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
  s.on('error', () => {});
  sinkSockets.push(s);
});
await new Promise<void>((r) => sink.listen(0, B, r));
const sinkPort = (sink.address() as net.AddressInfo).port;
const closedPort = await new Promise<number>((resolve) => {
  const s = net.createServer().listen(0, B, () => {
    const p = (s.address() as net.AddressInfo).port;
    s.close(() => resolve(p));
  });
});
t.teardown(() => {
  echo.close();
  for (const s of sinkSockets) s.destroy();
  sink.close();
});

const config = writeTemp(dir, 'b.yaml', `
workloads:
- uid: Kubernetes//Pod/shop/b
  name: b
  namespace: shop
  serviceAccount: sa-b
  trustDomain: cluster.local
  clusterId: Kubernetes
  workloadIps: ["${B}"]
  protocol: HBONE
  workloadName: b
  canonicalName: b
  services: {}
`);

let b: Daemon;
let ca: LocalCa;
let client: WorkloadCertificate;
let caAuthority: TestAuthority;

t.before(async () => {
  ca = await LocalCa.open({ stateDir: `${dir}/ca`, ttlMs: 24 * 3600_000 });
  client = await ca.issue(SA_A);
  const { readFileSync } = await import('node:fs');
  const certPem = readFileSync(`${dir}/ca/ca-cert.pem`, 'utf8');
  const keyPem = readFileSync(`${dir}/ca/ca-key.pem`, 'utf8');
  caAuthority = { certPem, keyPem, chainPem: [certPem], rootPem: certPem };
  b = await startDaemon({ name: 'B', env: dedicatedEnv({ workloadInfo: 'shop/b/sa-b', ip: B, config, stateDir: `${dir}/ca` }) });
});
t.teardown(async () => {
  const code = await b?.stop();
  if (b && (code !== 0 || b.stderr.length)) t.comment(`daemon exit ${code}; stderr: ${b.stderr.join('').slice(0, 3000)}`);
});

const fdCount = () => readdirSync(`/proc/${b.child.pid}/fd`).length;

/** Polls `pred` every 50 ms until true; rejects after `timeoutMs` with `what`. */
async function until(pred: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** RFC 9113 §5.4.1: after GOAWAY for a connection error the endpoint MUST close the connection (bounded wait). */
function closedWithin(c: RawH2, ms: number): Promise<void> {
  return Promise.race([c.done, new Promise<void>((_, reject) => setTimeout(() => reject(new Error(`TCP connection still open ${ms} ms after GOAWAY`)), ms).unref())]);
}

function h2Session(cert: WorkloadCertificate = client, extra: tls.ConnectionOptions = {}): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://${B}:15008`, {
      ca: [...cert.rootsPem],
      cert: cert.chainPem.join(''),
      key: cert.keyPem,
      ALPNProtocols: ['h2'],
      checkServerIdentity: () => undefined,
      ...extra,
    });
    session.once('connect', () => resolve(session));
    session.once('error', reject);
  });
}

function rawH2(cert: WorkloadCertificate = client, alpn: readonly string[] | null = ['h2']): Promise<RawH2> {
  return RawH2.connect({ host: B, port: 15008, cert: cert.chainPem.join(''), key: cert.keyPem, ca: cert.rootsPem, alpn });
}

function connectStatus(session: http2.ClientHttp2Session, authority: string): Promise<{ status: number; req: http2.ClientHttp2Stream }> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'CONNECT', ':authority': authority }, { endStream: false });
    req.on('response', (h) => resolve({ status: Number(h[':status']), req }));
    req.on('error', () => {});
    req.on('close', () => reject(new Error(`stream closed without a response (rstCode ${req.rstCode})`)));
  });
}

t.test('item 13: a client that offers no ALPN is served HTTP/2 (as Istio\'s ztunnel does)', async (t) => {
  const sock = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect({ host: B, port: 15008, ca: [...client.rootsPem], cert: client.chainPem.join(''), key: client.keyPem, checkServerIdentity: () => undefined });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
  t.equal(sock.alpnProtocol, false, 'no protocol was negotiated');
  const session = http2.connect(`https://${B}:15008`, { createConnection: () => sock });
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  const { status, req } = await connectStatus(session, `${B}:${echo.port}`);
  t.equal(status, 200);
  const back = await new Promise<string>((resolve) => {
    let got = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (got += d));
    req.on('end', () => resolve(got));
    req.end('no alpn');
  });
  t.equal(back, 'no alpn', 'bytes cross the tunnel');
});

t.test('item 13: CONNECT targets Istio answers 400 to: an IPv4-mapped IPv6 authority and port 0', async (t) => {
  const session = await h2Session();
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  const before = echo.accepted.length;
  t.equal((await connectStatus(session, `[::ffff:${B}]:${echo.port}`)).status, 400, '[::ffff:a.b.c.d]:port is an ip mismatch');
  t.equal((await connectStatus(session, `${B}:0`)).status, 400, 'port 0');
  t.equal(echo.accepted.length, before, 'the app was never dialled');
  const line = await b.waitForLog((l) => l.msg === 'connection failed' && String(l['error']).includes(`${B}:0`));
  t.equal(line.level, 'warn', 'port 0 is a WARN "connection failed", not an ERROR record');
});

t.test('item 13: a NUL, CR or LF in a header value never reaches the daemon (the field is dropped)', async (t) => {
  for (const [i, bad] of ['a\0b', 'a\rb', 'a\nb'].entries()) {
    const c = await rawH2();
    t.teardown(() => c.destroy());
    const local = `${c.socket.localAddress}:${c.socket.localPort}`;
    c.write(headersFrame(1, [[':method', 'CONNECT'], [':authority', `${B}:${closedPort}`], ['baggage', Buffer.from(`k8s.namespace.name=${bad}evil${i}`, 'latin1')]]));
    await c.waitFor((f) => f.streamId === 1 && (f.type === FRAME.RST_STREAM || f.type === FRAME.HEADERS));
    await b.waitForLog((l) => l.msg === 'connection complete' && l['src.addr'] === local);
  }
  t.notOk(b.logs.some((l) => JSON.stringify(l).includes('evil')), 'no log line carries the bad value');
  const metrics = await (await b.http('stats', '/metrics')).text();
  t.notMatch(metrics, /evil/, 'no metric label carries it');
});

t.test('item 13: an unknown 8 KB hostname is logged truncated', async (t) => {
  const session = await h2Session();
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  const host = `evil${'x'.repeat(8000)}.example`;
  const { status } = await connectStatus(session, `${host}:80`);
  t.equal(status, 503, 'an unknown hostname is 503 as before');
  const line = await b.waitForLog((l) => l.msg === 'connection failed' && String(l['error']).includes('evil'));
  const err = String(line['error']);
  t.ok(err.length < 400, `error field bounded (${err.length} chars)`);
  t.match(err, /…\(8012 chars\)$/, 'the cut is marked with the full length');
});

t.test('issue 14: after a 401/503 the server resets the stream with NO_ERROR (the client need not end it)', async (t) => {
  const session = await h2Session();
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  const { status, req } = await connectStatus(session, `${B}:${closedPort}`);
  t.equal(status, 503);
  if (!req.closed) await new Promise((r) => req.once('close', r));
  t.equal(req.rstCode, http2.constants.NGHTTP2_NO_ERROR, 'RST_STREAM(NO_ERROR)');
});

t.test('item 4: after a connection error the daemon sends the right GOAWAY code and closes the TCP connection', async (t) => {
  await t.test('a WINDOW_UPDATE that overflows the connection window: FLOW_CONTROL_ERROR', async (t) => {
    const c = await rawH2();
    t.teardown(() => c.destroy());
    await c.waitFor((f) => f.type === FRAME.SETTINGS);
    const inc = Buffer.alloc(4);
    inc.writeUInt32BE(0x7fffffff);
    c.write(frame(FRAME.WINDOW_UPDATE, 0, 0, inc));
    const g = await c.goaway();
    t.equal(g.code, H2_ERROR.FLOW_CONTROL_ERROR);
    await closedWithin(c, 5_000);
    t.pass('the daemon closed the TCP connection');
  });
  await t.test('a DATA frame on stream 0: PROTOCOL_ERROR', async (t) => {
    const c = await rawH2();
    t.teardown(() => c.destroy());
    await c.waitFor((f) => f.type === FRAME.SETTINGS);
    c.write(dataFrame(0, Buffer.from('x')));
    const g = await c.goaway();
    t.equal(g.code, H2_ERROR.PROTOCOL_ERROR);
    await closedWithin(c, 5_000);
    t.pass('the daemon closed the TCP connection');
  });
});

t.test('item 3: rapid reset (HEADERS + RST_STREAM) is answered with GOAWAY ENHANCE_YOUR_CALM, and few dials reach the app', async (t) => {
  const c = await rawH2();
  t.teardown(() => c.destroy());
  await c.waitFor((f) => f.type === FRAME.SETTINGS);
  const before = echo.accepted.length;
  const burst: Buffer[] = [];
  for (let sid = 1; sid < 2 * 5_000; sid += 2) {
    burst.push(headersFrame(sid, [[':method', 'CONNECT'], [':authority', `${B}:${echo.port}`]]), rstStreamFrame(sid, H2_ERROR.CANCEL));
  }
  c.write(Buffer.concat(burst));
  await closedWithin(c, 5_000);
  const codes = c.frames.filter((f) => f.type === FRAME.GOAWAY).map((f) => f.payload.readUInt32BE(4));
  t.equal(codes[0], H2_ERROR.ENHANCE_YOUR_CALM, `GOAWAY codes ${codes.join(',')}`);
  const dials = echo.accepted.length - before;
  t.comment(`app connections from 5,000 reset streams: ${dials}`);
  t.ok(dials <= 200, `reset streams do not dial the app (got ${dials})`);
});

t.test('item 3: a closed session aborts its pending upstream dials at once', async (t) => {
  // An upstream that never answers a SYN: a listener with a full accept queue that never accepts.
  const py = spawn('python3', ['-c', `
import socket, sys, time
s = socket.socket(); s.bind((sys.argv[1], 0)); s.listen(0)
print(s.getsockname()[1], flush=True)
fill = [socket.create_connection((sys.argv[1], s.getsockname()[1])) for _ in range(4)]
time.sleep(3600)
`, B], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => py.kill('SIGKILL'));
  const port = await new Promise<number>((resolve) => py.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
  const session = await h2Session();
  session.on('error', () => {});
  const local = `${(session.socket as Socket).localAddress}:${(session.socket as Socket).localPort}`;
  const N = 20;
  const base0 = fdCount();
  for (let i = 0; i < N; i++) {
    const req = session.request({ ':method': 'CONNECT', ':authority': `${B}:${port}` }, { endStream: false });
    req.on('error', () => {});
  }
  // Every CONNECT reached the daemon and is dialling: its fds grew by one per stream.
  await until(() => fdCount() >= base0 + N, `${N} dials in progress`);
  session.destroy();
  const records = await until(
    () => b.logs.filter((l) => l.msg === 'connection complete' && l['src.addr'] === local).length === N,
    'every dial finished', 30_000,
  ).then(() => b.logs.filter((l) => l.msg === 'connection complete' && l['src.addr'] === local));
  for (const r of records) t.notMatch(String(r['error']), /timed out|ETIMEDOUT/i, 'ended by the client leaving, not by the connect timeout');
});

t.test('item 1: streams abandoned on an app that does not read release the upstream socket and its fd', async (t) => {
  const baseline = fdCount();
  const sinkBefore = sinkSockets.length;
  const ways = ['session close', 'RST_STREAM CANCEL', 'END_STREAM then disconnect'] as const;
  for (const way of ways) {
    for (let i = 0; i < 5; i++) {
      const session = await h2Session();
      session.on('error', () => {});
      const { status, req } = await connectStatus(session, `${B}:${sinkPort}`);
      t.equal(status, 200);
      // Send far more than the socket buffers and the stream window hold (the app never reads),
      // until the daemon stops taking bytes: the client's own buffer stays put.
      const chunk = Buffer.alloc(1024 * 1024);
      for (let n = 0; n < 24; n++) req.write(chunk);
      let last = -1;
      let still = 0;
      await until(() => {
        const now = req.bufferSize;
        still = now > 0 && now === last ? still + 1 : 0;
        last = now;
        return still >= 4;
      }, 'the daemon stopped taking bytes');
      if (way === 'RST_STREAM CANCEL') {
        req.close(http2.constants.NGHTTP2_CANCEL);
        await new Promise((r) => req.once('close', r));
        session.destroy();
      } else if (way === 'END_STREAM then disconnect') {
        req.end();
        session.destroy();
      } else {
        session.destroy();
      }
    }
  }
  const opened = sinkSockets.slice(sinkBefore);
  t.equal(opened.length, 15, 'every stream reached the app');
  await until(() => fdCount() <= baseline + 2, `daemon fds back to baseline ${baseline} (now ${fdCount()})`, 30_000);
  t.pass(`fds back to ${fdCount()} (baseline ${baseline})`);
});

t.test('item 2: a TCP connection that never starts TLS is closed at the handshake deadline, logged and counted', async (t) => {
  const s = net.connect({ host: B, port: 15008 });
  s.on('error', () => {});
  await new Promise((r) => s.once('connect', r));
  const local = `${s.localAddress}:${s.localPort}`;
  await new Promise((r) => s.once('close', r));
  t.pass('the daemon closed the idle connection');
  const line = await b.waitForLog((l) => l.msg === 'connection failed' && l['src.addr'] === local);
  t.equal(line.level, 'warn');
  t.equal(line['direction'], 'inbound');
  t.match(String(line['error']), /handshake/);
});

t.test('issue 14: a failed inbound TLS handshake is a WARN "connection failed" (as Istio\'s ztunnel logs it)', async (t) => {
  const otherRoot = await createRootCa();
  const rogue = await issueLeaf(otherRoot, { uris: [formatIdentity(SA_A)] });
  const s = tls.connect({ host: B, port: 15008, cert: rogue.chainPem.join(''), key: rogue.keyPem, ALPNProtocols: ['h2'], rejectUnauthorized: false });
  s.on('error', () => {});
  await new Promise((r) => s.once('secureConnect', r));
  const local = `${s.localAddress}:${s.localPort}`;
  await new Promise((r) => s.once('close', r));
  const line = await b.waitForLog((l) => l.msg === 'connection failed' && l['src.addr'] === local);
  t.equal(line.level, 'warn');
  t.equal(line['component'], 'access');
  t.equal(line['dst.addr'], `${B}:15008`);
  t.equal(line['direction'], 'inbound');
  t.match(String(line['error']), /^tls handshake error: /);
});

t.test('item 11: a client certificate that is a CA (CA:TRUE) is refused before any HTTP/2 frame, and logged', async (t) => {
  const caLeaf = await issueLeaf(caAuthority, { uris: [formatIdentity(SA_A)], ca: true });
  const s = tls.connect({ host: B, port: 15008, cert: caLeaf.chainPem.join(''), key: caLeaf.keyPem, ALPNProtocols: ['h2'], rejectUnauthorized: false });
  let error: string | undefined;
  s.on('error', (e: NodeJS.ErrnoException) => (error = e.code));
  let bytes = 0;
  s.on('data', (d: Buffer) => (bytes += d.length));
  await new Promise((r) => s.once('secureConnect', r));
  const local = `${s.localAddress}:${s.localPort}`;
  await new Promise((r) => s.once('close', r));
  t.equal(bytes, 0, 'no SETTINGS frame: the HTTP/2 session never started');
  t.equal(error, 'ECONNRESET', 'the connection is reset, not ended cleanly (Node cannot send the TLS alert)');
  const line = await b.waitForLog((l) => l.msg === 'connection failed' && l['src.addr'] === local);
  t.equal(line.level, 'warn');
  t.match(String(line['error']), /CA:TRUE/);
});

t.test('item 12: two URI SANs: accepted when any has our trust domain, the identity is the first SPIFFE SAN (Istio\'s rule)', async (t) => {
  const foreign = 'spiffe://evil.example/ns/shop/sa/sa-a';
  const ours = formatIdentity(SA_A);
  for (const uris of [[foreign, ours], [ours, foreign]]) {
    const cert = await issueLeaf(caAuthority, { uris });
    const session = await h2Session(cert);
    session.on('error', () => {});
    const local = `${(session.socket as Socket).localAddress}:${(session.socket as Socket).localPort}`;
    const { status, req } = await connectStatus(session, `${B}:${echo.port}`);
    t.equal(status, 200, `[${uris.join(', ')}] accepted`);
    req.end();
    req.resume();
    await new Promise((r) => req.once('close', r));
    session.destroy();
    const line = await b.waitForLog((l) => l.msg === 'connection complete' && l['src.addr'] === local);
    t.equal(line['src.identity'], uris[0], 'the peer identity is the first URI SAN');
  }
  const onlyForeign = await issueLeaf(caAuthority, { uris: [foreign] });
  await t.rejects(h2Session(onlyForeign).then(async (s) => {
    s.on('error', () => {});
    try {
      await connectStatus(s, `${B}:${echo.port}`);
    } finally {
      s.destroy();
    }
  }), 'a certificate with only a foreign trust domain is refused');
});

t.test('item 6: a peer\'s baggage cannot put arbitrary values or lengths into metric labels', async (t) => {
  const session = await h2Session();
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  const huge = 'z'.repeat(60_000);
  const baggage = `k8s.namespace.name=${huge},k8s.deployment.name=has spaces,k8s.cluster.name=peer-cluster`;
  const req = session.request({ ':method': 'CONNECT', ':authority': `${B}:${echo.port}`, baggage }, { endStream: false });
  req.on('error', () => {});
  await new Promise((r) => req.once('response', r));
  req.end();
  req.resume();
  await new Promise((r) => req.once('close', r));
  const metrics = await (await b.http('stats', '/metrics')).text();
  t.match(metrics, /source_cluster="peer-cluster"/, 'a name-shaped value from an unknown source is used, as Istio does');
  t.notMatch(metrics, /zzzzzzzzzz/, 'a 60 KB value is not');
  t.notMatch(metrics, /has spaces/, 'a value that is not a name is not');
});

t.test('item 2: with its fds used up by idle connections, the daemon stays up, its tunnels keep working and readiness comes back', async (t) => {
  const ip = randomLoopback();
  const cfg = writeTemp(dir, 'c.yaml', `
workloads:
- uid: Kubernetes//Pod/shop/c
  name: c
  namespace: shop
  serviceAccount: sa-c
  trustDomain: cluster.local
  workloadIps: ["${ip}"]
  protocol: HBONE
  services: {}
`);
  const app = await startEchoServer(ip);
  t.teardown(() => app.close());
  const c = await startDaemon({ name: 'C', wrapper: ['prlimit', '--nofile=160:160', '--'], env: dedicatedEnv({ workloadInfo: 'shop/c/sa-c', ip, config: cfg, stateDir: `${dir}/ca` }) });
  t.teardown(() => c.stop());
  // An established tunnel before the flood.
  const session = await new Promise<http2.ClientHttp2Session>((resolve, reject) => {
    const s = http2.connect(`https://${ip}:15008`, { ca: [...client.rootsPem], cert: client.chainPem.join(''), key: client.keyPem, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  const req = session.request({ ':method': 'CONNECT', ':authority': `${ip}:${app.port}` }, { endStream: false });
  await new Promise((r) => req.once('response', r));
  const echoOnce = (text: string) => new Promise<string>((resolve) => {
    req.once('data', (d: Buffer) => resolve(d.toString()));
    req.write(text);
  });
  t.equal(await echoOnce('before'), 'before');
  // The flood: more idle TCP connections than the daemon has fds.
  const flood: net.Socket[] = [];
  for (let i = 0; i < 300; i++) {
    const s = net.connect({ host: ip, port: 15008 });
    s.on('error', () => {});
    flood.push(s);
  }
  t.teardown(() => flood.forEach((s) => s.destroy()));
  await until(() => flood.every((s) => !s.connecting || s.destroyed), 'every flood connection connected or failed');
  t.equal(await echoOnce('during'), 'during', 'the established tunnel carries bytes while fds are short');
  // The handshake deadline frees the fds; readiness answers again and the daemon is still up.
  await until(() => flood.every((s) => s.destroyed || s.readableEnded || s.closed), 'the daemon closed the idle connections', 40_000);
  const ready = await c.http('readiness', '/healthz/ready');
  t.equal(ready.status, 200, 'readiness answers');
  t.equal(c.child.exitCode, null, 'the daemon is still running');
  t.equal(await echoOnce('after'), 'after', 'the tunnel still works');
});
