// Entry of a data-plane worker thread (docs/workers.md): builds this thread's DataPlane from the
// workerData, keeps its state replica in step with the control plane's batches, and answers the
// control plane's calls. Started only by data-plane-workers.ts.
import { parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { ZtunnelError, type ErrorCode } from './core/errors.js';
import { DataPlane } from './data-plane.js';
import type { CallName, FromWorker, MetricsJson, ToWorker, WorkerCalls, WorkerInit } from './data-plane-protocol.js';
import { CertificateCache } from './identity/certificate-cache.js';
import { openCrl } from './crl-setup.js';
import { IdleReclaimer } from './platform/memory.js';
import { basicConstraintsReader, loadNativeAddon } from './platform/native-addon.js';
import { LinuxSocketFactory } from './platform/linux-socket-factory.js';
import { PlainSocketFactory } from './platform/plain-socket-factory.js';
import type { SocketFactory } from './platform/socket-factory.js';
import { State } from './state/state.js';
import { readBasicConstraintsWith } from './tls/verify.js';
import type { WorkloadCertificate } from './tls/certificate.js';
import { setConnectionIdSource } from './telemetry/connection-record.js';
import { LogControl } from './telemetry/log-control.js';
import { createLogger } from './telemetry/logger.js';
import { batchLines, istioDestination } from './telemetry/plain-format.js';

/** How long a failed worker waits for the records of the connections it resets. */
const FAIL_SETTLE_MS = 1_000;

const port = parentPort;
if (!port) throw new Error('data-plane-worker.js runs only as a worker thread');
const init = workerData as WorkerInit;
const config = init.config;
const send = (m: FromWorker) => port.postMessage(m);

// One counter for the whole process: ids stay unique across workers without a message.
const ids = new Int32Array(init.connectionIds);
setConnectionIdSource(() => Atomics.add(ids, 0, 1));

// Log lines go to fd 1 in batches of whole lines, at most 4,096 bytes and 10 ms late (lines of
// different threads never mix; plain-format.ts batchLines). Flushed before this thread replies
// that it is closed and before it exits.
const out = batchLines(pino.destination({ dest: 1, sync: true }));
process.on('exit', () => out.flush());
const root = createLogger({ level: 'info', destination: istioDestination(config.logFormat, out) });
const logs = new LogControl(root, init.logSpec);
const log = logs.component('ztunnel');

const state = new State({ warn: (m) => logs.component('state').warn(m) });

let nextCertRequest = 1;
const certWaiters = new Map<number, { resolve: (c: WorkloadCertificate) => void; reject: (e: Error) => void }>();
const certs = new CertificateCache(
  (identity) =>
    new Promise<WorkloadCertificate>((resolve, reject) => {
      const id = nextCertRequest++;
      certWaiters.set(id, { resolve, reject });
      send({ t: 'certRequest', id, identity });
    }),
);

const addon = loadNativeAddon();
// Peer leaves' BasicConstraints read with Node's OpenSSL: no certificate library in this thread
// (docs/memory.md); without the addon, tls/verify.ts loads @peculiar/x509 as before.
const bcReader = basicConstraintsReader();
if (bcReader) readBasicConstraintsWith(bcReader);
const platformLog = logs.component('platform');
const factories = new Map<number, SocketFactory>();
const sockets = (netnsFd: number | undefined): SocketFactory => {
  const key = netnsFd ?? -1;
  let f = factories.get(key);
  if (!f) {
    if (addon.ok) f = new LinuxSocketFactory(addon.value, { ...(netnsFd !== undefined ? { netnsFd } : {}), onWarning: (m) => platformLog.warn(m) });
    else if (netnsFd === undefined) f = new PlainSocketFactory();
    else throw addon.error;
    factories.set(key, f);
  }
  return f;
};

const registry = new Registry();
// CRL_PATH: this thread's handshakes check it too (crl-setup.ts).
if (config.crlPath !== undefined) await openCrl(config.crlPath, registry, logs.component('tls'), true);
const plane = new DataPlane({ config, workerId: init.workerId, state, certs, logs, registry, sockets });
// This thread's heap back once start-up and the first traffic settled (platform/memory.ts).
const memoryLog = logs.component('memory');
const reclaimer = new IdleReclaimer({
  activity: () => Atomics.load(ids, 0),
  onReclaim: (reason, heapBefore, heapAfter, ms) => memoryLog.debug({ worker: init.workerId, reason, heapBefore, heapAfter, durationMs: Math.round(ms) }, 'memory reclaimed'),
});
const openCounts = new Int32Array(init.openCounts);
setInterval(() => Atomics.store(openCounts, init.workerId, plane.openConnections), 1_000).unref();
const metrics = (): Promise<MetricsJson> => registry.getMetricsAsJSON() as Promise<MetricsJson>;

const calls: { [K in CallName]: (args: WorkerCalls[K]['args']) => Promise<WorkerCalls[K]['result']> | WorkerCalls[K]['result'] } = {
  addProxy: (spec) => plane.addProxy(spec),
  startAccepting: (key) => plane.startAccepting(key),
  removeProxy: ({ key, deadlineMs }) => plane.removeProxy(key, deadlineMs),
  connections: () => plane.connections(),
  metrics,
  close: async ({ deadlineMs }) => {
    reclaimer.stop();
    await plane.close(deadlineMs);
    out.flush();
    return metrics();
  },
};

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'state':
      state.apply(m.batch);
      return;
    case 'cert':
      certs.store(m.cert);
      return;
    case 'certReply': {
      const w = certWaiters.get(m.id);
      if (!w) return;
      certWaiters.delete(m.id);
      if (m.cert) w.resolve(m.cert);
      else w.reject(new ZtunnelError((m.error?.code ?? 'IDENTITY_UNAVAILABLE') as ErrorCode, m.error?.message ?? 'no certificate'));
      return;
    }
    case 'logSpec':
      logs.reset();
      logs.apply(m.spec);
      return;
    case 'call': {
      const fn = calls[m.name] as (a: unknown) => unknown;
      Promise.resolve()
        .then(() => fn(m.args))
        .then(
          (value) => send({ t: 'reply', id: m.id, value }),
          (e: unknown) => send({ t: 'reply', id: m.id, error: e instanceof Error ? e.message : String(e) }),
        );
      return;
    }
    case 'crash':
      setImmediate(() => {
        throw new Error('worker crash requested (ZTUNNEL_TS_TEST_WORKER_CRASH)');
      });
      return;
  }
});

// A failure of this thread (docs/workers.md): the connections it holds are reset, their records
// written, its last counts handed up, and the thread ends; the control plane starts another.
let failing = false;
process.on('uncaughtException', (e: Error) => {
  if (failing) return;
  failing = true;
  log.error({ worker: init.workerId, err: e.message }, 'data-plane worker failed; resetting its connections');
  void (async () => {
    const reason = new ZtunnelError('WORKER_FAILED', `data-plane worker ${init.workerId} failed: ${e.message}`, { cause: e });
    await plane.fail(reason, FAIL_SETTLE_MS).catch(() => {});
    out.flush();
    send({ t: 'failed', error: e.message, metrics: await metrics().catch(() => []) });
    process.exit(1);
  })();
});

send({ t: 'ready' });
