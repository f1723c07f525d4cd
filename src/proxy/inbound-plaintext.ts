// Inbound plaintext (15006): ingress redirected by the in-pod rules. The original destination is
// the pod's own IP:port; there is no peer identity, so identity-based ALLOWs never match and
// STRICT (`notPrincipals: [presence]`) denies (policy.md §3–§4). Denied → socket closed, no bytes.
import type { Socket } from 'node:net';
import { ZtunnelError, asZtunnelError } from '../core/errors.js';
import { canonicalIp, type SocketAddr } from '../core/net.js';
import type { KeepaliveOptions, SocketFactory } from '../platform/socket-factory.js';
import type { StateView } from '../state/view.js';
import { identityOf } from '../state/workload-identity.js';
import { logConnectionFailed, type ConnectionRecorder } from '../telemetry/connection-record.js';
import type { Logger } from '../telemetry/logger.js';
import type { AuthorizationInput, ConnectionManager } from './connection-manager.js';
import { authorize, describeAllowedBy, logDecision } from './inbound.js';
import { closeAfterFailure, relay } from './relay.js';
import { connectUpstream, upstreamRequest } from './upstream.js';
import { peerInfo, serviceInfo } from './telemetry-view.js';

export interface InboundPlaintextOptions {
  readonly network: string;
  readonly servedWorkloadUid?: string;
  readonly illegalPorts: ReadonlySet<number>;
  readonly spoofSource: boolean;
  readonly mark?: number;
  readonly keepalive?: KeepaliveOptions;
  readonly connectTimeoutMs: number;
  readonly localhostAppTunnel: boolean;
  readonly authzInfoLogging?: boolean;
}

export interface InboundPlaintextDeps {
  readonly state: StateView;
  readonly sockets: SocketFactory;
  readonly records: ConnectionRecorder;
  readonly conns: ConnectionManager;
  readonly logger: Logger;
  readonly policyLogger?: Logger;
}

export class InboundPlaintextProxy {
  constructor(private readonly deps: InboundPlaintextDeps, private readonly opts: InboundPlaintextOptions) {}

  async handle(downstream: Socket): Promise<void> {
    const { deps, opts } = this;
    // Hold the client's first bytes until relay() attaches its listeners: the accept path may
    // already have resumed the socket, and a flowing socket without 'data' listeners drops what
    // it reads (a client that writes at once, as most do, would lose its request). This runs
    // before the first await, so nothing can be read in between.
    downstream.pause();
    downstream.on('error', () => {});
    const client: SocketAddr = { ip: canonicalIp(downstream.remoteAddress ?? '') ?? '0.0.0.0', port: downstream.remotePort ?? 0 };
    const dst = deps.sockets.originalDst(downstream);
    if (!dst || opts.illegalPorts.has(dst.port)) {
      logConnectionFailed(deps.logger, client, dst ?? { ip: '0.0.0.0', port: 0 }, 'inbound', new ZtunnelError('ILLEGAL_PORT', `illegal destination port ${dst?.port ?? '?'}`));
      closeAfterFailure(downstream);
      return;
    }
    const destination = deps.state.findWorkloadByAddr(opts.network, dst.ip);
    if (!destination || (opts.servedWorkloadUid !== undefined && destination.uid !== opts.servedWorkloadUid)) {
      logConnectionFailed(deps.logger, client, dst, 'inbound', new ZtunnelError('UNKNOWN_DESTINATION', `unknown destination workload ${dst.ip}`));
      closeAfterFailure(downstream);
      return;
    }
    const source = deps.state.findWorkloadByAddr(opts.network, client.ip);
    const service = firstServiceForPort(deps.state, destination, dst.port);
    const record = deps.records.start({
      direction: 'inbound',
      srcAddr: client,
      ...(source ? { source: peerInfo(source, identityOf(source)) } : {}),
      dstAddr: dst,
      ...(service ? { service: serviceInfo(service) } : {}),
      destination: peerInfo(destination, identityOf(destination)),
      dstIdentity: identityOf(destination),
      mtls: false,
      ownerUid: destination.uid,
    });
    const abort = new AbortController();
    const authz: AuthorizationInput = { srcIp: client.ip, srcIdentity: null, dstIp: dst.ip, dstPort: dst.port, destinationUid: destination.uid };
    const untrack = deps.conns.track(record, abort, authz);
    let failure: unknown;
    try {
      const decision = authorize(deps.state, authz);
      logDecision(deps.policyLogger, opts.authzInfoLogging ?? false, decision, authz);
      if (!decision.allowed) {
        failure = new ZtunnelError('POLICY_DENIED', `connection closed due to policy rejection: ${decision.message}`);
        closeAfterFailure(downstream);
        return;
      }
      record.allowedBy = describeAllowedBy(decision);
      const ctx = { upstream: dst, ...(destination.applicationTunnel ? { applicationTunnel: destination.applicationTunnel } : {}) };
      const upstream = await connectUpstream(deps.sockets, upstreamRequest(opts, { ctx, client, clientIdentity: null, logger: deps.logger }, abort.signal));
      await relay(downstream, upstream, {
        signal: abort.signal,
        counter: record,
      });
      if (abort.signal.aborted) failure = abort.signal.reason;
    } catch (e) {
      failure = abort.signal.aborted ? abort.signal.reason : asZtunnelError(e, 'UPSTREAM_CONNECT');
      closeAfterFailure(downstream);
    } finally {
      untrack();
      record.finish(failure);
    }
  }
}

function firstServiceForPort(state: StateView, w: import('../state/model.js').Workload, port: number) {
  for (const [key, ports] of w.services) {
    const svc = state.findServiceByKey(key);
    if (!svc) continue;
    for (const [svcPort, target] of ports) if (target === port || svc.ports.get(svcPort) === port) return svc;
  }
  return undefined;
}
