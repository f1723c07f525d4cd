// Builds the Linux socket addon (native/) with node-gyp against the local Node headers, so
// nothing is downloaded. A failure is not fatal: dedicated mode works without the addon, and
// shared mode reports clearly that the addon is missing (src/platform/).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const gypFile = join(root, 'native', 'binding.gyp');
if (process.platform !== 'linux' || !existsSync(gypFile)) {
  console.log('ztunnel-ts: native addon skipped (not Linux or no native/binding.gyp)');
  process.exit(0);
}
// The prefix of the running node holds include/node/*.h (e.g. /usr for /usr/bin/node).
const nodedir = join(dirname(process.execPath), '..');
const gyp = join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
const r = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`], {
  cwd: join(root, 'native'),
  stdio: 'inherit',
});
if (r.status !== 0) {
  console.warn('ztunnel-ts: native addon build failed; shared (in-pod) mode will be unavailable');
}
