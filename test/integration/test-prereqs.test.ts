// `npm test` checks its prerequisites first (scripts/check-test-prereqs.mjs) and names every
// missing one.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { REPO_ROOT } from '../helpers/daemon.js';

const SCRIPT = join(REPO_ROOT, 'scripts', 'check-test-prereqs.mjs');
const check = (env: Record<string, string>) =>
  spawnSync(process.execPath, [SCRIPT], { env, encoding: 'utf8', timeout: 30_000 });

t.test('on this machine every prerequisite is there: silent, exit 0', async (t) => {
  const r = check({ PATH: process.env['PATH'] ?? '' });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stderr, '');
});

t.test('with nothing on PATH it names each missing tool and what it is for', async (t) => {
  const r = check({ PATH: '/nonexistent' });
  t.equal(r.status, 1);
  t.match(r.stderr, /^npm test: missing test prerequisites:\n/);
  for (const tool of ['openssl', 'ip (iproute2', 'iptables', 'tcpdump']) t.match(r.stderr, `  - ${tool}`, tool);
  t.notMatch(r.stderr, /\bgo\b|cargo|rust/i, 'Go and Rust are not needed by npm test');
});

t.test('ZTUNNEL_SKIP_NETNS=1 drops the netns tools, not openssl', async (t) => {
  const r = check({ PATH: '/nonexistent', ZTUNNEL_SKIP_NETNS: '1' });
  t.equal(r.status, 1);
  t.match(r.stderr, '  - openssl');
  t.notMatch(r.stderr, /tcpdump|iptables/);
});
