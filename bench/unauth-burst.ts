// RSS after bursts of unauthenticated connections to 15008 (issue 16 item 5). One ztunnel-ts
// daemon (dedicated mode, local CA) on a 127.x address; each burst opens N TCP connections that
// send a TLS ClientHello and then stall (no certificate, no Finished), as a scanner or a broken
// client does, holds them until the daemon's handshake deadline closes them, and waits until
// every one is closed. RSS (VmRSS of the daemon) is read when idle before the first burst and
// after each burst once its connections are gone. Not a test: numbers are printed, never judged.
//
//   npm run build && node dist/bench/unauth-burst.js [--bursts 6] [--connections 3000]
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { LocalCa } from '../src/identity/local-ca.js';
import { dedicatedEnv, randomLoopback, startDaemon, tempDir, writeTemp } from '../test/helpers/daemon.js';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

const BURSTS = arg('bursts', 6);
const CONNECTIONS = arg('connections', 3000);
const SETTLE_S = arg('settle-seconds', 30);
const ip = randomLoopback();
const dir = tempDir('zt-burst-');

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** One connection that sends a real ClientHello (from Node's TLS client) and then goes silent. */
function stalledHandshake(): Promise<void> {
  return new Promise((resolve) => {
    const raw = net.connect({ host: ip, port: 15008 });
    raw.on('error', () => {});
    raw.once('close', () => resolve());
    raw.once('connect', () => {
      // Capture the ClientHello a TLS client writes, send it on the raw socket, and never answer.
      const capture = new net.Socket({ writable: true } as never);
      const hello: Buffer[] = [];
      (capture as unknown as { write: (b: Buffer) => boolean }).write = (b: Buffer) => (hello.push(b), true);
      const t = tls.connect({ socket: capture as never, ALPNProtocols: ['h2'], rejectUnauthorized: false });
      t.on('error', () => {});
      setImmediate(() => {
        if (hello.length) raw.write(Buffer.concat(hello));
        t.destroy();
      });
    });
  });
}

/** V8 heap figures from the daemon's own process metrics (prom-client defaults), in MB. */
async function heapMb(d: Awaited<ReturnType<typeof startDaemon>>): Promise<{ heapTotal: number; heapUsed: number; external: number }> {
  const text = await (await d.http('stats', '/metrics')).text();
  const v = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)`, 'm').exec(text)?.[1] ?? NaN) / 1048576;
  return { heapTotal: v('nodejs_heap_size_total_bytes'), heapUsed: v('nodejs_heap_size_used_bytes'), external: v('nodejs_external_memory_bytes') };
}

async function main(): Promise<void> {
  await LocalCa.open({ stateDir: `${dir}/ca`, ttlMs: 24 * 3600_000 });
  const config = writeTemp(dir, 'c.yaml', `workloads:\n- uid: k//Pod/ns/w\n  name: w\n  namespace: ns\n  serviceAccount: sa\n  trustDomain: cluster.local\n  workloadIps: ["${ip}"]\n  protocol: HBONE\n  services: {}\n`);
  const d = await startDaemon({ name: 'burst', env: { ...dedicatedEnv({ workloadInfo: 'ns/w/sa', ip, config, stateDir: `${dir}/ca` }), RUST_LOG: 'info,access=error' } });
  const pid = d.child.pid!;
  await new Promise((r) => setTimeout(r, 2000));
  const idle = rssMb(pid);
  console.log(`idle RSS ${idle.toFixed(1)} MB`);
  const rows: { burst: number; peak: number; after: number; heapTotal: number; heapUsed: number; external: number }[] = [];
  for (let b = 1; b <= BURSTS; b++) {
    let peak = rssMb(pid);
    const sampler = setInterval(() => (peak = Math.max(peak, rssMb(pid))), 200);
    const all: Promise<void>[] = [];
    for (let i = 0; i < CONNECTIONS; i++) {
      all.push(stalledHandshake());
      if (i % 200 === 199) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(all);
    clearInterval(sampler);
    await new Promise((r) => setTimeout(r, 2000));
    const after = rssMb(pid);
    const heap = await heapMb(d);
    rows.push({ burst: b, peak, after, ...heap });
    console.log(`burst ${b}: ${CONNECTIONS} stalled handshakes, peak RSS ${peak.toFixed(1)} MB, after ${after.toFixed(1)} MB (${(after / idle).toFixed(2)}× idle); V8 heap total ${heap.heapTotal.toFixed(1)} MB, used ${heap.heapUsed.toFixed(1)} MB, external ${heap.external.toFixed(1)} MB`);
  }
  // Then idle: what the process gives back on its own.
  const settle: number[] = [];
  for (let i = 0; i < SETTLE_S / 5; i++) {
    await new Promise((r) => setTimeout(r, 5000));
    settle.push(rssMb(pid));
  }
  const heap = await heapMb(d);
  console.log(`idle after the bursts: RSS every 5 s ${settle.map((x) => x.toFixed(1)).join(', ')} MB (${(settle.at(-1)! / idle).toFixed(2)}× idle); V8 heap total ${heap.heapTotal.toFixed(1)} MB, used ${heap.heapUsed.toFixed(1)} MB`);
  console.log(JSON.stringify({ idleMb: idle, connections: CONNECTIONS, bursts: rows, settleMb: settle }));
  await d.stop();
}

await main();
