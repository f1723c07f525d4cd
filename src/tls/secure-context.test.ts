import t from 'tap';
import { SecureContextCache, TLS13_CIPHER_SUITES, clientTlsOptions, serverTlsOptions } from './secure-context.js';
import { createTempCa, testId } from '../../test/helpers/certs.js';

const tuning = { tls12Enabled: false };
const ca = await createTempCa();
t.teardown(() => ca.cleanup());

t.test('one context per identity and serial; a newer serial replaces the old one', async (t) => {
  const cache = new SecureContextCache();
  const a1 = await ca.issue(testId('a'));
  const b1 = await ca.issue(testId('b'));
  const ctxA1 = cache.get(a1, tuning);
  t.equal(cache.get(a1, tuning), ctxA1, 'same certificate → the same context object');
  t.not(cache.get(b1, tuning), ctxA1, 'another identity → another context');
  t.equal(cache.size, 2);

  const a2 = await ca.issue(testId('a'), { now: new Date(Date.now() + 60_000) });
  const ctxA2 = cache.get(a2, tuning);
  t.not(ctxA2, ctxA1, 'rotated certificate → new context');
  t.equal(cache.get(a2, tuning), ctxA2, 'which is then reused');
  t.equal(cache.size, 2, 'the old context was dropped, not kept beside it');
  const late = cache.get(a1, tuning);
  t.not(late, ctxA1, 'a late request for the old certificate gets a one-off context');
  t.equal(cache.get(a2, tuning), ctxA2, 'and does not displace the newer one');

  t.not(cache.get(a2, { tls12Enabled: true }), ctxA2, 'different TLS settings → different context');
  cache.forget(testId('a'));
  cache.forget(testId('b'));
  t.equal(cache.size, 0, 'forget drops the identity');
});

t.test('an unusable certificate is an IDENTITY_UNAVAILABLE error naming the identity', async (t) => {
  const good = await ca.issue(testId('c'));
  const other = await ca.issue(testId('d'));
  const cache = new SecureContextCache();
  t.throws(() => cache.get({ ...good, keyPem: other.keyPem }, tuning), { code: 'IDENTITY_UNAVAILABLE', message: /spiffe:\/\/cluster\.local\/ns\/default\/sa\/c/ });
  t.equal(cache.size, 0);
});

t.test('socket options: h2 only, no SNI, no session, mutual authentication', async (t) => {
  const cache = new SecureContextCache();
  const ctx = cache.get(await ca.issue(testId('e')), tuning);
  const server = serverTlsOptions(ctx, tuning);
  t.same(server.ALPNProtocols, ['h2']);
  t.equal(server.requestCert, true);
  t.equal(server.rejectUnauthorized, true);
  t.equal(server.isServer, true);
  t.equal(server.secureContext, ctx);
  t.equal(server.minVersion, 'TLSv1.3');
  t.equal(server.ciphers, TLS13_CIPHER_SUITES);
  const client = clientTlsOptions(ctx, [testId('f')], tuning);
  t.same(client.ALPNProtocols, ['h2']);
  t.notOk('servername' in client, 'no servername');
  t.notOk('session' in client, 'no session');
  t.equal(client.rejectUnauthorized, true);
  t.equal(client.secureContext, ctx);
  t.equal(TLS13_CIPHER_SUITES, 'TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256', 'AES-256 first, no ChaCha20');
  t.equal(serverTlsOptions(ctx, { tls12Enabled: true }).minVersion, 'TLSv1.2');
});
