// Transparent network policies on and off (issue 5, capture.md §8): bulk throughput of one mesh
// connection a1 (node-a) → b2:8080 (node-b) through the shared-mode netns test bed, with the
// in-pod DSCP rule and node-b's stamping rule installed in both modes, so the only difference is
// the outer port the sending ztunnel dials (15008 vs 8080 + DSCP redirect at the pod). Also counts
// the pooled outer connections a1 holds to b2 after talking to two ports of it.
//
//   node dist/bench/transparent-throughput.js [--runs 3] [--mib 256] [--seconds 5]
//
// Root only (ip netns, iptables). Each transfer stops at --mib MiB or --seconds, whichever comes
// first; Gbit/s counts bytes the sink received over the time from the first write to the sink's
// byte count coming back.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../test/helpers/daemon.js';
import { createBed, exchange, type Bed, type BedPod } from '../test/netns/bed.js';

const DSCP = 23;
const PORTS = [8080, 9090] as const;
const CHUNK = Buffer.alloc(64 * 1024, 0x61);

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '3' }, mib: { type: 'string', default: '256' }, seconds: { type: 'string', default: '5' } },
});
const runs = Math.max(1, Number(values.runs));
const limitBytes = Number(values.mib) * 1024 * 1024;
const limitMs = Number(values.seconds) * 1000;

/** A sink on `port` in `pod`: counts bytes, answers the count when the client half-closes. */
async function startSink(pod: BedPod, port: number): Promise<() => Promise<void>> {
  const { server } = await pod.sockets.listen({ host: '0.0.0.0', port });
  const open = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    open.add(s);
    let n = 0;
    s.on('error', () => {});
    s.on('close', () => open.delete(s));
    s.on('data', (d: Buffer) => (n += d.length));
    s.on('end', () => s.end(`${n}\n`));
  });
  return () => new Promise((r) => {
    for (const s of open) s.destroy();
    server.close(() => r());
  });
}

/** One bounded bulk transfer from `from` to `host:port`; returns Gbit/s. */
async function transfer(from: BedPod, host: string, port: number): Promise<{ gbps: number; bytes: number }> {
  const s = await from.sockets.connect({ host, port, timeoutMs: 5000 });
  const t0 = process.hrtime.bigint();
  let sent = 0;
  const reply = new Promise<number>((resolve, reject) => {
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString()));
    s.on('end', () => resolve(Number(text.trim())));
    s.on('error', reject);
  });
  while (sent < limitBytes && Number(process.hrtime.bigint() - t0) / 1e6 < limitMs) {
    sent += CHUNK.length;
    if (!s.write(CHUNK)) await new Promise((r) => s.once('drain', r));
  }
  s.end();
  const received = await Promise.race([reply, new Promise<number>((_, rej) => setTimeout(() => rej(new Error('no byte count within 30 s')), 30_000))]);
  s.destroy();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (received !== sent) throw new Error(`sink received ${received} of ${sent} bytes`);
  return { gbps: (received * 8) / seconds / 1e9, bytes: received };
}

function establishedTo(bed: Bed, pod: BedPod, ip: string): number[] {
  const out = bed.exec(pod.netns, ['ss', '-Htn', 'state', 'established', 'dst', ip]);
  return out.split('\n').filter((l) => l.trim()).map((l) => Number(l.trim().split(/\s+/).at(-1)!.split(':').at(-1))).sort((a, b) => a - b);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const bed = await createBed({ start: false, redirectArgs: ['--dscp-mark', String(DSCP)], env: { RUST_LOG: 'info,access=warn' } });
try {
  const [a1, a2, b1, b2] = (['a1', 'a2', 'b1', 'b2'] as const).map((n) => bed.pods[n]!) as [BedPod, BedPod, BedPod, BedPod];
  const mesh = [a1, a2, b1, b2].flatMap((p) => ['--mesh-ip', p.ip]);
  execFileSync(join(REPO_ROOT, 'deploy', 'node-dscp-stamping.sh'), ['install', bed.nodes['node-b'].netns, '--dscp', String(DSCP), ...mesh, '--out-iface', 'br0']);
  const sinks = await Promise.all(PORTS.map((p) => startSink(b2, p)));
  const results: Record<string, { runs: number[]; medianGbps: number; pooledPorts: number[] }> = {};
  for (const [mode, env] of [['stock', {}], ['transparent', { TRANSPARENT_NETWORK_POLICIES: 'true', ZTUNNEL_DSCP_MARK: String(DSCP) }]] as const) {
    for (const n of Object.values(bed.nodes)) await bed.stopZtunnel(n);
    await Promise.all(Object.values(bed.nodes).map((n) => bed.startZtunnel(n, { env })));
    // Warm-up (opens the pooled connection, issues certificates), then the measured runs.
    await transfer(a1, b2.ip, PORTS[0]);
    const gbps: number[] = [];
    for (let i = 0; i < runs; i++) gbps.push((await transfer(a1, b2.ip, PORTS[0])).gbps);
    // Pooling: one more short exchange on the second port, then count a1's outer connections.
    await exchange(a1, b2.ip, PORTS[1], 'x');
    results[mode] = { runs: gbps.map((g) => Number(g.toFixed(3))), medianGbps: Number(median(gbps).toFixed(3)), pooledPorts: establishedTo(bed, a1, b2.ip) };
    console.log(`${mode.padEnd(12)} median ${median(gbps).toFixed(2)} Gbit/s  runs ${gbps.map((g) => g.toFixed(2)).join(' / ')}  a1→b2 outer connections on ports [${results[mode]!.pooledPorts.join(', ')}]`);
  }
  console.log(JSON.stringify({ limitMiB: limitBytes / 1048576, limitSeconds: limitMs / 1000, results }));
  for (const close of sinks) await close();
} finally {
  await bed.destroy();
}
