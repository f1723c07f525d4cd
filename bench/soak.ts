// Soak and restart under load (issue 16), in the netns bed of test/netns/bed.ts (shared mode, real
// iptables capture, ZDS enrollment; see bench/netns-bed.ts). Needs root; run it under
// `flock /work/locks/netns.lock` on a shared machine.
//
// Soak: N long-lived tunneled connections from pod a1 to the sink server in pod b1 (captured on
// node-a's 15001, HBONE to node-b's 15008 in b1), of which a few stream bulk data and the rest are
// echo connections pinged round-robin at a fixed rate (100 B round trips, the latency series);
// short request/response connections open and close at a fixed rate beside them (churn); the
// local config is rewritten every few seconds, alternating policy pushes (an ALLOW policy on b1
// that admits a1, and a DENY on a port nobody uses) with reloads of unchanged text. Every 5 s it
// samples both daemons' open fds and RSS, the errors and the ping p50/p99 of the window. Drift is
// the last sample against the first one after warm-up.
//
// Restart: with the echo connections still open and churn running, a second ztunnel-ts starts on
// node-b, gets b1's netns over ZDS and binds its in-pod listeners with SO_REUSEPORT next to the old
// ones (a rolling update); then the old one gets SIGTERM and drains. Each held connection does one
// last round trip and closes within the drain deadline; the script counts the ones reset instead,
// and every churn connection refused, reset or timed out during the hand-over.
//
// Usage: node dist/bench/soak.js [--quick] [--connections N] [--duration S] [--no-restart]
// Prints progress lines and one JSON result line last.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createBed, type Bed, type BedNode } from '../test/netns/bed.js';
import { forkScript, stopChild, waitForMessage } from './lib/children.js';
import { OP_DOWNLOAD, OP_ECHO, OP_REQUEST, REQUEST_BYTES, RESPONSE_BYTES } from './lib/protocol.js';
import { percentileSorted } from './lib/stats.js';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const flag = (name: string): boolean => argv.includes(`--${name}`);
function num(name: string, def: number): number {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : def;
}
const quick = flag('quick');
const CONNECTIONS = num('connections', quick ? 2_000 : 10_000);
const DURATION_S = num('duration', quick ? 40 : 480);
const BULK = num('bulk', 4);
const PINGS_PER_S = num('pings', quick ? 200 : 400);
const CHURN_PER_S = num('churn', quick ? 20 : 40);
const CONFIG_EVERY_MS = quick ? 5_000 : 15_000;
const SAMPLE_MS = 5_000;
const DRAIN_DEADLINE_S = 10;
const RESTART = !flag('no-restart');
const PING_BYTES = 100;
const TIMEOUT_MS = 10_000;

const log = (msg: string): void => console.error(`[soak ${new Date().toISOString().slice(11, 19)}] ${msg}`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// --- what the daemons hold ------------------------------------------------------------------------

function fds(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}
function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : NaN;
  } catch {
    return NaN;
  }
}
const pidOf = (node: BedNode): number => node.ztunnel!.child.pid!;

// --- the bed ----------------------------------------------------------------------------------------

const POLICY_ALLOW = `- name: allow-a1
  namespace: shop
  scope: WorkloadSelector
  action: Allow
  dryRun: false
  rules:
  - - - principals: [{Prefix: "cluster.local/ns/"}]
`;
const POLICY_DENY_UNUSED = `- name: deny-unused
  namespace: shop
  scope: Namespace
  action: Deny
  dryRun: false
  rules:
  - - - destinationPorts: [9999]
`;

async function main(): Promise<void> {
  const limit = Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim());
  // This process holds one fd per connection (the sink server and each daemon are their own
  // processes), plus a few hundred for churn and the bed.
  if (CONNECTIONS + 1_000 > limit) throw new Error(`--connections ${CONNECTIONS} needs ~${CONNECTIONS + 1_000} fds here; ulimit -n is ${limit}`);
  log(`${CONNECTIONS} connections (${BULK} bulk), ${PINGS_PER_S} pings/s, ${CHURN_PER_S} new connections/s, ${DURATION_S} s, restart ${RESTART}`);

  const bed: Bed = await createBed({ env: { RUST_LOG: 'info,access=warn', CONNECTION_TERMINATION_DEADLINE: `${DRAIN_DEADLINE_S}s` }, workloadPolicies: { b1: ['shop/allow-a1'] }, policies: POLICY_ALLOW });
  const a1 = bed.pods['a1']!;
  const b1 = bed.pods['b1']!;
  const nodeB = bed.nodes['node-b'];
  const sink = forkScript(path.join(BENCH_DIR, 'sink-server.js'), { args: [b1.ip], wrapper: ['ip', 'netns', 'exec', b1.netns] });
  const result: Record<string, unknown> = { connections: CONNECTIONS, bulk: BULK, pingsPerS: PINGS_PER_S, churnPerS: CHURN_PER_S, durationS: DURATION_S };
  try {
    const { port } = await waitForMessage<{ type: string; port: number }>(sink, (m) => m.type === 'listening', 15_000, 'sink server');
    const target = { host: b1.ip, port };
    const errors: Record<string, number> = {};
    const err = (what: string): void => void (errors[what] = (errors[what] ?? 0) + 1);
    const errorCount = (): number => Object.values(errors).reduce((a, b) => a + b, 0);
    let phase: 'soak' | 'restart' = 'soak';

    const open = (op: number, first?: Buffer): Promise<Socket> =>
      a1.sockets.connect({ host: target.host, port: target.port, timeoutMs: TIMEOUT_MS }).then((s) => {
        s.setNoDelay(true);
        s.write(first ? Buffer.concat([Buffer.of(op), first]) : Buffer.of(op));
        return s;
      });

    // Echo connections: each waits for its pings' bytes to come back.
    interface Held {
      s: Socket;
      pending: { need: number; start: number; resolve: (ok: boolean) => void } | undefined;
      closed: boolean;
      ending: boolean;
    }
    const held: Held[] = [];
    const ping = Buffer.alloc(PING_BYTES, 0x70);
    let windowRtts: number[] = [];
    const roundTrip = (h: Held): Promise<boolean> =>
      new Promise((resolve) => {
        if (h.closed || h.pending) return resolve(false);
        const timer = setTimeout(() => {
          if (h.pending) (h.pending = undefined), resolve(false);
        }, TIMEOUT_MS);
        h.pending = { need: PING_BYTES, start: performance.now(), resolve: (ok) => (clearTimeout(timer), resolve(ok)) };
        h.s.write(ping);
      });
    const attach = (s: Socket): Held => {
      const h: Held = { s, pending: undefined, closed: false, ending: false };
      s.on('data', (d: Buffer) => {
        const p = h.pending;
        if (!p) return;
        p.need -= d.length;
        if (p.need <= 0) {
          h.pending = undefined;
          windowRtts.push(performance.now() - p.start);
          p.resolve(true);
        }
      });
      s.on('error', (e: NodeJS.ErrnoException) => {
        if (!h.ending) err(`held ${phase} ${e.code ?? e.message}`);
      });
      s.on('close', () => {
        if (!h.closed && !h.ending) err(`held ${phase} closed`);
        h.closed = true;
        h.pending?.resolve(false);
      });
      return h;
    };

    log('opening connections');
    const t0 = performance.now();
    for (let i = 0; i < CONNECTIONS - BULK; i += 200) {
      const batch = await Promise.allSettled(Array.from({ length: Math.min(200, CONNECTIONS - BULK - i) }, () => open(OP_ECHO)));
      for (const r of batch) {
        if (r.status === 'fulfilled') held.push(attach(r.value));
        else err(`open ${(r.reason as NodeJS.ErrnoException).code ?? String(r.reason)}`);
      }
    }
    // Every held connection round-trips once before the clock starts (it is tunneled end to end).
    const first = await Promise.all(held.map((h) => roundTrip(h)));
    for (const ok of first) if (!ok) err('first round trip');
    result['openSeconds'] = Math.round((performance.now() - t0) / 100) / 10;
    log(`${held.length} echo connections open and answering in ${result['openSeconds']} s`);

    let bulkBytes = 0;
    const bulk: Socket[] = [];
    for (let i = 0; i < BULK; i++) {
      const s = await open(OP_DOWNLOAD);
      s.on('data', (d: Buffer) => (bulkBytes += d.length));
      s.on('error', (e: NodeJS.ErrnoException) => err(`bulk ${e.code}`));
      bulk.push(s);
    }

    // Churn: request/response connections at a fixed rate.
    const churn = { ok: 0, failed: 0, failedRestart: 0, codes: {} as Record<string, number> };
    const oneRequest = async (): Promise<void> => {
      let s: Socket | undefined;
      const fail = (code: string): void => {
        churn.failed++;
        if (phase === 'restart') churn.failedRestart++;
        churn.codes[code] = (churn.codes[code] ?? 0) + 1;
        err(`churn ${phase} ${code}`);
      };
      try {
        s = await open(OP_REQUEST, Buffer.alloc(REQUEST_BYTES, 0x71));
      } catch (e) {
        return fail((e as NodeJS.ErrnoException).code ?? 'connect');
      }
      await new Promise<void>((resolve) => {
        let got = 0;
        const timer = setTimeout(() => (fail('TIMEOUT'), s!.destroy(), resolve()), TIMEOUT_MS);
        s!.on('data', (d: Buffer) => (got += d.length));
        s!.on('error', (e: NodeJS.ErrnoException) => (clearTimeout(timer), fail(e.code ?? 'error'), resolve()));
        s!.on('end', () => {
          clearTimeout(timer);
          if (got >= RESPONSE_BYTES) churn.ok++;
          else fail('SHORT');
          s!.destroy();
          resolve();
        });
      });
    };
    let churning = true;
    const churnLoop = (async () => {
      const inFlight = new Set<Promise<void>>();
      while (churning) {
        for (let i = 0; i < CHURN_PER_S / 10; i++) {
          const p = oneRequest().finally(() => inFlight.delete(p));
          inFlight.add(p);
        }
        await sleep(100);
      }
      await Promise.all(inFlight);
    })();

    // Pings: round-robin over the held connections at a fixed rate.
    let pinging = true;
    let next = 0;
    const pingLoop = (async () => {
      while (pinging) {
        for (let i = 0; i < PINGS_PER_S / 20; i++) {
          const h = held[next++ % held.length]!;
          if (!h.closed && !h.pending) void roundTrip(h).then((ok) => ok || h.closed || err(`ping ${phase} timeout`));
        }
        await sleep(50);
      }
    })();

    // Policy pushes and reloads.
    let pushes = 0;
    let configuring = true;
    const configLoop = (async () => {
      while (configuring) {
        await sleep(CONFIG_EVERY_MS);
        if (!configuring) break;
        pushes++;
        const withDeny = pushes % 3 === 1;
        const policies = POLICY_ALLOW + (withDeny ? POLICY_DENY_UNUSED : '');
        bed.writeConfig({ workloadPolicies: { b1: ['shop/allow-a1'] }, policies: pushes % 3 === 2 ? POLICY_ALLOW + '# reload, same policies\n' : policies });
      }
    })();

    // Samples.
    const nodes = [bed.nodes['node-a'], nodeB];
    const samples: Record<string, unknown>[] = [];
    let lastBulk = 0;
    const start = performance.now();
    const sample = (): void => {
      const rtts = windowRtts.sort((a, b) => a - b);
      windowRtts = [];
      const s = {
        t: Math.round((performance.now() - start) / 1000),
        open: held.filter((h) => !h.closed).length,
        errors: errorCount(),
        pings: rtts.length,
        p50Ms: rtts.length ? Math.round(percentileSorted(rtts, 50) * 10) / 10 : null,
        p99Ms: rtts.length ? Math.round(percentileSorted(rtts, 99) * 10) / 10 : null,
        fdsA: fds(pidOf(nodes[0]!)),
        fdsB: fds(pidOf(nodes[1]!)),
        rssA: rssMb(pidOf(nodes[0]!)),
        rssB: rssMb(pidOf(nodes[1]!)),
        bulkMbit: Math.round(((bulkBytes - lastBulk) * 8) / (SAMPLE_MS / 1000) / 1e6),
      };
      lastBulk = bulkBytes;
      samples.push(s);
      log(JSON.stringify(s));
    };
    while (performance.now() - start < DURATION_S * 1000) {
      await sleep(SAMPLE_MS);
      sample();
    }
    // Warm-up: the first third of the run (connections are all open before the clock starts).
    const warm = samples.slice(Math.floor(samples.length / 3));
    const drift = (k: string): number | null => {
      const a = warm[0]?.[k] as number | undefined;
      const b = warm.at(-1)?.[k] as number | undefined;
      return a && b !== undefined ? Math.round(((b - a) / a) * 1000) / 10 : null;
    };
    const p99s = samples.map((s) => s['p99Ms']).filter((x): x is number => typeof x === 'number');
    result['soak'] = {
      errors: { ...errors },
      churnOk: churn.ok,
      policyPushesAndReloads: pushes,
      driftPercent: { fdsA: drift('fdsA'), fdsB: drift('fdsB'), rssA: drift('rssA'), rssB: drift('rssB') },
      p99MsOverTime: p99s,
      samples,
    };
    log(`soak done: ${errorCount()} errors; drift ${JSON.stringify((result['soak'] as { driftPercent: unknown }).driftPercent)}`);

    // --- restart under load ---
    if (RESTART) {
      configuring = false;
      await configLoop;
      const before = { ...churn };
      phase = 'restart';
      const old = nodeB.ztunnel!;
      log('starting the second ztunnel on node-b (takes over b1 with SO_REUSEPORT)');
      const t1 = performance.now();
      const fresh = await bed.startZtunnel(nodeB, { takeOver: true });
      log(`second ztunnel ready and enrolled in ${Math.round(performance.now() - t1)} ms; SIGTERM to the old one`);
      // Pings stop, and those in flight finish, so each held connection is idle at SIGTERM.
      pinging = false;
      await pingLoop;
      await Promise.all(held.filter((h) => h.pending).map((h) => new Promise<void>((r) => {
        const p = h.pending!;
        const done = p.resolve;
        p.resolve = (ok) => (done(ok), r());
      })));
      const exited = old.exited;
      old.child.kill('SIGTERM');
      // Each held connection finishes one last round trip and closes, well within the deadline.
      const alive = held.filter((h) => !h.closed);
      const finished = await Promise.all(
        alive.map(async (h) => {
          const ok = await roundTrip(h);
          h.ending = true;
          h.s.end();
          return ok;
        }),
      );
      const clean = finished.filter(Boolean).length;
      const oldCode = await Promise.race([exited, sleep((DRAIN_DEADLINE_S + 20) * 1000).then(() => 'still running')]);
      // A few more seconds of churn against the new process alone.
      await sleep(3_000);
      result['restart'] = {
        heldAtSigterm: alive.length,
        finishedCleanly: clean,
        reset: alive.length - clean,
        heldErrors: Object.fromEntries(Object.entries(errors).filter(([k]) => k.startsWith('held restart'))),
        churnDuringHandOver: { ok: churn.ok - before.ok, failed: churn.failedRestart, codes: { ...churn.codes } },
        oldExit: oldCode,
        newAnswering: (await bed.http(nodeB, 'readiness', '/healthz/ready').catch(() => ({ status: 0 }))).status,
      };
      log(`restart: ${JSON.stringify(result['restart'])}`);
      void fresh;
    }
    churning = false;
    pinging = false;
    await Promise.all([churnLoop, pingLoop]);
    for (const s of bulk) s.destroy();
    for (const h of held) h.s.destroy();
    result['errors'] = errors;
  } finally {
    await stopChild(sink);
    await bed.destroy();
  }
  console.log(JSON.stringify(result));
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
