// The load generator, run as its own process (forked by run.ts, one fresh process per job so
// measurements do not share a heap or sockets). Receives one Job over IPC, runs it within its
// time bounds, answers with a result. See lib/protocol.ts for the messages.
import type { Socket } from 'node:net';
import {
  OP_DOWNLOAD,
  OP_ECHO,
  OP_REQUEST,
  REQUEST_BYTES,
  RESPONSE_BYTES,
  type BulkJob,
  type BulkResult,
  type ClientMessage,
  type ConnRateJob,
  type ConnRateResult,
  type IdleJob,
  type IdleResult,
  type Job,
  type ParentMessage,
  type PingPongJob,
  type PingPongResult,
} from './lib/protocol.js';
import { openConnection } from './lib/socks5-client.js';

const send = (m: ClientMessage) => {
  process.send!(m);
};
/** Sends the last message and closes the channel once it is written. */
const sendAndLeave = (m: ClientMessage) => process.send!(m, undefined, {}, () => process.disconnect());
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const nowMs = () => performance.now();
const HIGH_WATER_MARK = 256 * 1024;

function raiseReadableHighWaterMark(s: Socket): void {
  const r = (s as unknown as { _readableState?: { highWaterMark: number } })._readableState;
  if (r && r.highWaterMark < HIGH_WATER_MARK) r.highWaterMark = HIGH_WATER_MARK;
}

async function bulk(job: BulkJob): Promise<BulkResult> {
  const sockets: Socket[] = [];
  let bytes = 0;
  let errors = 0;
  try {
    for (let i = 0; i < job.connections; i++) {
      const s = await openConnection(job.route);
      raiseReadableHighWaterMark(s);
      s.on('error', () => errors++);
      s.on('data', (d: Buffer) => (bytes += d.length));
      s.write(Buffer.from([OP_DOWNLOAD]));
      s.resume();
      sockets.push(s);
    }
    await sleep(job.warmupMs);
    send({ type: 'mark' });
    const startBytes = bytes;
    const t0 = nowMs();
    await sleep(job.durationMs);
    const seconds = (nowMs() - t0) / 1000;
    const got = bytes - startBytes;
    return { bytes: got, seconds, gbitPerSec: (got * 8) / seconds / 1e9, errors };
  } finally {
    for (const s of sockets) s.destroy();
  }
}

async function pingPong(job: PingPongJob): Promise<PingPongResult> {
  const s = await openConnection(job.route);
  try {
    let errors = 0;
    s.on('error', () => errors++);
    const message = Buffer.alloc(job.messageBytes, 0x70);
    const samplesUs: number[] = [];
    const sentAtMs: number[] = [];
    const deadline = nowMs() + job.maxDurationMs;
    let tStart = 0;
    let tMeasure = 0;
    await new Promise<void>((resolve, reject) => {
      let pending = job.messageBytes;
      let n = 0;
      let sentAt = 0n;
      let sentAtWall = 0;
      // The warm-up ends after warmupRoundTrips and, when given, warmupMs (whichever is later).
      let warm = job.warmupRoundTrips;
      const warmUntil = nowMs() + (job.warmupMs ?? 0);
      const next = () => {
        if (n >= warm + job.maxRoundTrips || nowMs() > deadline) return resolve();
        if (n === warm && nowMs() < warmUntil) warm++;
        if (n === warm) {
          tMeasure = nowMs();
          send({ type: 'mark' });
        }
        pending = job.messageBytes;
        if (job.trace) sentAtWall = performance.timeOrigin + performance.now();
        sentAt = process.hrtime.bigint();
        s.write(message);
      };
      s.on('data', (d: Buffer) => {
        pending -= d.length;
        if (pending > 0) return;
        const rtt = Number(process.hrtime.bigint() - sentAt) / 1000;
        if (n >= warm) {
          samplesUs.push(rtt);
          if (job.trace) sentAtMs.push(sentAtWall);
        }
        n++;
        next();
      });
      s.on('close', () => reject(new Error(`connection closed after ${n} round trips`)));
      s.resume();
      tStart = nowMs();
      s.write(Buffer.from([OP_ECHO]));
      next();
    });
    const seconds = (nowMs() - (tMeasure || tStart)) / 1000;
    // CLOCK_MONOTONIC (process.hrtime) minus the wall clock used for sentAtMs, to line samples up with other tools' traces (perf -k mono).
    const monoMinusWallMs = Number(process.hrtime.bigint()) / 1e6 - (performance.timeOrigin + performance.now());
    return { samplesUs, ...(job.trace ? { sentAtMs, monoMinusWallMs } : {}), seconds, errors };
  } finally {
    s.destroy();
  }
}

/** The request of every connection-rate connection (written as is, never changed). */
const REQUEST = Buffer.alloc(1 + REQUEST_BYTES, 0x71);
REQUEST[0] = OP_REQUEST;

/** One connection: connect → request → response → the server's close. Resolves when done. */
function oneRequest(job: ConnRateJob): Promise<void> {
  return openConnection(job.route).then(
    (s) =>
      new Promise<void>((resolve, reject) => {
        let got = 0;
        const timer = setTimeout(() => (s.destroy(), reject(new Error('request timed out'))), 10_000);
        s.on('data', (d: Buffer) => (got += d.length));
        s.on('error', (e) => (clearTimeout(timer), s.destroy(), reject(e)));
        s.on('end', () => {
          clearTimeout(timer);
          s.destroy();
          if (got >= RESPONSE_BYTES) resolve();
          else reject(new Error(`short response: ${got} of ${RESPONSE_BYTES} bytes`));
        });
        s.resume();
        s.write(REQUEST);
      }),
  );
}

async function connRate(job: ConnRateJob): Promise<ConnRateResult> {
  const t0 = nowMs();
  const tMeasure = t0 + job.warmupMs;
  const tEnd = tMeasure + job.durationMs;
  let connections = 0;
  let errors = 0;
  let firstError: string | undefined;
  let marked = false;
  const worker = async () => {
    while (nowMs() < tEnd) {
      try {
        await oneRequest(job);
        const t = nowMs();
        if (t >= tMeasure && t < tEnd) connections++;
      } catch (e) {
        errors++;
        firstError ??= e instanceof Error ? e.message : String(e);
        await sleep(5); // do not spin on a refusing peer
      }
    }
  };
  const markTimer = setTimeout(() => {
    marked = true;
    send({ type: 'mark' });
  }, job.warmupMs);
  await Promise.all(Array.from({ length: job.concurrency }, worker));
  clearTimeout(markTimer);
  if (!marked) send({ type: 'mark' });
  const seconds = job.durationMs / 1000;
  return { connections, seconds, perSec: connections / seconds, errors, ...(firstError ? { firstError } : {}) };
}

/** Opens `count` echo connections (each proven end to end with one echoed byte) and holds them. */
async function idle(job: IdleJob): Promise<IdleResult> {
  const sockets: Socket[] = [];
  let failed = 0;
  let firstError: string | undefined;
  let closedWhileIdle = 0;
  const t0 = nowMs();
  const deadline = t0 + job.maxOpenMs;
  let next = 0;
  const openOne = async (): Promise<void> => {
    const s = await openConnection(job.route);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('echo timed out')), 10_000);
      s.once('data', () => (clearTimeout(timer), resolve()));
      s.once('error', (e) => (clearTimeout(timer), reject(e)));
      s.resume();
      s.write(Buffer.from([OP_ECHO, 0x21]));
    }).catch((e) => {
      s.destroy();
      throw e;
    });
    s.on('error', () => {});
    s.on('close', () => closedWhileIdle++);
    sockets.push(s);
  };
  const worker = async () => {
    while (next < job.count && nowMs() < deadline) {
      next++;
      try {
        await openOne();
      } catch (e) {
        failed++;
        firstError ??= e instanceof Error ? e.message : String(e);
        if (failed > 50) return; // the path is refusing: report what we have
      }
    }
  };
  await Promise.all(Array.from({ length: job.openConcurrency }, worker));
  const openSeconds = (nowMs() - t0) / 1000;
  send({ type: 'holding', opened: sockets.length, failed, openSeconds, ...(firstError ? { firstError } : {}) });
  await new Promise<void>((resolve) => {
    const onMsg = (m: ParentMessage) => {
      if (m.type === 'release') {
        process.removeListener('message', onMsg);
        resolve();
      }
    };
    process.on('message', onMsg);
  });
  const closedBefore = closedWhileIdle;
  for (const s of sockets) s.destroy();
  return { opened: sockets.length, failed, openSeconds, closedWhileIdle: closedBefore, ...(firstError ? { firstError } : {}) };
}

async function runJob(job: Job): Promise<BulkResult | PingPongResult | ConnRateResult | IdleResult> {
  switch (job.kind) {
    case 'bulk':
      return bulk(job);
    case 'pingpong':
      return pingPong(job);
    case 'connrate':
      return connRate(job);
    case 'idle':
      return idle(job);
  }
}

process.once('message', (m: ParentMessage) => {
  if (m.type !== 'job') return;
  runJob(m.job).then(
    (result) => sendAndLeave({ type: 'result', result }),
    (e: unknown) => sendAndLeave({ type: 'error', message: e instanceof Error ? e.message : String(e) }),
  );
});
// Leave when the orchestrator goes away, whatever we were doing.
process.on('disconnect', () => process.exit(0));
