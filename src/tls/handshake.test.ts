// Real mTLS handshakes on 127.0.0.1 with serverTlsOptions / clientTlsOptions and the server-side
// checks of verify.ts, as the HBONE listener and pool use them (hbone.md §1).
import t from 'tap';
import net from 'node:net';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { ZtunnelError, isZtunnelError } from '../core/errors.js';
import { formatIdentity, type Identity } from '../core/spiffe.js';
import type { WorkloadCertificate } from './certificate.js';
import { SecureContextCache, checkTlsTuning, clientTlsOptions, createWorkloadContext, serverTlsOptions, type TlsTuning } from './secure-context.js';
import { checkClientTrustDomain, peerIdentity } from './verify.js';
import { createIntermediateCa, createRootCa, createTempCa, issueLeaf, testId, type TempCa } from '../../test/helpers/certs.js';

const TLS13: TlsTuning = { tls12Enabled: false };
const TLS12: TlsTuning = { tls12Enabled: true };
const GUARD_MS = 10_000; // every socket is destroyed after this, so no test can hang

const serverId = testId('server', 'ns-b');
const clientId = testId('client', 'ns-a');

let ca: TempCa;
t.before(async () => {
  ca = await createTempCa();
});
t.teardown(() => ca.cleanup());

type ServerOutcome =
  | { kind: 'secure'; servername: string | false; alpn: string | false | null; protocol: string | null; check: Identity | ZtunnelError }
  | { kind: 'tls-error'; error: Error }
  /** The peer went away before the handshake finished, without a TLS error on our side. */
  | { kind: 'closed' };

interface TestServer {
  port: number;
  next(): Promise<ServerOutcome>;
}

/**
 * A 15008-style listener: a server-side TLSSocket per connection with serverTlsOptions, then
 * checkClientTrustDomain; on failure the socket is destroyed before any byte is written.
 */
async function startServer(t: { teardown(fn: () => unknown): void }, cert: WorkloadCertificate, tuning: TlsTuning): Promise<TestServer> {
  const cache = new SecureContextCache();
  const outcomes: ServerOutcome[] = [];
  const waiters: Array<(o: ServerOutcome) => void> = [];
  const push = (o: ServerOutcome): void => {
    const w = waiters.shift();
    if (w) w(o);
    else outcomes.push(o);
  };
  const sockets = new Set<net.Socket>();
  // Not allowHalfOpen here: with it, a client that aborts its handshake (FIN) leaves this
  // server-side TLSSocket waiting until the guard timeout.
  const server = net.createServer((raw) => {
    sockets.add(raw);
    raw.on('close', () => sockets.delete(raw));
    raw.setTimeout(GUARD_MS, () => raw.destroy());
    const s = new tls.TLSSocket(raw, serverTlsOptions(cache.get(cert, tuning), tuning));
    let reported = false;
    s.on('error', (error) => {
      if (!reported) {
        reported = true;
        push({ kind: 'tls-error', error });
      }
    });
    s.on('close', () => {
      if (!reported) {
        reported = true;
        push({ kind: 'closed' });
      }
    });
    s.on('secure', () => {
      reported = true;
      const check = checkClientTrustDomain(s, cert.identity);
      push({ kind: 'secure', servername: s.servername ?? false, alpn: s.alpnProtocol, protocol: s.getProtocol(), check });
      if (isZtunnelError(check)) s.destroy();
      else s.end(`hello ${formatIdentity(check)}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    next: () => {
      const o = outcomes.shift();
      return o ? Promise.resolve(o) : new Promise((resolve) => waiters.push(resolve));
    },
  };
}

interface ClientOutcome {
  secure: boolean;
  protocol: string | null;
  alpn: string | false | null;
  cipher?: string;
  peer: Identity | null;
  data: string;
  error?: Error;
}

/** Connects with clientTlsOptions (host name known to the client, so SNI would show if sent). */
function connect(port: number, ctx: tls.SecureContext, expected: readonly Identity[], tuning: TlsTuning, host = 'ztunnel.test'): Promise<ClientOutcome> {
  return new Promise((resolve) => {
    const raw = net.connect({ port, host: '127.0.0.1' });
    raw.setTimeout(GUARD_MS, () => raw.destroy());
    const s = tls.connect({ ...clientTlsOptions(ctx, expected, tuning), socket: raw, host });
    const out: ClientOutcome = { secure: false, protocol: null, alpn: null, peer: null, data: '' };
    s.on('secureConnect', () => {
      out.secure = true;
      out.protocol = s.getProtocol();
      out.alpn = s.alpnProtocol;
      out.cipher = s.getCipher().standardName;
      out.peer = peerIdentity(s);
    });
    s.on('data', (d: Buffer) => { out.data += d.toString(); });
    s.on('error', (e) => { out.error ??= e; });
    s.on('close', () => resolve(out));
  });
}

function ctxFor(cert: WorkloadCertificate, tuning: TlsTuning = TLS13): tls.SecureContext {
  return createWorkloadContext(cert, tuning);
}

t.test('a good mTLS handshake negotiates TLS 1.3, ALPN h2 and AES-256-GCM, and sends no SNI', async (t) => {
  const srv = await startServer(t, await ca.issue(serverId), TLS13);
  const client = await connect(srv.port, ctxFor(await ca.issue(clientId)), [testId('other'), serverId], TLS13, 'reviews.ns-b.svc.cluster.local');
  const s = await srv.next();
  t.equal(client.error, undefined, 'client saw no error');
  t.equal(client.protocol, 'TLSv1.3');
  t.equal(client.alpn, 'h2');
  t.equal(client.cipher, 'TLS_AES_256_GCM_SHA384', 'the preferred suite is chosen');
  t.same(client.peer, serverId, 'client reads the server identity from its URI SAN');
  t.equal(client.data, `hello ${formatIdentity(clientId)}`, 'server identified the client and answered');
  t.equal(s.kind, 'secure');
  if (s.kind === 'secure') {
    t.equal(s.servername, false, 'no SNI reached the server although the client knew a host name');
    t.equal(s.alpn, 'h2');
    t.same(s.check, clientId, 'checkClientTrustDomain returns the client identity');
  }
});

t.test('the server does not resume a session even when a client offers one', async (t) => {
  const srv = await startServer(t, await ca.issue(serverId), TLS13);
  const ctx = ctxFor(await ca.issue(clientId));
  const sessions: Buffer[] = [];
  const resumed: boolean[] = [];
  for (let i = 0; i < 2; i++) {
    await new Promise<void>((resolve) => {
      const raw = net.connect({ port: srv.port, host: '127.0.0.1' });
      raw.setTimeout(GUARD_MS, () => raw.destroy());
      const s = tls.connect({ ...clientTlsOptions(ctx, [serverId], TLS13), socket: raw, ...(sessions[0] ? { session: sessions[0] } : {}) });
      s.on('session', (b: Buffer) => sessions.push(b));
      s.on('secureConnect', () => resumed.push(s.isSessionReused()));
      s.on('error', () => {});
      s.on('close', () => resolve());
      s.resume();
    });
    await srv.next();
  }
  t.same(resumed, [false, false], 'both connections did a full handshake');
});

t.test('a client certificate from another CA is refused by the server', async (t) => {
  const srv = await startServer(t, await ca.issue(serverId), TLS13);
  const other = await createTempCa();
  t.teardown(() => other.cleanup());
  const foreign = await other.issue(clientId);
  // The client trusts our root, so only the server's check can stop it.
  const client = await connect(srv.port, ctxFor({ ...foreign, rootsPem: [ca.rootPem] }), [serverId], TLS13);
  const s = await srv.next();
  t.equal(s.kind, 'secure');
  if (s.kind === 'secure') {
    t.ok(isZtunnelError(s.check) && s.check.code === 'TLS_HANDSHAKE', 'TLS_HANDSHAKE error');
    t.match((s.check as Error).message, /peer certificate rejected: (UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)/);
  }
  t.equal(client.data, '', 'the client got no byte before the close');
});

t.test('a client certificate of another trust domain is refused by checkClientTrustDomain', async (t) => {
  const srv = await startServer(t, await ca.issue(serverId), TLS13);
  const foreignTd = testId('client', 'ns-a', 'other.example');
  const client = await connect(srv.port, ctxFor(await ca.issue(foreignTd)), [serverId], TLS13);
  const s = await srv.next();
  t.equal(s.kind, 'secure', 'the chain itself is fine (same CA)');
  if (s.kind === 'secure') {
    t.ok(isZtunnelError(s.check) && s.check.code === 'PEER_IDENTITY', 'PEER_IDENTITY error');
    t.match((s.check as Error).message, 'client trust domain mismatch: expected cluster.local, got [spiffe://other.example/ns/ns-a/sa/client]');
  }
  t.equal(client.data, '', 'the client got no byte before the close');
});

t.test('an expired client certificate is refused', async (t) => {
  const srv = await startServer(t, await ca.issue(serverId), TLS13);
  const expired = await ca.issueExpired(clientId);
  t.ok(expired.notAfter.getTime() < Date.now(), 'the certificate is expired');
  const client = await connect(srv.port, ctxFor(expired), [serverId], TLS13);
  const s = await srv.next();
  if (s.kind === 'secure') {
    t.ok(isZtunnelError(s.check) && s.check.code === 'TLS_HANDSHAKE', 'TLS_HANDSHAKE error');
    t.match((s.check as Error).message, /CERT_HAS_EXPIRED/);
  } else {
    t.fail(`unexpected server outcome ${s.kind}`);
  }
  t.equal(client.data, '');
});

t.test('the client refuses a server whose URI SAN is not expected, naming expected and got', async (t) => {
  const srv = await startServer(t, await ca.issue(serverId), TLS13);
  const client = await connect(srv.port, ctxFor(await ca.issue(clientId)), [testId('reviews', 'ns-b'), testId('ratings', 'ns-b')], TLS13);
  await srv.next();
  t.ok(isZtunnelError(client.error) && client.error.code === 'PEER_IDENTITY', 'PEER_IDENTITY error on the client');
  t.equal(client.error?.message,
    'peer identity mismatch: expected one of [spiffe://cluster.local/ns/ns-b/sa/reviews, spiffe://cluster.local/ns/ns-b/sa/ratings], got [spiffe://cluster.local/ns/ns-b/sa/server]');
  t.equal(client.data, '', 'nothing was read from the wrong server');
});

t.test('the client refuses a server certificate from a CA it does not trust', async (t) => {
  const other = await createTempCa();
  t.teardown(() => other.cleanup());
  const srv = await startServer(t, { ...(await other.issue(serverId)), rootsPem: [ca.rootPem] }, TLS13);
  const client = await connect(srv.port, ctxFor(await ca.issue(clientId)), [serverId], TLS13);
  await srv.next();
  t.match((client.error as NodeJS.ErrnoException | undefined)?.code, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY/);
  t.equal(client.data, '');
});

t.test('a server certificate without serverAuth usage is refused by the client', async (t) => {
  const srv = await startServer(t, await issueLeaf(ca.authority, { uris: [formatIdentity(serverId)], serverAuth: false }), TLS13);
  const client = await connect(srv.port, ctxFor(await ca.issue(clientId)), [serverId], TLS13);
  await srv.next();
  t.match((client.error as NodeJS.ErrnoException | undefined)?.code, /PURPOSE/);
  t.equal(client.data, '');
});

t.test('a DNS SAN alone never satisfies the client, even one matching the host name', async (t) => {
  const dnsOnly = await issueLeaf(ca.authority, { dnsNames: ['ztunnel.test'], identity: serverId });
  const legacy = new X509Certificate(dnsOnly.chainPem[0]!).toLegacyObject();
  t.equal(tls.checkServerIdentity('ztunnel.test', legacy), undefined, 'control: Node\'s default check would accept this certificate');
  const srv = await startServer(t, dnsOnly, TLS13);
  const client = await connect(srv.port, ctxFor(await ca.issue(clientId)), [serverId], TLS13, 'ztunnel.test');
  await srv.next();
  t.ok(isZtunnelError(client.error) && client.error.code === 'PEER_IDENTITY', 'PEER_IDENTITY error');
  t.match(client.error?.message, /got \[no URI SAN\]/);
  t.equal(client.data, '');
});

t.test('a leaf under an intermediate is accepted by a peer that trusts only the root', async (t) => {
  const root = await createRootCa({ keyType: 'rsa-2048' });
  const chained = await createTempCa({ given: await createIntermediateCa(root) });
  t.teardown(() => chained.cleanup());
  const serverCert = await chained.issue(serverId);
  t.equal(serverCert.chainPem.length, 2, 'leaf + intermediate presented');
  t.same(serverCert.rootsPem, [root.rootPem], 'only the root is trusted');
  const srv = await startServer(t, serverCert, TLS13);
  const client = await connect(srv.port, ctxFor(await chained.issue(clientId)), [serverId], TLS13);
  const s = await srv.next();
  t.equal(client.error, undefined);
  t.equal(client.data, `hello ${formatIdentity(clientId)}`);
  t.ok(s.kind === 'secure' && !isZtunnelError(s.check), 'the server accepted the client chain');
});

t.test('TLS 1.2 clients are refused unless TLS12_ENABLED, which then offers ECDHE AES-GCM', async (t) => {
  const clientCert = await ca.issue(clientId);
  // A TLS 1.2-only client (an older peer), built outside our builders.
  const tls12Only = tls.createSecureContext({
    cert: clientCert.chainPem.join('\n'), key: clientCert.keyPem, ca: [...clientCert.rootsPem],
    minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2',
  });

  await t.test('refused by default', async (t) => {
    const srv = await startServer(t, await ca.issue(serverId), TLS13);
    const client = await connect(srv.port, tls12Only, [serverId], TLS13);
    const s = await srv.next();
    t.equal(client.secure, false, 'no handshake');
    t.ok(client.error, `client error: ${client.error?.message.split('\n')[0]}`);
    t.equal(s.kind, 'tls-error', 'server failed the handshake');
  });

  await t.test('accepted with TLS12_ENABLED', async (t) => {
    const srv = await startServer(t, await ca.issue(serverId), TLS12);
    const client = await connect(srv.port, tls12Only, [serverId], TLS12);
    const s = await srv.next();
    t.equal(client.error, undefined);
    t.equal(client.protocol, 'TLSv1.2');
    t.equal(client.cipher, 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384');
    t.equal(client.data, `hello ${formatIdentity(clientId)}`);
    t.ok(s.kind === 'secure' && !isZtunnelError(s.check), 'server checks still pass on TLS 1.2');
  });

  await t.test('a TLS 1.3-capable client still gets TLS 1.3 when 1.2 is enabled', async (t) => {
    const srv = await startServer(t, await ca.issue(serverId), TLS12);
    const client = await connect(srv.port, ctxFor(clientCert, TLS12), [serverId], TLS12);
    await srv.next();
    t.equal(client.protocol, 'TLSv1.3');
  });
});

t.test('COMPLIANCE_POLICY=pqc uses X25519MLKEM768 only, or is a clear startup error where OpenSSL lacks it', async (t) => {
  const pqc: TlsTuning = { tls12Enabled: false, compliancePolicy: 'pqc' };
  let supported = true;
  try {
    tls.createSecureContext({ ecdhCurve: 'X25519MLKEM768' });
  } catch {
    supported = false;
  }
  const check = checkTlsTuning(pqc);
  if (!supported) {
    t.ok(isZtunnelError(check) && check.code === 'CONFIG_INVALID', `OpenSSL ${process.versions.openssl}: CONFIG_INVALID at startup`);
    t.match(check?.message, /COMPLIANCE_POLICY=pqc needs the X25519MLKEM768 key-exchange group/);
    const serverCert = await ca.issue(serverId);
    t.throws(() => new SecureContextCache().get(serverCert, pqc), { code: 'CONFIG_INVALID' }, 'building a context fails the same way, never silently');
  } else {
    t.equal(check, undefined, `OpenSSL ${process.versions.openssl} supports the group`);
    const srv = await startServer(t, await ca.issue(serverId), pqc);
    const client = await connect(srv.port, ctxFor(await ca.issue(clientId), pqc), [serverId], pqc);
    await srv.next();
    t.equal(client.error, undefined);
    t.equal(client.data, `hello ${formatIdentity(clientId)}`);
  }
  const unknown = checkTlsTuning({ tls12Enabled: false, compliancePolicy: 'fips-140-3' });
  t.equal(unknown?.code, 'CONFIG_INVALID', 'an unknown policy is refused too');
});
