// Outbound: a captured (15001) or SOCKS5 connection from the local workload to `dst`.
// decide: buildRoute (pure) → do: dial plain TCP or an HBONE CONNECT through the pool → relay →
// record (hbone.md §3, §7; telemetry.md §3–§4).
import { randomFillSync } from 'node:crypto';
import type { Socket } from 'node:net';
import { ZtunnelError, asZtunnelError } from '../core/errors.js';
import { canonicalIp, type SocketAddr } from '../core/net.js';
import type { HbonePool } from '../hbone/client-pool.js';
import { buildForwarded } from '../hbone/headers.js';
import type { KeepaliveOptions, SocketFactory } from '../platform/socket-factory.js';
import type { Workload } from '../state/model.js';
import type { StateView } from '../state/view.js';
import { identityOf } from '../state/workload-identity.js';
import { logConnectionFailed, type ConnectionDescription, type ConnectionRecorder } from '../telemetry/connection-record.js';
import type { Logger } from '../telemetry/logger.js';
import type { ConnectionManager } from './connection-manager.js';
import { closeAfterFailure, relay } from './relay.js';
import { buildRoute, type Route } from './route.js';
import { peerInfo, serviceInfo, workloadBaggage } from './telemetry-view.js';

export interface OutboundOptions {
  readonly network: string;
  readonly transparentNetworkPolicies: boolean;
  /** ZTUNNEL_DSCP_MARK: DSCP of direct transparent-mode hops (capture.md §8). */
  readonly dscpMark?: number;
  readonly hbonePort: number;
  readonly illegalPorts: ReadonlySet<number>;
  readonly mark?: number;
  readonly keepalive?: KeepaliveOptions;
  readonly connectTimeoutMs: number;
}

export interface OutboundDeps {
  readonly state: StateView;
  readonly pool: HbonePool;
  readonly sockets: SocketFactory;
  readonly records: ConnectionRecorder;
  readonly conns: ConnectionManager;
  readonly logger: Logger;
  /** The workload whose traffic this proxy carries (dedicated: PROXY_WORKLOAD_INFO; shared: the pod). */
  readonly localWorkload: () => Workload | undefined;
  readonly random?: () => number;
}

// Trace and span ids for the traceparent header come from a pool of random bytes refilled every
// 170 connections: two randomBytes() calls per connection were ~4% of its CPU (issue 7).
const RANDOM_POOL = Buffer.alloc(24 * 170);
let randomOffset = RANDOM_POOL.length;
function newTraceparent(): string {
  if (randomOffset + 24 > RANDOM_POOL.length) {
    randomFillSync(RANDOM_POOL);
    randomOffset = 0;
  }
  const o = randomOffset;
  randomOffset += 24;
  return `00-${RANDOM_POOL.toString('hex', o, o + 16)}-${RANDOM_POOL.toString('hex', o + 16, o + 24)}-00`;
}

function ignoreError(): void {}


export class OutboundProxy {
  private readonly random: () => number;
  constructor(private readonly deps: OutboundDeps, private readonly opts: OutboundOptions) {
    this.random = deps.random ?? Math.random;
  }

  /** Carries `downstream` to `dst`. Never rejects; failures close the downstream socket. */
  async handle(downstream: Socket, dst: SocketAddr): Promise<void> {
    const { deps, opts } = this;
    // Errors surface through relay / connect results; one no-op listener is enough (the listener
    // may already be there from the accepting side: one per socket, issue 7).
    if (downstream.listenerCount('error') === 0) downstream.on('error', ignoreError);
    const srcAddr: SocketAddr = { ip: canonicalIp(downstream.remoteAddress ?? '') ?? '0.0.0.0', port: downstream.remotePort ?? 0 };
    const source = deps.localWorkload();
    if (!source) {
      logConnectionFailed(deps.logger, srcAddr, dst, 'outbound', new ZtunnelError('UNKNOWN_SOURCE'));
      closeAfterFailure(downstream);
      return;
    }
    const sourceIdentity = identityOf(source);
    let route: Route;
    try {
      route = buildRoute(deps.state, { source, sourceIdentity, sourceIp: srcAddr.ip, dst, network: opts.network }, {
        random: this.random,
        transparentNetworkPolicies: opts.transparentNetworkPolicies,
        hbonePort: opts.hbonePort,
        illegalPorts: opts.illegalPorts,
      });
    } catch (e) {
      route = { kind: 'reject', code: 'UPSTREAM_CONNECT', message: e instanceof Error ? e.message : String(e) };
    }
    if (route.kind === 'reject') {
      logConnectionFailed(deps.logger, srcAddr, dst, 'outbound', new ZtunnelError(route.code, route.message));
      closeAfterFailure(downstream);
      return;
    }

    const hbone = route.kind === 'hbone' || route.kind === 'double-hbone';
    const nextHop = route.kind === 'hbone' || route.kind === 'double-hbone' ? route.nextHop : route.target;
    const destination = route.kind === 'passthrough' ? undefined : route.destination;
    const service = route.kind === 'passthrough' ? undefined : route.service;
    const description: ConnectionDescription = {
      direction: 'outbound',
      srcAddr,
      source: peerInfo(source, sourceIdentity),
      ...(hbone ? { srcIdentity: sourceIdentity } : {}),
      dstAddr: nextHop,
      originalDst: dst,
      ...(route.kind === 'hbone' || route.kind === 'double-hbone' ? { hboneAddr: route.authority } : {}),
      ...(service ? { service: serviceInfo(service) } : {}),
      ...(destination ? { destination: peerInfo(destination, identityOf(destination)), dstIdentity: identityOf(destination) } : {}),
      mtls: hbone,
      ownerUid: source.uid,
    };
    const abort = new AbortController();
    const record = deps.records.start(description);
    const untrack = deps.conns.track(record, abort);
    let failure: unknown;
    try {
      let upstream: Socket | import('node:http2').ClientHttp2Stream;
      const hboneHeaders = (): Record<string, string> => ({
        baggage: workloadBaggage(source),
        forwarded: buildForwarded(srcAddr, service?.hostname),
        traceparent: newTraceparent(),
      });
      if (route.kind === 'hbone') {
        const headers = hboneHeaders();
        // capture.md §8: a direct hop to podIP:<targetPort> carries the DSCP mark from its SYN on,
        // so the destination pod's in-pod rule sends it to 15008 (waypoint hops dial 15008).
        const transparentHop = opts.transparentNetworkPolicies && !route.viaWaypoint && opts.dscpMark !== undefined;
        const res = await deps.pool.connect({
          srcIdentity: sourceIdentity,
          expectedIdentities: route.expectedIdentities,
          nextHop: route.nextHop,
          ...(transparentHop ? { tos: opts.dscpMark! << 2 } : {}),
          authority: route.authority,
          headers,
          signal: abort.signal,
        });
        upstream = res.stream;
      } else if (route.kind === 'double-hbone') {
        // hbone.md §8: outer CONNECT to the gateway, then mTLS + CONNECT inside it to the final
        // peer; the inner request also names this ztunnel's network (x-forwarded-network).
        const headers = hboneHeaders();
        const outer = await deps.pool.connect({
          srcIdentity: sourceIdentity,
          expectedIdentities: route.expectedIdentities,
          nextHop: route.nextHop,
          authority: route.authority,
          headers,
          signal: abort.signal,
        });
        const inner = await deps.pool.connectInner(outer.stream, {
          srcIdentity: sourceIdentity,
          expectedIdentities: route.finalIdentities,
          authority: route.authority,
          headers: { ...headers, 'x-forwarded-network': opts.network },
          signal: abort.signal,
        });
        upstream = inner.stream;
      } else {
        upstream = await deps.sockets.connect({
          host: route.target.ip,
          port: route.target.port,
          ...(opts.mark !== undefined ? { mark: opts.mark } : {}),
          ...(opts.keepalive ? { keepalive: opts.keepalive } : {}),
          timeoutMs: opts.connectTimeoutMs,
          signal: abort.signal,
        });
      }
      const result = await relay(downstream, upstream, {
        signal: abort.signal,
        counter: record,
      });
      // ECONNRESET/EPIPE during copy are a normal close (hbone.md §6); only our own aborts
      // (policy change, drain deadline) are failures.
      void result;
      if (abort.signal.aborted) failure = abort.signal.reason;
    } catch (e) {
      failure = asZtunnelError(e, 'UPSTREAM_CONNECT');
      closeAfterFailure(downstream);
    } finally {
      untrack();
      record.finish(failure);
    }
  }
}
