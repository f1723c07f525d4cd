// The command line as a user meets it: bad flags and values stop the start with a message naming
// the flag and its environment variable, and nothing is started or written.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { MAIN_JS, REPO_ROOT, tempDir } from '../helpers/daemon.js';

// A daemon that got as far as its local CA wrote a key into its directory: all are removed at the end.
const dirs: string[] = [];
t.teardown(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function run(args: string[], env: Record<string, string> = {}) {
  const cwd = tempDir('zt-cli-');
  dirs.push(cwd);
  const r = spawnSync(process.execPath, [MAIN_JS, ...args], { cwd, env: { PATH: process.env['PATH'] ?? '', ...env }, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout, cwd };
}

t.test('an unknown flag is rejected with exit 2 and nothing is started (no state directory written)', async (t) => {
  const r = run(['run', '--bogus-flag']);
  t.equal(r.code, 2);
  t.match(r.stderr, /Unknown arguments?: bogus-flag/);
  t.notOk(existsSync(join(r.cwd, '.ztunnel')), 'the local CA was not created');
});

t.test('a bad value names the flag and the environment variable', async (t) => {
  const r = run(['run'], { POOL_MAX_STREAMS_PER_CONNECTION: 'abc', PROXY_MODE: 'sideways' });
  t.equal(r.code, 2);
  t.match(r.stderr, /--pool-max-streams-per-connection \/ POOL_MAX_STREAMS_PER_CONNECTION: "abc" is not an integer/);
  t.match(r.stderr, /PROXY_MODE/);
});

t.test('`proxy ztunnel` (how Istio\'s DaemonSet starts the container) is the run command; other components are refused', async (t) => {
  const ok = run(['proxy', 'ztunnel', '--pool-max-streams-per-connection', 'x']);
  t.equal(ok.code, 2);
  t.match(ok.stderr, /POOL_MAX_STREAMS_PER_CONNECTION/, 'the run options were parsed');
  const bad = run(['proxy', 'sidecar']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /Choices: "ztunnel"/);
});

t.test('no command prints what to run', async (t) => {
  const r = run([]);
  t.equal(r.code, 2);
  t.match(r.stderr, /run or explain/);
});

t.test('--help prints the help on stdout and exits 0 without starting anything', async (t) => {
  for (const args of [['--help'], ['-h'], ['run', '--help'], ['proxy', 'ztunnel', '-h'], ['explain', '--help']]) {
    const r = run(args);
    t.equal(r.code, 0, `${args.join(' ')}: exit 0`);
    t.match(r.stdout, /^Usage: ztunnel /, `${args.join(' ')}: usage line`);
    t.equal(r.stderr, '', `${args.join(' ')}: nothing on stderr`);
    t.notOk(existsSync(join(r.cwd, '.ztunnel')), `${args.join(' ')}: the local CA was not created`);
  }
  t.match(run(['run', '--help']).stdout.replace(/\s+/g, ' '), /--fake-ca +certificates from an in-process CA \[env FAKE_CA; true\|false; default: false\]/);
});

t.test('a flag missing its value, or given twice, stops the start with exit 2', async (t) => {
  const missing = run(['run', '--xds-address']);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /^ztunnel: Not enough arguments following: xds-address$/m);
  const twice = run(['run', '--secret-ttl', '1h', '--secret-ttl', '2h']);
  t.equal(twice.code, 2);
  t.match(twice.stderr, /--secret-ttl \/ SECRET_TTL: is given more than once/);
  t.notOk(existsSync(join(twice.cwd, '.ztunnel')), 'the local CA was not created');
});

t.test('explain refuses a boolean flag with a value other than true or false', async (t) => {
  const r = run(['explain', '--config', 'x.yaml', '--src-ip', '10.0.0.1', '--dst', '10.0.0.2:80', '--plaintext=maybe']);
  t.equal(r.code, 2);
  t.match(r.stderr, /^ztunnel: --plaintext: "maybe" is not a boolean \(use true or false\)$/m);
  t.equal(r.stdout, '');
});

t.test('a misspelt flag is refused with the closest known flag', async (t) => {
  const r = run(['run', '--inbound-adress', '0.0.0.0:15008']);
  t.equal(r.code, 2);
  t.match(r.stderr, /^ztunnel: Unknown argument: inbound-adress\nDid you mean --inbound-addr\?$/m);
  t.notOk(existsSync(join(r.cwd, '.ztunnel')), 'the local CA was not created');
});

t.test('the top-level help says where the options are', async (t) => {
  const r = run(['--help']);
  t.equal(r.code, 0);
  t.match(r.stdout.replace(/\s+/g, ' '), 'Each command lists its options: ztunnel run --help, ztunnel explain --help.');
});

t.test('`npx ztunnel` runs the package bin from a built checkout', async (t) => {
  // npx finds the package's own bin (package.json "bin") in its root directory.
  const r = spawnSync('npx', ['--no-install', 'ztunnel', 'run', '--help'], { cwd: REPO_ROOT, env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/root' }, encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^Usage: ztunnel run \[options\]/);
});

t.test('a busy port stops the start naming the listener, its address and the setting that moves it', async (t) => {
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  t.teardown(() => busy.close());
  const port = (busy.address() as AddressInfo).port;
  const others = {
    ZTUNNEL_ADMIN_ADDR: '127.0.0.1:0', ZTUNNEL_STATS_ADDR: '127.0.0.1:0', ZTUNNEL_READINESS_ADDR: '127.0.0.1:0',
    ZTUNNEL_OUTBOUND_ADDR: '127.0.0.1:0', ZTUNNEL_INBOUND_PLAINTEXT_ADDR: '127.0.0.1:0', ZTUNNEL_INBOUND_ADDR: '127.0.0.1:0', ZTUNNEL_SOCKS5_ADDR: '127.0.0.1:0',
  };
  const inbound = run(['run', '--inbound-addr', `127.0.0.1:${port}`], others);
  t.equal(inbound.code, 1);
  t.match(inbound.stdout, `inbound listener 127.0.0.1:${port} (--inbound-addr / ZTUNNEL_INBOUND_ADDR): address in use`);
  const admin = run(['run'], { ...others, ZTUNNEL_ADMIN_ADDR: `127.0.0.1:${port}` });
  t.equal(admin.code, 1);
  t.match(admin.stdout, `admin listener 127.0.0.1:${port} (--admin-addr / ZTUNNEL_ADMIN_ADDR): address in use`);
});
