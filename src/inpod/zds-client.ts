// ZDS client: enrollment of pods from the istio-cni node agent (capture.md §6). Connects to
// INPOD_UDS, says hello, then handles one WorkloadRequest at a time and answers each with exactly
// one ack or nack. It never sends anything else (the agent probes the connection with reads).
//
// Error classes (capture.md §6 table):
// - handler failure (e.g. a proxy that would not start)  → NACK, keep serving;
// - unreadable message (truncated, undecodable, wrong fds) → NACK, reconnect;
// - protocol violation (Keep after the snapshot, a second SnapshotSent, Add without
//   workload_info)                                          → NACK, then onFatal (the app exits 1);
// - stream end / error                                      → onDisconnected, reconnect.
import { ZtunnelError, err, type Result } from '../core/errors.js';
import type { Logger } from '../telemetry/logger.js';
import type { NativeAddon } from '../platform/native-addon.js';
import {
  decodeWorkloadRequest,
  encodeWorkloadResponse,
  encodeZdsHello,
  type WorkloadInfo,
  type WorkloadRequest,
} from './zds-messages.js';
import { SeqpacketSocket, type SeqpacketMessage } from './zds-transport.js';

/** What the workload proxy manager does with each request. A rejection becomes a NACK carrying its message. */
export interface ZdsHandler {
  /**
   * Enroll (or replace) a pod. Ownership of `netnsFd` passes to the handler in every case,
   * including when it rejects (a pending workload keeps it for the 5 s retry): the handler closes it.
   */
  add(uid: string, info: WorkloadInfo, netnsFd: number): Promise<void>;
  /** Snapshot entry for a pod whose netns the agent no longer holds (agent restart). */
  keep(uid: string): Promise<void>;
  /** Drain that pod's proxy. */
  del(uid: string): Promise<void>;
  /** End of snapshot: stop every proxy not named by an Add/Keep since the connection began. */
  snapshotSent(): Promise<void>;
}

export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
  /** ± fraction applied to each delay. */
  readonly jitter: number;
}

/** capture.md §6: connect retry 10 ms doubling to 15 s. */
export const ZDS_CONNECT_BACKOFF: BackoffOptions = { initialMs: 10, maxMs: 15_000, jitter: 0 };
/** capture.md §6: after a failed hello, 5 ms ×2 ±20 % up to 15 s. */
export const ZDS_HELLO_BACKOFF: BackoffOptions = { initialMs: 5, maxMs: 15_000, jitter: 0.2 };

export interface ZdsClientOptions {
  readonly addon: NativeAddon;
  /** INPOD_UDS. */
  readonly path: string;
  readonly handler: ZdsHandler;
  /** A protocol violation: the caller must exit with status 1 (capture.md §6). */
  readonly onFatal: (error: ZtunnelError) => void;
  /** Hello sent: a snapshot follows. */
  readonly onConnected?: () => void;
  /** The stream ended or failed: readiness "workload proxy manager" is pending again. */
  readonly onDisconnected?: () => void;
  readonly logger?: Logger;
  readonly connectBackoff?: BackoffOptions;
  readonly helloBackoff?: BackoffOptions;
}

type Problem = { kind: 'unreadable' | 'fatal'; message: string };

type SessionEnd =
  | { kind: 'eof' }
  | { kind: 'error'; error: unknown }
  | { kind: 'unreadable' }
  | { kind: 'fatal'; error: ZtunnelError }
  | { kind: 'stopped' };

export class ZdsClient {
  private stopped = false;
  private conn: SeqpacketSocket | null = null;
  private sleeping: { timer: NodeJS.Timeout; resolve: () => void } | null = null;
  private running: Promise<void> | null = null;

  constructor(private readonly opts: ZdsClientOptions) {}

  /** Starts the connect → hello → serve → reconnect loop (idempotent). */
  start(): void {
    if (!this.running) this.running = this.run();
  }

  /** Stops for good: closes the connection, cancels retries, resolves when the loop has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.conn?.close();
    if (this.sleeping) {
      clearTimeout(this.sleeping.timer);
      this.sleeping.resolve();
    }
    await this.running;
  }

  private async run(): Promise<void> {
    const connectDelay = new Backoff(this.opts.connectBackoff ?? ZDS_CONNECT_BACKOFF);
    const helloDelay = new Backoff(this.opts.helloBackoff ?? ZDS_HELLO_BACKOFF);
    const log = this.opts.logger;
    while (!this.stopped) {
      const c = SeqpacketSocket.connect(this.opts.addon, this.opts.path);
      if (!c.ok) {
        // A WARN naming the socket each time, as Istio's ztunnel does (the node agent may not be up yet).
        const delayMs = connectDelay.next();
        log?.warn({ path: this.opts.path, err: c.error.message, retryInMs: delayMs },
          'failed to connect to the Istio CNI node agent (ZDS socket); is the node agent healthy? retrying');
        await this.sleep(delayMs);
        continue;
      }
      const conn = c.value;
      this.conn = conn;
      try {
        await conn.send(encodeZdsHello());
      } catch (e) {
        conn.close();
        if (this.stopped) break;
        log?.warn({ err: String(e) }, 'ZDS hello failed; waiting before reconnecting');
        this.opts.onDisconnected?.();
        await this.sleep(helloDelay.next());
        continue;
      }
      helloDelay.reset();
      log?.info({ path: this.opts.path }, 'connected to the ZDS server (istio-cni node agent)');
      this.opts.onConnected?.();
      const end = await this.serve(conn, () => connectDelay.reset());
      conn.close();
      this.conn = null;
      if (end.kind === 'stopped' || this.stopped) break;
      if (end.kind === 'fatal') {
        this.stopped = true;
        log?.error({ err: end.error.message }, 'ZDS protocol violation');
        this.opts.onFatal(end.error);
        break;
      }
      if (end.kind === 'error') log?.warn({ err: String(end.error) }, 'ZDS stream failed; reconnecting');
      else if (end.kind === 'unreadable') log?.warn('unreadable ZDS message; reconnecting');
      else log?.info('ZDS stream ended; reconnecting');
      this.opts.onDisconnected?.();
      // A connection that delivered a valid message reset the delay; one that ended at once backs off.
      await this.sleep(connectDelay.next());
    }
    this.conn = null;
  }

  // One connection: every request is answered before the next is read (the agent waits for each
  // ack anyway), so the handler never sees two requests at once.
  private async serve(conn: SeqpacketSocket, progressed: () => void): Promise<SessionEnd> {
    let snapshotDone = false;
    for (;;) {
      let msg: SeqpacketMessage | null;
      try {
        msg = await conn.recv();
      } catch (e) {
        return this.stopped ? { kind: 'stopped' } : { kind: 'error', error: e };
      }
      if (msg === null) return this.stopped ? { kind: 'stopped' } : { kind: 'eof' };

      const checked = this.check(msg, snapshotDone);
      if (!checked.ok) {
        const problem = checked.error;
        closeAll(this.opts.addon, msg.fds);
        const sent = await this.respond(conn, problem.message);
        if (problem.kind === 'fatal') return { kind: 'fatal', error: new ZtunnelError('ZDS_PROTOCOL', problem.message) };
        return sent ? { kind: 'unreadable' } : { kind: 'error', error: new Error('could not send NACK') };
      }
      progressed();
      const r = checked.value;
      let failure = '';
      try {
        switch (r.kind) {
          case 'add':
            await this.opts.handler.add(r.uid, r.workloadInfo!, msg.fds[0]!);
            break;
          case 'keep':
            await this.opts.handler.keep(r.uid);
            break;
          case 'del':
            await this.opts.handler.del(r.uid);
            break;
          case 'snapshotSent':
            snapshotDone = true; // even if the handler fails: a second one is still a violation
            await this.opts.handler.snapshotSent();
            break;
        }
      } catch (e) {
        failure = e instanceof Error ? e.message || String(e) : String(e);
        if (failure === '') failure = 'request failed';
        this.opts.logger?.warn({ uid: 'uid' in r ? r.uid : undefined, kind: r.kind, err: failure }, 'ZDS request failed; sending NACK');
      }
      if (!(await this.respond(conn, failure))) {
        return this.stopped ? { kind: 'stopped' } : { kind: 'error', error: new Error('could not send ack') };
      }
    }
  }

  /** capture.md §6 message and fd rules: the request when it may go to the handler. */
  private check(msg: SeqpacketMessage, snapshotDone: boolean): Result<WorkloadRequest, Problem> {
    if (msg.truncated) return err({ kind: 'unreadable', message: 'message truncated (MSG_TRUNC/MSG_CTRUNC)' });
    const req = decodeWorkloadRequest(msg.data);
    if (!req.ok) return err({ kind: 'unreadable', message: `failed to decode WorkloadRequest: ${req.error}` });
    const r = req.value;
    if (r.kind === 'add') {
      if (msg.fds.length !== 1) return err({ kind: 'unreadable', message: `AddWorkload must carry exactly one fd, got ${msg.fds.length}` });
      if (!r.workloadInfo) return err({ kind: 'fatal', message: `AddWorkload for ${r.uid} has no workload_info` });
      return req;
    }
    if (msg.fds.length > 0) return err({ kind: 'unreadable', message: `${r.kind} must not carry fds, got ${msg.fds.length}` });
    if (r.kind === 'keep' && snapshotDone) return err({ kind: 'fatal', message: `KeepWorkload for ${r.uid} after the snapshot` });
    if (r.kind === 'snapshotSent' && snapshotDone) return err({ kind: 'fatal', message: 'second SnapshotSent on one connection' });
    return req;
  }

  /** Sends ACK (error '') or NACK; false when the connection cannot take it. */
  private async respond(conn: SeqpacketSocket, error: string): Promise<boolean> {
    try {
      await conn.send(encodeWorkloadResponse({ error }));
      return true;
    } catch {
      return false;
    }
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.sleeping = null;
        resolve();
      }, ms);
      this.sleeping = { timer, resolve };
    });
  }
}

/** Exponential backoff: initial, ×2, capped, with optional ± jitter. */
export class Backoff {
  private current: number;
  constructor(private readonly o: BackoffOptions) {
    this.current = o.initialMs;
  }
  next(): number {
    const base = this.current;
    this.current = Math.min(this.o.maxMs, this.current * 2);
    const j = this.o.jitter ? 1 + (Math.random() * 2 - 1) * this.o.jitter : 1;
    return Math.min(this.o.maxMs, Math.round(base * j));
  }
  reset(): void {
    this.current = this.o.initialMs;
  }
}

function closeAll(addon: NativeAddon, fds: number[]): void {
  for (const fd of fds) addon.closeFd(fd);
}
