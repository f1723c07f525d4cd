// The command line as a user meets it: bad flags and values stop the start with a message naming
// the flag and its environment variable, and nothing is started or written.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { MAIN_JS, tempDir } from '../helpers/daemon.js';

function run(args: string[], env: Record<string, string> = {}) {
  const cwd = tempDir('zt-cli-');
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
