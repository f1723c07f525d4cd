// CRL_PATH (tls/crl.ts): real mTLS handshakes with serverTlsOptions/clientTlsOptions and the
// checks of verify.ts, a CRL signed by the test CA, reload on change, refusal of a bad file.
import t from 'tap';
import net from 'node:net';
import tls from 'node:tls';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile, rename } from 'node:fs/promises';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isZtunnelError, type ZtunnelError } from '../core/errors.js';
import type { Identity } from '../core/spiffe.js';
import type { WorkloadCertificate } from './certificate.js';
import { RevocationList, setRevocationList } from './crl.js';
import { SecureContextCache, clientTlsOptions, serverTlsOptions, type TlsTuning } from './secure-context.js';
import { checkClientTrustDomain } from './verify.js';
import { createTempCa, testId, type TempCa } from '../../test/helpers/certs.js';

const execFileAsync = promisify(execFile);

const TLS13: TlsTuning = { tls12Enabled: false };
const GUARD_MS = 10_000;
const serverId = testId('server', 'ns-b');
const clientId = testId('client', 'ns-a');

let ca: TempCa;
let dir: string;
t.before(async () => {
  ca = await createTempCa();
  dir = await mkdtemp(path.join(tmpdir(), 'crl-test-'));
});
t.teardown(async () => {
  setRevocationList(undefined);
  await ca.cleanup();
  await rm(dir, { recursive: true, force: true });
});

/**
 * A PEM CRL of the test CA revoking `certs`, made by the openssl CLI (`openssl ca -revoke` then
 * `-gencrl`): an implementation independent of the one under test.
 */
let crlRun = 0;
async function crlPem(certs: WorkloadCertificate[]): Promise<string> {
  const d = path.join(dir, `openssl-${++crlRun}`);
  await mkdir(d);
  await writeFile(path.join(d, 'index.txt'), '');
  await writeFile(path.join(d, 'crlnumber'), '01\n');
  await writeFile(path.join(d, 'ca.cnf'), `[ca]\ndefault_ca=d\n[d]\ndatabase=${d}/index.txt\ncrlnumber=${d}/crlnumber\ndefault_md=sha256\ndefault_crl_days=1\n`);
  await writeFile(path.join(d, 'ca-cert.pem'), ca.authority.certPem);
  await writeFile(path.join(d, 'ca-key.pem'), ca.authority.keyPem);
  const ossl = (...args: string[]) => execFileAsync('openssl', ['ca', '-config', `${d}/ca.cnf`, '-keyfile', `${d}/ca-key.pem`, '-cert', `${d}/ca-cert.pem`, ...args]);
  for (const [i, c] of certs.entries()) {
    await writeFile(path.join(d, `r${i}.pem`), c.chainPem[0]!);
    await ossl('-revoke', `${d}/r${i}.pem`);
  }
  await ossl('-gencrl', '-out', `${d}/crl.pem`);
  return readFile(path.join(d, 'crl.pem'), 'utf8');
}

/** One handshake: a 15008-style server (checkClientTrustDomain) and a client (clientTlsOptions). */
async function handshake(server: WorkloadCertificate, client: WorkloadCertificate, expected: Identity): Promise<{ serverCheck: Identity | ZtunnelError | undefined; clientError: Error | undefined }> {
  const cache = new SecureContextCache();
  let serverCheck: Identity | ZtunnelError | undefined;
  const srv = net.createServer((raw) => {
    raw.setTimeout(GUARD_MS, () => raw.destroy());
    raw.on('error', () => {});
    const s = new tls.TLSSocket(raw, serverTlsOptions(cache.get(server, TLS13), TLS13));
    s.on('error', () => raw.destroy());
    s.on('secure', () => {
      serverCheck = checkClientTrustDomain(s, clientId);
      s.end();
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  const clientError = await new Promise<Error | undefined>((resolve) => {
    const s = tls.connect({ ...clientTlsOptions(cache.get(client, TLS13), [expected], TLS13), host: '127.0.0.1', port });
    s.setTimeout(GUARD_MS, () => s.destroy());
    let err: Error | undefined;
    s.on('error', (e) => { err = e; });
    s.on('close', () => resolve(err));
    s.resume();
  });
  srv.close();
  return { serverCheck, clientError };
}

const code = (e: unknown) => (isZtunnelError(e) ? e.code : e instanceof Error ? e.message : String(e));

t.test('a revoked client certificate is refused by the server, a revoked server certificate by the client; reloads follow the file', async (t) => {
  const goodClient = await ca.issue(clientId);
  const revokedClient = await ca.issue(clientId);
  const server = await ca.issue(serverId);
  const file = path.join(dir, 'ca.crl');
  await writeFile(file, await crlPem([revokedClient]));
  const rejected: string[] = [];
  const loads: number[] = [];
  const list = await RevocationList.open(file, { loaded: (n) => loads.push(n) });
  list.watch();
  t.teardown(() => list.close());
  setRevocationList(list, (reporter) => rejected.push(reporter));

  const ok = await handshake(server, goodClient, serverId);
  t.same(ok.serverCheck, clientId, 'a certificate the CRL does not list passes');
  t.equal(ok.clientError, undefined);

  const bad = await handshake(server, revokedClient, serverId);
  t.equal(code(bad.serverCheck), 'CERT_REVOKED', 'the server refuses the revoked client certificate');
  t.match((bad.serverCheck as Error).message, /peer certificate revoked by CRL: serial [0-9a-f]+ issued by /);
  t.same(rejected, ['destination'], 'counted with reporter=destination');

  // The server's certificate revoked: the client refuses it during the handshake.
  await writeFile(`${file}.new`, await crlPem([server]));
  await rename(`${file}.new`, file);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no reload')), GUARD_MS);
    const poll = setInterval(() => { if (loads.length >= 2) { clearInterval(poll); clearTimeout(timer); resolve(); } }, 20);
  });
  const srvRevoked = await handshake(server, revokedClient, serverId);
  t.equal(code(srvRevoked.clientError), 'CERT_REVOKED', 'the client refuses a revoked server certificate');
  t.same(rejected, ['destination', 'source'], 'counted with reporter=source');
  const again = await handshake(await ca.issue(serverId), revokedClient, serverId);
  t.same(again.serverCheck, clientId, 'the client certificate revoked before is accepted after the reload');
});

t.test('a missing file revokes nothing until it appears; an empty file revokes nothing; a garbage file is refused at start', async (t) => {
  const missing = path.join(dir, 'later.crl');
  const failures: string[] = [];
  const list = await RevocationList.open(missing, { failed: (m) => failures.push(m) });
  t.equal(list.size, 0);
  t.match(failures[0], /not found/);
  await writeFile(missing, '');
  t.equal(list.reload(), undefined, 'an empty file loads');
  t.equal(list.size, 0, 'and revokes nothing');
  await writeFile(missing, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
  t.equal(list.reload(), undefined, 'a PEM file without CRL blocks loads');
  await writeFile(missing, await crlPem([await ca.issue(clientId)]));
  t.equal(list.reload(), undefined);
  t.equal(list.size, 1);
  await writeFile(missing, 'not a crl');
  t.match(list.reload(), /failed to parse CRL/, 'a bad new version is reported');
  t.equal(list.size, 1, 'and the last good list stays');

  const garbage = path.join(dir, 'garbage.crl');
  await writeFile(garbage, 'not a crl');
  await t.rejects(RevocationList.open(garbage), { code: 'CONFIG_INVALID', message: /CRL_PATH .*garbage\.crl: failed to parse CRL/ });
});
