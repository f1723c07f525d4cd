// One measurement = one fresh load-client process running one job against one bed, while this
// process samples the proxies' CPU (/proc/<pid>/stat) at the start and end of the client's
// measurement window, and their RSS (/proc/<pid>/status) around idle connections.
import path from 'node:path';
import { forkScript, stopChild, waitForMessage } from './children.js';
import { cpuSeconds, machineBusySeconds, rssBytes, threadCpuDelta, threadCpuSeconds, waitDelta, type ThreadCpu } from './proc-stats.js';
import type {
  BulkResult,
  ClientMessage,
  ConnRateResult,
  IdleJob,
  IdleResult,
  Job,
  ParentMessage,
  PingPongResult,
} from './protocol.js';
import type { Bed } from './scenarios.js';
import { median } from './stats.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface JobOutcome<R> {
  result: R;
  /** CPU seconds each proxy used during the measurement window, by proxy name. */
  proxyCpuSeconds: Record<string, number>;
  /** Where the CPU went during the same window. */
  window: WindowCpu;
}

/** CPU seconds over one measurement window (the load client's mark to its answer). */
export interface WindowCpu {
  /** Wall seconds of the window. */
  seconds: number;
  /** CPU seconds per proxy (all its threads). */
  proxies: Record<string, number>;
  /** Per proxy, CPU seconds per thread name (`name×n` for threads sharing a name; `(ended threads)` for the rest of the process's CPU). */
  threads: Record<string, Record<string, number>>;
  /** Per proxy, seconds its threads were runnable but waited for a CPU (summed over threads). */
  runQueueWait: Record<string, number>;
  /** The load client (`load client`) and the bed's observed processes, by name. */
  others: Record<string, number>;
  /** Busy CPU seconds of the whole machine, all processes (other work on the machine included). */
  machineBusy: number;
}

interface Snapshot {
  t: bigint;
  proxies: Record<string, number>;
  threads: Record<string, ThreadCpu[]>;
  others: Record<string, number>;
  machineBusy: number;
}

function cpuSnapshot(bed: Bed, clientPid: number | undefined): Snapshot {
  const snap: Snapshot = { t: process.hrtime.bigint(), proxies: {}, threads: {}, others: {}, machineBusy: machineBusySeconds() };
  for (const p of bed.proxies) {
    snap.threads[p.name] = threadCpuSeconds(p.pid);
    snap.proxies[p.name] = cpuSeconds(p.pid);
  }
  const others = [...(clientPid ? [{ name: 'load client', pid: clientPid }] : []), ...(bed.observed ?? [])];
  for (const o of others) {
    try {
      snap.others[o.name] = cpuSeconds(o.pid);
    } catch {
      // gone (the load client right after its answer)
    }
  }
  return snap;
}

function windowBetween(bed: Bed, a: Snapshot, b: Snapshot): WindowCpu {
  const threads: Record<string, Record<string, number>> = {};
  for (const p of bed.proxies) {
    const t = threadCpuDelta(a.threads[p.name]!, b.threads[p.name]!);
    const ended = b.proxies[p.name]! - a.proxies[p.name]! - Object.values(t).reduce((x, y) => x + y, 0);
    if (ended > 0.005) t['(ended threads)'] = ended;
    threads[p.name] = t;
  }
  const others: Record<string, number> = {};
  for (const [k, v] of Object.entries(b.others)) if (a.others[k] !== undefined) others[k] = v - a.others[k];
  const proxies: Record<string, number> = {};
  const runQueueWait: Record<string, number> = {};
  for (const p of bed.proxies) {
    proxies[p.name] = b.proxies[p.name]! - a.proxies[p.name]!;
    runQueueWait[p.name] = waitDelta(a.threads[p.name]!, b.threads[p.name]!);
  }
  return { seconds: Number(b.t - a.t) / 1e9, proxies, threads, runQueueWait, others, machineBusy: b.machineBusy - a.machineBusy };
}

function jobBudgetMs(job: Job): number {
  switch (job.kind) {
    case 'bulk':
    case 'connrate':
      return job.warmupMs + job.durationMs + 60_000;
    case 'pingpong':
      return job.maxDurationMs + 60_000;
    case 'idle':
      return job.maxOpenMs + 120_000;
  }
}

/**
 * Runs `job` in a fresh load client. `onHolding` (idle jobs) runs while the connections are held
 * open; the client is released afterwards.
 */
export async function runClientJob<R>(benchDir: string, bed: Bed, job: Job, onHolding?: (m: Extract<ClientMessage, { type: 'holding' }>) => Promise<void>): Promise<JobOutcome<R>> {
  const child = forkScript(path.join(benchDir, 'load-client.js'), bed.clientWrapper ? { wrapper: bed.clientWrapper } : {});
  let cpuAtMark: Snapshot | undefined;
  let holdingWork: Promise<void> | undefined;
  try {
    child.on('message', (m: ClientMessage) => {
      if (m.type === 'mark') cpuAtMark = cpuSnapshot(bed, child.pid);
      if (m.type === 'holding') {
        holdingWork = (onHolding ? onHolding(m) : Promise.resolve()).finally(() => {
          if (child.connected) child.send({ type: 'release' } satisfies ParentMessage);
        });
      }
    });
    const answer = waitForMessage<ClientMessage>(child, (m) => m.type === 'result' || m.type === 'error', jobBudgetMs(job), `load client (${job.kind})`);
    child.send({ type: 'job', job } satisfies ParentMessage);
    // The client's own CPU is read when its answer arrives, before it exits.
    const { m, cpuAtEnd } = await answer.then((m) => ({ m, cpuAtEnd: cpuSnapshot(bed, child.pid) }));
    await holdingWork;
    if (m.type === 'error') throw new Error(`load client (${job.kind}): ${m.message}`);
    if (m.type !== 'result') throw new Error('unexpected message');
    const start = cpuAtMark ?? cpuAtEnd;
    const proxyCpuSeconds: Record<string, number> = {};
    for (const p of bed.proxies) proxyCpuSeconds[p.name] = cpuAtEnd.proxies[p.name]! - start.proxies[p.name]!;
    return { result: m.result as R, proxyCpuSeconds, window: windowBetween(bed, start, cpuAtEnd) };
  } finally {
    await stopChild(child, 2_000);
  }
}

const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

// ------------------------------------------------------------------------------------ bulk

export interface BulkRep {
  gbitPerSec: number;
  bytes: number;
  seconds: number;
  proxyCpuSeconds: Record<string, number>;
  /** Bytes moved per CPU-second summed over the proxies (null without proxies). */
  bytesPerProxyCpuSecond: number | null;
  window: WindowCpu;
}

export async function bulkOnce(benchDir: string, bed: Bed, connections: number, warmupMs: number, durationMs: number): Promise<BulkRep> {
  const { result, proxyCpuSeconds, window } = await runClientJob<BulkResult>(benchDir, bed, { kind: 'bulk', route: bed.route, connections, warmupMs, durationMs });
  if (result.bytes === 0) throw new Error(`bulk: no bytes arrived in ${durationMs} ms (${result.errors} socket errors)`);
  const cpu = sum(proxyCpuSeconds);
  return {
    gbitPerSec: result.gbitPerSec,
    bytes: result.bytes,
    seconds: result.seconds,
    proxyCpuSeconds,
    bytesPerProxyCpuSecond: bed.proxies.length && cpu > 0 ? result.bytes / cpu : null,
    window,
  };
}

// ------------------------------------------------------------------------------- ping-pong

export async function pingPongOnce(benchDir: string, bed: Bed, o: { warmupRoundTrips: number; warmupMs?: number; roundTrips: number; maxDurationMs: number; trace?: boolean }): Promise<PingPongResult & { window: WindowCpu }> {
  const { result, window } = await runClientJob<PingPongResult>(benchDir, bed, {
    kind: 'pingpong',
    route: bed.route,
    messageBytes: 100,
    warmupRoundTrips: o.warmupRoundTrips,
    ...(o.warmupMs ? { warmupMs: o.warmupMs } : {}),
    maxRoundTrips: o.roundTrips,
    maxDurationMs: o.maxDurationMs,
    ...(o.trace ? { trace: true } : {}),
  });
  return { ...result, window };
}

// ------------------------------------------------------------------------------- conn rate

export interface ConnRateRep {
  perSec: number;
  connections: number;
  errors: number;
  firstError?: string;
  /** Proxy CPU microseconds per completed connection, by proxy name. */
  cpuUsPerConnection: Record<string, number>;
  window: WindowCpu;
}

export async function connRateOnce(benchDir: string, bed: Bed, concurrency: number, warmupMs: number, durationMs: number): Promise<ConnRateRep> {
  const { result, proxyCpuSeconds, window } = await runClientJob<ConnRateResult>(benchDir, bed, { kind: 'connrate', route: bed.route, concurrency, warmupMs, durationMs });
  if (result.connections === 0) throw new Error(`no connection completed (${result.errors} failed; first error: ${result.firstError ?? 'none'})`);
  const cpuUsPerConnection: Record<string, number> = {};
  for (const [k, v] of Object.entries(proxyCpuSeconds)) cpuUsPerConnection[k] = result.connections ? (v * 1e6) / result.connections : NaN;
  return {
    perSec: result.perSec,
    connections: result.connections,
    errors: result.errors,
    ...(result.firstError ? { firstError: result.firstError } : {}),
    cpuUsPerConnection,
    window,
  };
}

// ------------------------------------------------------------------------------------ memory

/** Median of a few RSS samples a little apart (RSS moves with GC). */
export async function settledRss(pid: number, samples = 3, gapMs = 250): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < samples; i++) {
    if (i) await sleep(gapMs);
    values.push(rssBytes(pid));
  }
  return median(values);
}

export async function rssOfProxies(bed: Bed): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const p of bed.proxies) out[p.name] = await settledRss(p.pid);
  return out;
}

export interface IdleMeasurement {
  requested: number;
  opened: number;
  failed: number;
  openSeconds: number;
  firstError?: string;
  closedWhileIdle: number;
  rssBeforeBytes: Record<string, number>;
  rssWithBytes: Record<string, number>;
  /** (RSS with − RSS before) / opened, per proxy. */
  bytesPerConnection: Record<string, number>;
}

/**
 * Per-connection memory: a warm-up round opens and closes `warmupCount` connections (so compiled
 * code, pooled sessions and first-use buffers are not charged to the measured ones), then RSS is
 * sampled before and while `count` connections are held.
 */
export async function idleConnections(benchDir: string, bed: Bed, count: number, warmupCount: number, settleMs: number): Promise<IdleMeasurement> {
  const job: IdleJob = { kind: 'idle', route: bed.route, count, openConcurrency: 50, maxOpenMs: 150_000 };
  if (warmupCount > 0) await runClientJob<IdleResult>(benchDir, bed, { ...job, count: warmupCount });
  await sleep(settleMs);
  const rssBeforeBytes = await rssOfProxies(bed);
  let rssWithBytes: Record<string, number> = {};
  const { result } = await runClientJob<IdleResult>(benchDir, bed, job, async () => {
    await sleep(settleMs);
    rssWithBytes = await rssOfProxies(bed);
  });
  if (result.opened === 0) throw new Error(`no idle connection could be opened (${result.failed} failed; first error: ${result.firstError ?? 'none'})`);
  const bytesPerConnection: Record<string, number> = {};
  for (const p of bed.proxies) bytesPerConnection[p.name] = result.opened ? (rssWithBytes[p.name]! - rssBeforeBytes[p.name]!) / result.opened : NaN;
  return {
    requested: count,
    opened: result.opened,
    failed: result.failed,
    openSeconds: result.openSeconds,
    ...(result.firstError ? { firstError: result.firstError } : {}),
    closedWhileIdle: result.closedWhileIdle,
    rssBeforeBytes,
    rssWithBytes,
    bytesPerConnection,
  };
}
