// Inbound HBONE (15008): one CONNECT stream → phase (a) build context → phase (b) authorize and
// connect the app → phase (c) 200 + relay → record (hbone.md §4, policy.md §3, telemetry.md §3).
import type { ServerHttp2Stream } from 'node:http2';
import { ZtunnelError, asZtunnelError, hboneStatus } from '../core/errors.js';
import type { SocketAddr } from '../core/net.js';
import { parseBaggage, parseForwardedHost } from '../hbone/headers.js';
import { respondError, type InboundConnect } from '../hbone/server.js';
import { evaluate } from '../policy/evaluate.js';
import type { KeepaliveOptions, SocketFactory } from '../platform/socket-factory.js';
import type { Workload } from '../state/model.js';
import type { ApplicablePolicy, StateView } from '../state/view.js';
import type { Authorization } from '../policy/model.js';
import { identityOf } from '../state/workload-identity.js';
import { logConnectionFailed, type ConnectionDescription, type ConnectionRecorder } from '../telemetry/connection-record.js';
import type { Logger } from '../telemetry/logger.js';
import type { AuthorizationInput, ConnectionManager } from './connection-manager.js';
import { buildInboundContext, type InboundOptions } from './inbound-context.js';
import { connectUpstream, upstreamRequest } from './upstream.js';
import { relay } from './relay.js';
import { peerInfo, peerInfoFromBaggage, serviceInfo, workloadBaggage } from './telemetry-view.js';

export interface InboundHboneOptions extends InboundOptions {
  readonly enableResponseBaggage: boolean;
  /** Whether the 15008 listener is IP_TRANSPARENT: then the app is dialled from the client's IP. */
  readonly spoofSource: boolean;
  readonly mark?: number;
  readonly keepalive?: KeepaliveOptions;
  readonly connectTimeoutMs: number;
  readonly localhostAppTunnel: boolean;
  readonly authzInfoLogging: boolean;
}

export interface InboundDeps {
  readonly state: StateView;
  readonly sockets: SocketFactory;
  readonly records: ConnectionRecorder;
  readonly conns: ConnectionManager;
  readonly logger: Logger;
  readonly policyLogger: Logger;
}

/** Runs the policy decision for a connection (shared by first check and re-authorization). */
export function authorize(state: StateView, input: AuthorizationInput): ReturnType<typeof evaluate> | { allowed: false; message: string; logs: []; deciding?: undefined } {
  const destination = state.findWorkloadByUid(input.destinationUid);
  if (!destination) return { allowed: false, message: 'destination workload no longer exists', logs: [] };
  const policies = policyList(state.policiesFor(destination));
  return evaluate({ srcIp: input.srcIp, srcIdentity: input.srcIdentity, dstIp: input.dstIp, dstPort: input.dstPort }, policies);
}

// state.policiesFor hands out the same array per workload until a policy changes; keeping the
// mapped list per array lets evaluate() reuse its compiled, port-indexed set (policy-set.ts).
const policyLists = new WeakMap<readonly ApplicablePolicy[], readonly Authorization[]>();
function policyList(applicable: readonly ApplicablePolicy[]): readonly Authorization[] {
  let l = policyLists.get(applicable);
  if (!l) policyLists.set(applicable, (l = applicable.map((p) => p.policy)));
  return l;
}

export function describeAllowedBy(d: { deciding?: { key: string; ruleIndex: number } | undefined }): string {
  return d.deciding ? `${d.deciding.key} rule[${d.deciding.ruleIndex}]` : 'no allow policies';
}

function ignoreError(): void {}

export class InboundHboneProxy {
  constructor(private readonly deps: InboundDeps, private readonly opts: InboundHboneOptions) {}

  /** Handles one CONNECT stream. Never rejects. */
  async handle(req: InboundConnect): Promise<void> {
    const { deps, opts } = this;
    const stream = req.stream;
    // Surfaced via relay results; the HBONE server already added its own no-op listener (issue 7).
    if (stream.listenerCount('error') === 0) stream.on('error', ignoreError);
    // Look at the stream once the frames read with its HEADERS are processed: a stream the client
    // reset in the same read (rapid reset, CVE-2023-44487) is dropped before any work or dial, as
    // an HTTP/2 server drops streams reset before they were accepted.
    await new Promise(setImmediate);
    if (stream.closed || stream.destroyed) return;
    const forwardedHost = parseForwardedHost(first(req.headers['forwarded']));
    // Only a redirected outer connection (transparent network policies) has an original
    // destination other than the listener's own address (capture.md §3, hbone.md "Beyond").
    const outerOriginalDst = opts.transparentNetworkPolicies ? deps.sockets.originalDst(req.outerSocket) ?? undefined : undefined;
    const ctx = buildInboundContext(deps.state, {
      method: first(req.headers[':method']),
      authority: first(req.headers[':authority']),
      localAddr: req.localAddr,
      ...(outerOriginalDst ? { outerOriginalDst } : {}),
      ...(forwardedHost ? { forwardedHost } : {}),
    }, opts);
    if (ctx instanceof ZtunnelError) {
      // Phase (a) failures: WARN line only, no metrics (telemetry.md §3).
      logConnectionFailed(deps.logger, req.remoteAddr, req.localAddr, 'inbound', ctx);
      respondError(stream, hboneStatus(ctx));
      return;
    }

    const source = this.sourceWorkload(req.remoteAddr);
    // Source labels from baggage only when our state does not know the source (as Istio's ztunnel).
    const fromBaggage = !source && opts.enableResponseBaggage && req.headers['baggage'] !== undefined
      ? peerInfoFromBaggage(parseBaggage(req.headers['baggage']))
      : undefined;
    const dstIdentity = identityOf(ctx.destination);
    const description: ConnectionDescription = {
      direction: 'inbound',
      srcAddr: req.remoteAddr,
      ...(source ? { source: peerInfo(source, identityOf(source)) } : fromBaggage ? { source: fromBaggage } : {}),
      srcIdentity: req.peerIdentity,
      dstAddr: req.localAddr,
      hboneAddr: ctx.authority,
      ...(ctx.service ? { service: serviceInfo(ctx.service) } : {}),
      destination: peerInfo(ctx.destination, dstIdentity),
      dstIdentity,
      mtls: true,
      ownerUid: ctx.destination.uid,
    };
    const abort = new AbortController();
    const record = deps.records.start(description);
    const authz: AuthorizationInput = {
      srcIp: req.remoteAddr.ip,
      srcIdentity: req.peerIdentity,
      dstIp: ctx.upstream.ip,
      dstPort: ctx.targetPort,
      destinationUid: ctx.destination.uid,
    };
    // Tracked before the first check so a policy change during the check is not missed (policy.md §7).
    const untrack = deps.conns.track(record, abort, authz);
    let failure: unknown;
    // Until the relay owns the stream: a client that leaves aborts the upstream dial at once.
    const onEarlyClose = () => abort.abort(new ZtunnelError('RELAY_RESET', 'client went away before the tunnel was established'));
    stream.once('close', onEarlyClose);
    try {
      const decision = authorize(deps.state, authz);
      logDecision(deps.policyLogger, opts.authzInfoLogging, decision, authz);
      if (!decision.allowed) {
        const denied = new ZtunnelError('POLICY_DENIED', `connection closed due to policy rejection: ${decision.message}`);
        failure = denied;
        respondError(stream, hboneStatus(denied));
        return;
      }
      record.allowedBy = describeAllowedBy(decision);
      let upstream;
      try {
        upstream = await connectUpstream(
          deps.sockets,
          upstreamRequest(opts, { ctx, client: req.remoteAddr, clientIdentity: req.peerIdentity, logger: deps.logger }, abort.signal),
        );
      } catch (e) {
        const error = asZtunnelError(abort.signal.aborted ? abort.signal.reason : e, 'UPSTREAM_CONNECT');
        failure = error;
        respondError(stream, hboneStatus(error));
        return;
      }
      if (abort.signal.aborted || stream.destroyed) {
        // Drain (DRAINING: 503) or a policy change (POLICY_CHANGED: 401) while the upstream was dialled.
        const error = asZtunnelError(abort.signal.reason ?? new ZtunnelError('RELAY_RESET', 'client went away before the tunnel was established'), 'RELAY_RESET');
        failure = error;
        upstream.destroy();
        if (!stream.destroyed) respondError(stream, hboneStatus(error));
        return;
      }
      stream.off('close', onEarlyClose);
      stream.respond({
        ':status': 200,
        ...(opts.enableResponseBaggage ? { baggage: workloadBaggage(ctx.destination) } : {}),
      });
      await relay(stream, upstream, {
        signal: abort.signal,
        counter: record,
      });
      if (abort.signal.aborted) failure = abort.signal.reason;
    } catch (e) {
      failure = asZtunnelError(e, 'UPSTREAM_CONNECT');
      if (!stream.destroyed) stream.close();
    } finally {
      stream.off('close', onEarlyClose);
      untrack();
      record.finish(failure);
    }
  }

  private sourceWorkload(remote: SocketAddr): Workload | undefined {
    return this.deps.state.findWorkloadByAddr(this.opts.network, remote.ip);
  }
}

/** Decision log lines (policy.md §3): DEBUG, or INFO with AUTHZ_POLICY_INFO_LOGGING=true. */
export function logDecision(log: Logger | undefined, infoLevel: boolean, decision: ReturnType<typeof authorize>, authz: AuthorizationInput): void {
  if (!log) return;
  const level = infoLevel ? 'info' : 'debug';
  if (!log.isLevelEnabled(level)) return;
  for (const line of decision.logs ?? []) log[level]({ policy: line.policy, 'src.addr': authz.srcIp, 'dst.port': authz.dstPort }, line.msg);
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

export type { ServerHttp2Stream };
