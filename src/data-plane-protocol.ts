// Messages between the control plane (main thread) and the data-plane workers (docs/workers.md).
// Everything here is plain data (structured clone). Nothing is sent per connection or per chunk:
// state batches, certificates, log levels and calls (add/remove a proxy, list connections, read
// metrics, drain) go down; replies, certificate requests and "ready"/"failed" come up.
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { Config } from './config/config.js';
import type { Identity } from './core/spiffe.js';
import type { ProxyAddresses, ProxySpec } from './proxy/proxy-spec.js';
import type { StateBatch } from './state/batch.js';
import type { WorkloadCertificate } from './tls/certificate.js';
import type { LiveConnection } from './telemetry/connection-record.js';

export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

/** `workerData` of every data-plane worker. */
export interface WorkerInit {
  readonly config: Config;
  readonly workerId: number;
  /** One Int32 slot: the next connection id, shared by all workers (Atomics.add). */
  readonly connectionIds: SharedArrayBuffer;
  /** One Int32 per worker: its open connections (for the main thread's memory trimmer). */
  readonly openCounts: SharedArrayBuffer;
  /** The current /logging spec (RUST_LOG syntax). */
  readonly logSpec: string;
}

/** Calls the control plane makes on a worker, with their results. */
export interface WorkerCalls {
  addProxy: { args: ProxySpec; result: ProxyAddresses };
  startAccepting: { args: string; result: void };
  removeProxy: { args: { key: string; deadlineMs: number }; result: void };
  connections: { args: void; result: LiveConnection[] };
  metrics: { args: void; result: MetricsJson };
  close: { args: { deadlineMs: number }; result: MetricsJson };
}
export type CallName = keyof WorkerCalls;

export type ToWorker =
  | { readonly t: 'state'; readonly batch: StateBatch }
  | { readonly t: 'cert'; readonly cert: WorkloadCertificate }
  | { readonly t: 'certReply'; readonly id: number; readonly cert?: WorkloadCertificate; readonly error?: { code: string; message: string } }
  | { readonly t: 'logSpec'; readonly spec: string }
  | { readonly t: 'call'; readonly id: number; readonly name: CallName; readonly args: unknown }
  /** Test-only (ZTUNNEL_TS_TEST_WORKER_CRASH=1): fail with an uncaught error. */
  | { readonly t: 'crash' };

export type FromWorker =
  | { readonly t: 'ready' }
  | { readonly t: 'reply'; readonly id: number; readonly value?: unknown; readonly error?: string }
  | { readonly t: 'certRequest'; readonly id: number; readonly identity: Identity }
  /** The worker failed: its last metrics (so counters stay exact), then it exits. */
  | { readonly t: 'failed'; readonly error: string; readonly metrics: MetricsJson };
