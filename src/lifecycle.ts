// Lifecycle (ports-and-modes.md §4–§5): readiness, the graceful drain and what stops after it, and
// the signal handling main.ts installs. The control plane and the data plane register their
// steps here; this module decides the order, nothing else.
import { Readiness } from './admin/readiness.js';
import type { Logger } from './telemetry/logger.js';

export interface LifecycleOptions {
  readonly logger: Logger;
  readonly drainDeadlineMs: number;
}

export class Lifecycle {
  readonly readiness = new Readiness();
  readonly done: Promise<void>;
  private resolveDone!: () => void;
  private shutdownPromise: Promise<void> | undefined;
  /** Connections drain (at most the deadline): the data plane, shared-mode pods. */
  private readonly drains: Array<(deadlineMs: number) => Promise<void>> = [];
  /** After the drain, in order: config sources, certificates, ... */
  private readonly stops: Array<() => Promise<void> | void> = [];
  /** Last, before the servers close: e.g. the /quitquitquit answer (ports-and-modes.md §5). */
  private readonly beforeStop: Array<() => Promise<void>> = [];
  /** The admin, metrics and readiness servers: closed at the very end. */
  private readonly servers: Array<() => void> = [];

  constructor(private readonly o: LifecycleOptions) {
    this.done = new Promise<void>((r) => (this.resolveDone = r));
  }

  onDrain(step: (deadlineMs: number) => Promise<void>): void {
    this.drains.push(step);
  }

  onStop(step: () => Promise<void> | void): void {
    this.stops.push(step);
  }

  onServerClose(close: () => void): void {
    this.servers.push(close);
  }

  /** Graceful drain then stop; idempotent. `reply` runs after the drain, before servers close. */
  shutdown(reply?: () => Promise<void>): Promise<void> {
    if (reply) this.beforeStop.push(reply);
    this.shutdownPromise ??= (async () => {
      const log = this.o.logger;
      log.info({ deadlineMs: this.o.drainDeadlineMs }, 'draining');
      await Promise.allSettled(this.drains.map((d) => d(this.o.drainDeadlineMs)));
      for (const s of this.stops) {
        try {
          await s();
        } catch (e) {
          log.warn({ err: e instanceof Error ? e.message : String(e) }, 'error while stopping');
        }
      }
      await Promise.allSettled(this.beforeStop.splice(0).map((f) => f()));
      for (const close of this.servers) close();
      log.info('shutdown complete');
      this.resolveDone();
    })();
    return this.shutdownPromise;
  }
}

/**
 * SIGTERM: graceful drain. SIGINT: graceful drain; a second SIGINT exits at once (status 130).
 * `exit` is main.ts's (the only process.exit).
 */
export function handleSignals(app: { shutdown(): Promise<void> }, exit: (code: number) => void): void {
  let interrupts = 0;
  process.on('SIGTERM', () => void app.shutdown());
  process.on('SIGINT', () => {
    interrupts++;
    if (interrupts > 1) exit(130);
    void app.shutdown();
  });
}
