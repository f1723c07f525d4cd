// HBONE both ways between Istio's ztunnel and ztunnel-ts (docs/interop.md): the shared bed
// interop-istio.sh (two network namespaces, one local config and root, SOCKS5 entry on both) run
// against this checkout; every case it prints becomes one assertion: echo, 64 MiB with sha256,
// half-close, 503, 401, identity mismatch, pooling and the wire statuses, in both directions.
import { spawn } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { PEERS_DIR, REPO, WORK, findPeers } from './peers.js';

const peers = findPeers((s) => t.comment(s));
for (const b of peers.built) t.comment(`built ${b}`);

t.test("interop-istio.sh: every case passes in both directions", async (t) => {
  const work = path.join(WORK, 'hbone');
  const out = await new Promise<{ code: number | null; text: string }>((resolve) => {
    const p = spawn('bash', [path.join(PEERS_DIR, 'interop-istio.sh')], {
      env: {
        ...process.env,
        RUST_ZT_BIN: peers.istioZtunnel,
        ISTIO_ZT_DIR: path.dirname(path.dirname(peers.istioZtunnel)),
        ZT_TS_DIR: REPO,
        INTEROP_WORK: work,
        INTEROP_TIMEOUT: '900',
        // ztunnel-ts inherits this environment: like Istio's ztunnel in the bed, no spoofed client
        // address towards the app (unset, both spoof when they can, and the app's answer to the
        // other namespace's address would leave through the veth).
        ENABLE_ORIG_SRC: 'false',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    p.stdout.on('data', (b: Buffer) => (text += b.toString()));
    p.stderr.on('data', () => {});
    p.on('close', (code) => resolve({ code, text }));
  });
  const cases = out.text.split('\n').map((l) => /^(PASS|FAIL) +(\S+) *(.*)$/.exec(l)).filter((m): m is RegExpExecArray => m !== null);
  // A bed that could not start (missing tool, python h2) says why on its first lines.
  t.ok(cases.length >= 10, `the bed ran its cases (${cases.length}); logs in ${work}${cases.length ? '' : `: ${out.text.slice(0, 300)}`}`);
  for (const [, verdict, name, detail] of cases) t.equal(verdict, 'PASS', `${name} ${detail ?? ''}`.trim());
  t.match(out.text, /interop: (\d+)\/\1 cases pass/, 'the summary line says all pass');
  t.equal(out.code, 0, 'exit status 0');
});
