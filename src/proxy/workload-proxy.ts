// One set of data-plane listeners for one served workload (ports-and-modes.md §1): 15001
// outbound, 15006 inbound plaintext, 15008 inbound HBONE and (optionally) 15080 SOCKS5, each with
// its own HBONE pool and connection tracker. Dedicated mode runs one in ztunnel's netns; shared
// mode one per enrolled pod, bound inside the pod's netns through that pod's SocketFactory.
import { EventEmitter } from 'node:events';
import type { AddressInfo, Server, Socket } from 'node:net';
import { ZtunnelError } from '../core/errors.js';
import { canonicalIp, formatAddr, type SocketAddr } from '../core/net.js';
import type { Identity } from '../core/spiffe.js';
import type { BindAddr, Config } from '../config/config.js';
import { listenerError } from '../config/listener-error.js';
import { HbonePool } from '../hbone/client-pool.js';
import { HboneServer } from '../hbone/server.js';
import type { SocketFactory, TransparentMode } from '../platform/socket-factory.js';
import type { Workload } from '../state/model.js';
import type { StateView } from '../state/view.js';
import type { CertificateProvider } from '../tls/certificate.js';
import { logConnectionFailed, type ConnectionRecorder, type LiveConnection } from '../telemetry/connection-record.js';
import type { Logger } from '../telemetry/logger.js';
import { ConnectionManager } from './connection-manager.js';
import { InboundHboneProxy, authorize } from './inbound.js';
import { InboundPlaintextProxy } from './inbound-plaintext.js';
import { OutboundProxy } from './outbound.js';
import { Socks5Handler } from './socks5.js';
import { prepareLeafChecks } from '../tls/verify.js';

export const HBONE_PORT = 15008;
const CONNECT_TIMEOUT_MS = 10_000;
const PING_INTERVAL_MS = 10_000;
const PING_TIMEOUT_MS = 20_000;

export interface WorkloadProxyOptions {
  readonly name: string;
  readonly config: Config;
  readonly sockets: SocketFactory;
  readonly state: StateView;
  readonly certs: CertificateProvider;
  readonly records: ConnectionRecorder;
  readonly logger: Logger;
  readonly accessLogger: Logger;
  readonly policyLogger: Logger;
  /** Listeners to bind (or to adopt, when another thread bound them); an absent one is not run. */
  readonly listeners: { outbound?: ListenerSpec; inboundPlaintext?: ListenerSpec; inbound?: ListenerSpec; socks5?: ListenerSpec };
  /** The listener addresses come from the --*-addr settings (false: fixed in-pod ports); bind errors name them. */
  readonly listenersFromSettings?: boolean;
  readonly reusePort: boolean;
  readonly transparent: TransparentMode;
  /** The served workload (looked up on each use: config may change). */
  readonly localWorkload: () => Workload | undefined;
  /** Identity whose certificate 15008 presents. */
  readonly identity: Identity;
}

export type ListenerKind = 'outbound' | 'inboundPlaintext' | 'inbound' | 'socks5';
type Kind = ListenerKind;

/**
 * Where a listener is. With `fd`, the socket was already bound (options set) by the main thread
 * and each data-plane worker serves a duplicate of it (docs/workers.md); `transparent` then says
 * whether IP_TRANSPARENT is on it. Without, this proxy binds host:port itself.
 */
export type ListenerSpec = BindAddr & { readonly fd?: number; readonly transparent?: boolean };

interface Bound {
  readonly kind: Kind;
  readonly server: Server;
  readonly transparent: boolean;
  readonly queue: Socket[];
}

function ignoreError(): void {}

export class WorkloadProxy {
  readonly conns = new ConnectionManager();
  readonly pool: HbonePool;
  private readonly hbone: HboneServer;
  private readonly hboneFeed = new EventEmitter();
  private readonly bound = new Map<Kind, Bound>();
  private accepting = false;
  private closing: Promise<void> | undefined;
  private readonly illegalPorts: ReadonlySet<number>;

  constructor(private readonly o: WorkloadProxyOptions) {
    const c = o.config;
    this.illegalPorts = new Set([15001, 15006, 15008, ...(c.enableSocks5 ? [15080] : [])]);
    const tuning = { tls12Enabled: c.tls12Enabled, ...(c.compliancePolicy ? { compliancePolicy: c.compliancePolicy } : {}) };
    this.pool = new HbonePool({
      certs: o.certs,
      sockets: o.sockets,
      tuning,
      streamWindowBytes: c.http2StreamWindowSize,
      connectionWindowBytes: c.http2ConnectionWindowSize,
      frameSizeBytes: c.http2FrameSize,
      maxStreamsPerConnection: c.poolMaxStreamsPerConnection,
      unusedReleaseTimeoutMs: c.poolUnusedReleaseTimeoutMs,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      pingIntervalMs: PING_INTERVAL_MS,
      pingTimeoutMs: PING_TIMEOUT_MS,
      ...(c.packetMark !== undefined ? { mark: c.packetMark } : {}),
      ...(c.keepalive.enabled ? { keepalive: c.keepalive } : {}),
      logger: o.logger.child({ component: 'pool' }),
    });
    const inbound = this.inboundHandler();
    this.hbone = new HboneServer({
      identity: o.identity,
      certs: o.certs,
      tuning,
      streamWindowBytes: c.http2StreamWindowSize,
      connectionWindowBytes: c.http2ConnectionWindowSize,
      frameSizeBytes: c.http2FrameSize,
      maxConcurrentStreams: 200,
      pingIntervalMs: PING_INTERVAL_MS,
      pingTimeoutMs: PING_TIMEOUT_MS,
      logger: o.logger.child({ component: 'hbone-server' }),
      onConnect: (req) => void inbound.handle(req),
      onHandshakeFailed: (remote, local, err) => logConnectionFailed(o.accessLogger, remote, local, 'inbound', err),
    });
  }

  /** Binds every listener; connections are queued until startAccepting() (bind before accept). */
  async bind(): Promise<void> {
    // Peer leaf certificates are checked in this thread's handshakes (tls/verify.ts).
    await prepareLeafChecks();
    for (const [kind, addr] of Object.entries(this.o.listeners) as [Kind, ListenerSpec | undefined][]) {
      if (!addr) continue;
      const transparent = kind === 'socks5' ? 'off' : this.o.transparent;
      const { server, transparent: isTransparent } = addr.fd !== undefined ? await this.adopt(addr.fd, addr.transparent ?? false) : await this.o.sockets.listen({
        host: addr.host,
        port: addr.port,
        reusePort: this.o.reusePort,
        transparent,
      }).catch((e: unknown) => {
        throw listenerError(kind, `${addr.host}:${addr.port}`, e, this.o.listenersFromSettings ?? true);
      });
      const b: Bound = { kind, server, transparent: isTransparent, queue: [] };
      server.on('connection', (s: Socket) => (this.accepting ? this.dispatch(b, s) : (s.pause(), b.queue.push(s))));
      server.on('error', (e) => this.o.logger.error({ err: e.message, listener: kind }, 'listener error'));
      this.bound.set(kind, b);
      this.o.logger.info({ listener: kind, address: this.address(kind) }, 'listener bound');
    }
    const inboundBound = this.bound.get('inbound');
    if (inboundBound) this.hbone.attach(this.hboneFeed as unknown as Server);
  }

  private async adopt(fd: number, transparent: boolean): Promise<{ server: Server; transparent: boolean }> {
    if (!this.o.sockets.adoptListener) throw new ZtunnelError('NATIVE_UNAVAILABLE', 'serving a listener bound by another thread needs the native addon');
    return { server: await this.o.sockets.adoptListener(fd), transparent };
  }

  startAccepting(): void {
    if (this.accepting || this.closing) return;
    this.accepting = true;
    for (const b of this.bound.values()) {
      for (const s of b.queue.splice(0)) this.dispatch(b, s);
    }
  }

  address(kind: Kind): string | undefined {
    const a = this.bound.get(kind)?.server.address() as AddressInfo | null | undefined;
    if (!a) return undefined;
    return formatAddr({ ip: canonicalIp(a.address) ?? a.address, port: a.port });
  }

  connections(): LiveConnection[] {
    return this.conns.list();
  }

  /** Re-evaluates every tracked inbound connection (policy.md §7); returns how many were closed. */
  reauthorize(): number {
    return this.conns.reauthorize((input) => authorize(this.o.state, input));
  }

  /** Aborts every tracked connection at once (a failed worker resets what it holds). */
  abortAll(reason: Error): void {
    this.conns.closeAll(reason);
  }

  /** Graceful drain (ports-and-modes.md §5): stop accepting, GOAWAY, wait, then force-close. */
  close(deadlineMs: number): Promise<void> {
    this.closing ??= (async () => {
      for (const b of this.bound.values()) {
        b.server.close();
        for (const s of b.queue.splice(0)) s.destroy();
      }
      const goaway = this.hbone.close();
      const poolClosed = this.pool.close();
      await this.conns.drain(deadlineMs);
      this.hbone.destroy();
      this.pool.destroy();
      await Promise.allSettled([goaway, poolClosed]);
    })();
    return this.closing;
  }

  private dispatch(b: Bound, s: Socket): void {
    s.on('error', ignoreError); // each handler surfaces errors its own way
    if (this.closing) {
      s.destroy();
      return;
    }
    // Outbound and plaintext sockets stay unread until the relay attaches its listeners (it
    // resumes them): bytes and a FIN that arrive while the upstream is being dialled would
    // otherwise be emitted to nobody and lost. TLS (15008) and SOCKS5 read at once.
    if (b.kind === 'inbound' || b.kind === 'socks5') s.resume();
    const c = this.o.config;
    switch (b.kind) {
      case 'inbound':
        s.setNoDelay(true);
        this.hboneFeed.emit('connection', s);
        return;
      case 'outbound': {
        this.o.sockets.configureAccepted(s, c.keepalive);
        const dst = this.o.sockets.originalDst(s);
        if (!dst) {
          s.destroy();
          return;
        }
        void this.outbound.handle(s, dst);
        return;
      }
      case 'inboundPlaintext':
        this.o.sockets.configureAccepted(s, c.keepalive);
        void this.plaintext(b.transparent).handle(s);
        return;
      case 'socks5':
        s.setNoDelay(true);
        void this.socks5.handle(s);
        return;
    }
  }

  private get common() {
    const c = this.o.config;
    return {
      network: c.network,
      illegalPorts: this.illegalPorts,
      ...(c.packetMark !== undefined ? { mark: c.packetMark } : {}),
      ...(c.keepalive.enabled ? { keepalive: c.keepalive } : {}),
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      localhostAppTunnel: c.localhostAppTunnel,
    };
  }

  private _outbound: OutboundProxy | undefined;
  private get outbound(): OutboundProxy {
    this._outbound ??= new OutboundProxy(
      { state: this.o.state, pool: this.pool, sockets: this.o.sockets, records: this.o.records, conns: this.conns, logger: this.o.accessLogger, localWorkload: this.o.localWorkload },
      { ...this.common, transparentNetworkPolicies: this.o.config.transparentNetworkPolicies, dscpMark: this.o.config.dscpMark, hbonePort: HBONE_PORT },
    );
    return this._outbound;
  }

  private _socks5: Socks5Handler | undefined;
  private get socks5(): Socks5Handler {
    this._socks5 ??= new Socks5Handler({ logger: this.o.accessLogger, outbound: this.outbound });
    return this._socks5;
  }

  private _plaintext: InboundPlaintextProxy | undefined;
  private plaintext(transparent: boolean): InboundPlaintextProxy {
    const self = this;
    this._plaintext ??= new InboundPlaintextProxy(
      { state: this.o.state, sockets: this.o.sockets, records: this.o.records, conns: this.conns, logger: this.o.accessLogger, policyLogger: this.o.policyLogger },
      {
        ...this.common,
        // Looked up per connection: the served workload's uid can change with config.
        get servedWorkloadUid() {
          return self.o.localWorkload()?.uid;
        },
        spoofSource: transparent,
        authzInfoLogging: this.o.config.authzPolicyInfoLogging,
      },
    );
    return this._plaintext;
  }

  private inboundHandler(): InboundHboneProxy {
    const c = this.o.config;
    const self = this;
    return new InboundHboneProxy(
      { state: this.o.state, sockets: this.o.sockets, records: this.o.records, conns: this.conns, logger: this.o.accessLogger, policyLogger: this.o.policyLogger },
      {
        ...this.common,
        // Looked up per request: the served workload's uid can change with config.
        get servedWorkloadUid() {
          return self.o.localWorkload()?.uid;
        },
        transparentNetworkPolicies: c.transparentNetworkPolicies,
        hbonePort: HBONE_PORT,
        enableResponseBaggage: c.enableResponseBaggage,
        get spoofSource() {
          return self.bound.get('inbound')?.transparent ?? false;
        },
        authzInfoLogging: c.authzPolicyInfoLogging,
      },
    );
  }
}

export function drainError(): ZtunnelError {
  return new ZtunnelError('DRAINING');
}

export type { SocketAddr };
