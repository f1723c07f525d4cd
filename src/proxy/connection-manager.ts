// Tracks every live connection of one workload proxy: the admin connection table, re-authorization
// on policy change (policy.md §7) and forced close at the drain deadline.
import { ZtunnelError } from '../core/errors.js';
import type { Identity } from '../core/spiffe.js';
import { formatAddr } from '../core/net.js';
import type { LiveConnection } from '../telemetry/connection-record.js';

/** One connection as `workloadState.<uid>.connections` lists it (Istio's ztunnel shape, read by istioctl). */
export interface ConnectionDump {
  readonly src: string;
  readonly originalDst: string | null;
  readonly actualDst: string;
  readonly protocol: 'TCP' | 'HBONE';
}

/**
 * `{inbound, outbound}` as `istioctl ztunnel-config connections` reads them. Inbound: the client,
 * no original destination (Istio sets one only from a `Forwarded: host=`), the HBONE target or the
 * local address, HBONE when the peer had an mTLS identity. Outbound: the app, the address it
 * dialled, the next hop, TCP or HBONE.
 */
export function dumpConnections(conns: readonly LiveConnection[]): { inbound: ConnectionDump[]; outbound: ConnectionDump[] } {
  const inbound: ConnectionDump[] = [];
  const outbound: ConnectionDump[] = [];
  for (const { description: d } of conns) {
    const protocol = d.mtls ? 'HBONE' : 'TCP';
    if (d.direction === 'inbound') {
      inbound.push({ src: formatAddr(d.srcAddr), originalDst: null, actualDst: d.hboneAddr ?? formatAddr(d.dstAddr), protocol: d.srcIdentity ? 'HBONE' : 'TCP' });
    } else {
      outbound.push({ src: formatAddr(d.srcAddr), originalDst: formatAddr(d.originalDst ?? d.dstAddr), actualDst: formatAddr(d.dstAddr), protocol });
    }
  }
  return { inbound, outbound };
}

/** What re-authorization needs to re-run the decision for an inbound connection. */
export interface AuthorizationInput {
  readonly srcIp: string;
  readonly srcIdentity: Identity | null;
  readonly dstIp: string;
  readonly dstPort: number;
  readonly destinationUid: string;
}

interface Entry {
  readonly conn: LiveConnection;
  readonly abort: AbortController;
  readonly authz?: AuthorizationInput;
}

export type Reauthorize = (input: AuthorizationInput) => { allowed: boolean; message: string };

export class ConnectionManager {
  private readonly live = new Map<number, Entry>();
  private drainWaiters: Array<() => void> = [];

  /** Registers a connection before its first check; returns the function that untracks it. */
  track(conn: LiveConnection, abort: AbortController, authz?: AuthorizationInput): () => void {
    this.live.set(conn.id, { conn, abort, ...(authz ? { authz } : {}) });
    return () => {
      this.live.delete(conn.id);
      if (this.live.size === 0) {
        const waiters = this.drainWaiters;
        this.drainWaiters = [];
        for (const w of waiters) w();
      }
    };
  }

  get size(): number {
    return this.live.size;
  }

  list(): LiveConnection[] {
    return [...this.live.values()].map((e) => e.conn);
  }

  /** Re-runs the decision for every tracked inbound connection; closes the denied ones. */
  reauthorize(decide: Reauthorize): number {
    let closed = 0;
    for (const e of this.live.values()) {
      if (!e.authz || e.abort.signal.aborted) continue;
      const d = decide(e.authz);
      if (!d.allowed) {
        closed++;
        e.abort.abort(new ZtunnelError('POLICY_CHANGED', `connection closed due to policy change: ${d.message}`));
      }
    }
    return closed;
  }

  /** Resolves when no connection is left, or after `deadlineMs` (then every remaining one is aborted). */
  async drain(deadlineMs: number): Promise<void> {
    if (this.live.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => this.drainWaiters.push(resolve)),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, deadlineMs);
      }),
    ]);
    if (timer) clearTimeout(timer);
    this.closeAll(new ZtunnelError('DRAINING', 'connection closed at the drain deadline'));
  }

  closeAll(reason: Error): void {
    for (const e of this.live.values()) e.abort.abort(reason);
  }
}
