// What the orchestrator (run.ts), the load client and the sink server say to each other.
//
// App protocol on the wire (client → server, first byte of every connection):
//   'D' download: the server sends bulk data until the client closes (throughput).
//   'E' echo:     the server echoes every later byte (ping-pong latency, idle connections).
//   'R' request:  the server reads REQUEST_BYTES, answers RESPONSE_BYTES and closes, as an
//                 HTTP/1.0 server would (connection rate).
// IPC (child_process.fork channel): run.ts sends one Job to a fresh load client; the client sends
// 'mark' when its measurement window opens (so run.ts can sample the proxies' CPU at that
// moment), then one 'result' (or 'error'). Idle jobs send 'holding' and wait for 'release'.

export const OP_DOWNLOAD = 0x44; // 'D'
export const OP_ECHO = 0x45; // 'E'
export const OP_REQUEST = 0x52; // 'R'
export const REQUEST_BYTES = 64;
export const RESPONSE_BYTES = 64;
/** Size of each write of the bulk sender. */
export const BULK_CHUNK_BYTES = 256 * 1024;

export interface HostPort {
  host: string;
  port: number;
}

/** How the load client reaches the server: straight to `target`, or through a SOCKS5 proxy. */
export interface Route {
  /** Where the client's TCP connection goes (the server, proxy A, or the SOCKS5 listener). */
  connect: HostPort;
  /** When set, a SOCKS5 CONNECT to `target` is done on the connection first. */
  socks5Target?: HostPort;
}

export interface BulkJob {
  kind: 'bulk';
  route: Route;
  connections: number;
  warmupMs: number;
  durationMs: number;
}

export interface PingPongJob {
  kind: 'pingpong';
  route: Route;
  messageBytes: number;
  warmupRoundTrips: number;
  /** The warm-up also lasts at least this long (default 0: round trips only). */
  warmupMs?: number;
  maxRoundTrips: number;
  /** Stops early when this much time has passed (the measurement is time-bounded). */
  maxDurationMs: number;
  /** Also answer when each measured round trip started (wall clock), for --pingpong-trace. */
  trace?: boolean;
}

export interface ConnRateJob {
  kind: 'connrate';
  route: Route;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
}

export interface IdleJob {
  kind: 'idle';
  route: Route;
  count: number;
  /** How many connections are being opened at once. */
  openConcurrency: number;
  /** Bound on the opening phase. */
  maxOpenMs: number;
}

export type Job = BulkJob | PingPongJob | ConnRateJob | IdleJob;

export interface BulkResult {
  bytes: number;
  seconds: number;
  gbitPerSec: number;
  errors: number;
}

export interface PingPongResult {
  /** Round-trip times in microseconds (measured ones only, warm-up excluded). */
  samplesUs: number[];
  /** With job.trace: when each measured round trip started, epoch milliseconds (same order as samplesUs). */
  sentAtMs?: number[];
  /** With job.trace: CLOCK_MONOTONIC minus the wall clock of sentAtMs, ms. */
  monoMinusWallMs?: number;
  seconds: number;
  errors: number;
}

export interface ConnRateResult {
  connections: number;
  seconds: number;
  perSec: number;
  errors: number;
  firstError?: string;
}

export interface IdleResult {
  opened: number;
  failed: number;
  openSeconds: number;
  firstError?: string;
  /** Connections that were found closed when released (the path dropped them while idle). */
  closedWhileIdle: number;
}

export type ClientMessage =
  | { type: 'mark' }
  | { type: 'holding'; opened: number; failed: number; openSeconds: number; firstError?: string }
  | { type: 'result'; result: BulkResult | PingPongResult | ConnRateResult | IdleResult }
  | { type: 'error'; message: string };

export type ParentMessage = { type: 'job'; job: Job } | { type: 'release' };
