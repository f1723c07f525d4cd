#!/usr/bin/env node
// `npm test` runs this first (package.json "pretest"): it names every missing test prerequisite
// at once instead of letting a suite fail half-way. What each is for is in the README ("Test
// prerequisites"). Go and Rust are needed only for the interop runs beside Istio's own ztunnel
// and istiod, not by `npm test`, so they are not checked here.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const skipNetns = process.env.ZTUNNEL_SKIP_NETNS === '1' && process.env.ZTUNNEL_REQUIRE_NETNS !== '1';

/** True when `cmd` can be run: found on PATH and starts. */
function runs(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 10_000 });
  return !r.error;
}

const missing = [];
const need = (ok, what) => {
  if (!ok) missing.push(what);
};

need(runs('openssl', ['version']), 'openssl (the certificate tests read certificates with the openssl CLI; Debian/Ubuntu: apt-get install openssl)');
const addonFile = path.join(root, 'native', 'build', 'Release', 'ztunnel_native.node');
need(existsSync(addonFile),
  'the native addon native/build/Release/ztunnel_native.node (built by `npm install`/`npm ci`; needs g++, make and python3)');
if (existsSync(addonFile)) {
  // An addon built from older sources lacks newer calls (`npm run build` does not rebuild native/).
  let exported = [];
  try {
    exported = Object.keys(createRequire(import.meta.url)(addonFile));
  } catch {
    // reported below as lacking every call
  }
  const lacking = ['lowMemoryNotification', 'madvise', 'setLingerReset'].filter((f) => !exported.includes(f));
  need(lacking.length === 0, `a native addon built from the current native/src (it lacks ${lacking.join(', ')}): npm run build:native`);
}
if (!skipNetns) {
  need(runs('ip', ['-V']), 'ip (iproute2: the network-namespace suite creates namespaces and veths; apt-get install iproute2)');
  need(runs('iptables', ['--version']), 'iptables (the netns suite checks the in-pod redirection rules; apt-get install iptables)');
  need(runs('tcpdump', ['--version']), 'tcpdump (the netns suite captures packets to check marks and source addresses; apt-get install tcpdump)');
  need(typeof process.getuid !== 'function' || process.getuid() === 0,
    'root (the netns suite runs `ip netns` and iptables); run as root, or set ZTUNNEL_SKIP_NETNS=1 to skip that suite explicitly');
}

if (missing.length > 0) {
  process.stderr.write(`npm test: missing test prerequisites:\n${missing.map((m) => `  - ${m}`).join('\n')}\n`);
  process.exit(1);
}
