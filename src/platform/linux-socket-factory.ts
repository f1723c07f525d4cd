// SocketFactory over the native addon (capture.md §2-§5): sockets created inside a pod's network
// namespace, SO_MARK, SO_REUSEPORT, IP_TRANSPARENT listeners, spoofed-source connects and the
// original destination of redirected connections. The addon only makes syscalls; the order of
// steps, fallbacks and error reporting live here.
//
// How a socket reaches Node: the addon creates it on a pool thread that setns()es into the pod
// netns and back (a socket keeps its netns for life), or at once in ztunnel's own netns; options,
// bind and connect then run on the event-loop thread. A listener is adopted with `server.listen({ fd })`. A connect is started
// non-blocking; its completion is observed with a uv_poll watcher on Node's event loop and
// SO_ERROR, and only a connected fd is handed to `new net.Socket({ fd })` (Node assumes an fd
// it adopts is already connected).
import { createSocket, type Socket as DatagramSocket } from 'node:dgram';
import { openSync, closeSync } from 'node:fs';
import { createServer, Socket, type Server } from 'node:net';
import { constants as osConstants, endianness } from 'node:os';
import { canonicalIp, ipFamily, type SocketAddr } from '../core/net.js';
import { serverHasHandle, socketFd } from '../core/node-internals.js';
import { ZtunnelError, err, ok, type Result } from '../core/errors.js';
import { POLL_WRITABLE, errnoError, type NativeAddon } from './native-addon.js';
import { SOCKET_HIGH_WATER_MARK, bindDatagram } from './plain-socket-factory.js';
import type {
  ConnectOptions,
  KeepaliveOptions,
  ListenOptions,
  ListenResult,
  SocketFactory,
  UdpOptions,
} from './socket-factory.js';

/** Linux levels and option numbers (capture.md §5 table, plus SO_REUSEADDR/SO_ERROR/IPV6_V6ONLY). */
export const SOCKOPT = {
  SOL_SOCKET: 1,
  SO_REUSEADDR: 2,
  SO_ERROR: 4,
  SO_KEEPALIVE: 9,
  SO_REUSEPORT: 15,
  SO_MARK: 36,
  SOL_IP: 0,
  IP_TOS: 1,
  IP_FREEBIND: 15,
  IP_TRANSPARENT: 19,
  SOL_IPV6: 41,
  IPV6_V6ONLY: 26,
  IPV6_TCLASS: 67,
  IPV6_TRANSPARENT: 75,
  IPV6_FREEBIND: 78,
  IPPROTO_TCP: 6,
  TCP_NODELAY: 1,
  TCP_KEEPIDLE: 4,
  TCP_KEEPINTVL: 5,
  TCP_KEEPCNT: 6,
  TCP_INFO: 11,
  TCP_USER_TIMEOUT: 18,
} as const;

const EINPROGRESS = osConstants.errno.EINPROGRESS;
const TCP_ESTABLISHED = 1;
const LITTLE_ENDIAN = endianness() === 'LE';
const EINVAL = osConstants.errno.EINVAL;

export interface LinuxSocketFactoryOptions {
  /** Create every socket inside this netns (a pod's, from ZDS). Absent: ztunnel's own netns. Not owned: the caller closes it. */
  readonly netnsFd?: number;
  /** Told when best-effort IP_TRANSPARENT (`transparent: 'try'`) could not be set (capture.md §4). */
  readonly onWarning?: (message: string) => void;
}

export class LinuxSocketFactory implements SocketFactory {
  readonly kind = 'linux' as const;
  private readonly netnsFd: number;
  private readonly onWarning: (message: string) => void;

  constructor(
    private readonly addon: NativeAddon,
    opts: LinuxSocketFactoryOptions = {},
  ) {
    this.netnsFd = opts.netnsFd ?? -1;
    this.onWarning = opts.onWarning ?? (() => {});
  }

  /**
   * Shared-mode startup check (capture.md §2, ports-and-modes.md §2): can this process call setns
   * and set SO_MARK? Failure is fatal for the caller.
   */
  static async checkCapabilities(addon: NativeAddon, mark = 1337): Promise<Result<void, ZtunnelError>> {
    let nsFd = -1;
    let fd = -1;
    try {
      nsFd = openSync('/proc/self/ns/net', 'r');
      fd = await addon.socketInNetns(nsFd, 4); // setns into our own netns and back
      const r = addon.setSockOptInt(fd, SOCKOPT.SOL_SOCKET, SOCKOPT.SO_MARK, mark);
      if (r < 0) throw errnoError(r, 'setsockopt(SO_MARK)');
      return ok(undefined);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      return err(new ZtunnelError('MISSING_CAPABILITIES', `failed to set up in-pod sockets (${why}): ${capabilityHint(e)}`, { cause: e }));
    } finally {
      if (fd >= 0) addon.closeFd(fd);
      if (nsFd >= 0) closeSync(nsFd);
    }
  }

  async listen(opts: ListenOptions): Promise<ListenResult> {
    const { fd, transparent } = await this.bindListener(opts);
    const server = await listenOnFd(fd, opts.backlog, () => this.addon.closeFd(fd));
    return { server, transparent };
  }

  async adoptListener(fd: number, backlog?: number): Promise<Server> {
    const dup = this.addon.dupFd(fd);
    if (dup < 0) throw errnoError(dup, 'dup', `listener fd ${fd}`);
    return listenOnFd(dup, backlog, () => this.addon.closeFd(dup));
  }

  /**
   * A bound, not yet listening TCP socket (capture.md §5 options applied), for a caller that
   * hands the fd on: the data-plane workers each adopt a duplicate of it (docs/workers.md).
   * The caller owns the fd.
   */
  async bindListener(opts: ListenOptions): Promise<{ fd: number; transparent: boolean }> {
    const host = canonicalIp(opts.host);
    if (!host) throw errnoError(-EINVAL, 'listen', `${opts.host} is not an IP address`);
    const family = ipFamily(host) as 4 | 6;
    const fd = await this.addon.socketInNetns(this.netnsFd, family);
    let transparent = false;
    try {
      this.must(fd, SOCKOPT.SOL_SOCKET, SOCKOPT.SO_REUSEADDR, 1, 'SO_REUSEADDR'); // as Node does for listeners
      if (family === 6 && host === '::') this.must(fd, SOCKOPT.SOL_IPV6, SOCKOPT.IPV6_V6ONLY, 0, 'IPV6_V6ONLY');
      if (opts.reusePort) this.must(fd, SOCKOPT.SOL_SOCKET, SOCKOPT.SO_REUSEPORT, 1, 'SO_REUSEPORT');
      const mode = opts.transparent ?? 'off';
      if (mode !== 'off') {
        // capture.md §4: forced → failure is an error; best effort → a warning.
        const [level, name, label] = transparentOpt(family);
        const r = this.addon.setSockOptInt(fd, level, name, 1);
        if (r === 0) transparent = true;
        else if (mode === 'force') throw errnoError(r, `setsockopt(${label})`, `on listener ${host}:${opts.port}`);
        else this.onWarning(`could not set ${label} on listener ${host}:${opts.port} (${errnoError(r, 'setsockopt').code}); continuing without it`);
      }
      const b = this.addon.bindAddr(fd, host, opts.port);
      if (b < 0) throw errnoError(b, 'bind', `${host}:${opts.port}`);
    } catch (e) {
      this.addon.closeFd(fd);
      throw e;
    }
    return { fd, transparent };
  }

  async connect(opts: ConnectOptions): Promise<Socket> {
    opts.signal?.throwIfAborted();
    const host = canonicalIp(opts.host);
    if (!host) throw errnoError(-EINVAL, 'connect', `${opts.host} is not an IP address`);
    const family = ipFamily(host) as 4 | 6;
    const source = opts.sourceIp !== undefined ? canonicalIp(opts.sourceIp) : null;
    if (opts.sourceIp !== undefined && (!source || ipFamily(source) !== family)) {
      throw errnoError(-EINVAL, 'bind', `source ${opts.sourceIp} does not match the family of ${opts.host}`);
    }
    const target = `${family === 6 ? `[${host}]` : host}:${opts.port}`;
    if (this.netnsFd < 0 && opts.mark === undefined && opts.tos === undefined && !opts.transparentSource) {
      // Own netns and no option node:net cannot set: node:net connects without the pool-thread
      // hop and the fd adoption of the path below (~100 µs less per connection, issue 7).
      return this.connectOwnNetns(host, source, target, opts);
    }
    const created = this.newSocket(family, false);
    const fd = typeof created === 'number' ? created : await created;
    try {
      opts.signal?.throwIfAborted();
      this.must(fd, SOCKOPT.IPPROTO_TCP, SOCKOPT.TCP_NODELAY, 1, 'TCP_NODELAY');
      // capture.md §2: the mark keeps ztunnel's own traffic out of the in-pod redirect rules.
      if (opts.mark !== undefined) this.must(fd, SOCKOPT.SOL_SOCKET, SOCKOPT.SO_MARK, opts.mark, 'SO_MARK');
      if (opts.keepalive) this.applyKeepalive(fd, opts.keepalive, true);
      // capture.md §8: the DS field (DSCP << 2) on every packet, the SYN included.
      if (opts.tos !== undefined) {
        if (family === 6) this.must(fd, SOCKOPT.SOL_IPV6, SOCKOPT.IPV6_TCLASS, opts.tos, 'IPV6_TCLASS');
        else this.must(fd, SOCKOPT.SOL_IP, SOCKOPT.IP_TOS, opts.tos, 'IP_TOS');
      }
      if (opts.transparentSource) {
        // capture.md §4: IP_TRANSPARENT + IP_FREEBIND so a non-local source can be bound. The
        // caller decides whether to fall back to a normal connect.
        const [tLevel, tName, tLabel] = transparentOpt(family);
        this.must(fd, tLevel, tName, 1, tLabel);
        const [fLevel, fName, fLabel] = family === 6
          ? [SOCKOPT.SOL_IPV6, SOCKOPT.IPV6_FREEBIND, 'IPV6_FREEBIND'] as const
          : [SOCKOPT.SOL_IP, SOCKOPT.IP_FREEBIND, 'IP_FREEBIND'] as const;
        this.must(fd, fLevel, fName, 1, fLabel);
      }
      if (source) {
        const b = this.addon.bindAddr(fd, source, 0);
        if (b < 0) throw errnoError(b, 'bind', `source ${source}`);
      }
      const c = this.addon.connectAddr(fd, host, opts.port);
      if (c < 0 && c !== -EINPROGRESS) throw errnoError(c, 'connect', target);
      if (c !== 0 && !this.established(fd)) await this.awaitConnected(fd, target, opts);
    } catch (e) {
      this.addon.closeFd(fd);
      throw e;
    }
    return new Socket({ fd, allowHalfOpen: true, readable: true, writable: true, highWaterMark: SOCKET_HIGH_WATER_MARK } as never);
  }

  /**
   * A new non-blocking socket in this factory's netns: in a pod's, on a pool thread that setns()es
   * there and back; in our own, synchronously (no pool-thread hop and no extra event-loop turn: a
   * marked, DSCP-stamped or spoofed-source connect in ztunnel's own netns, issue 12).
   */
  private newSocket(family: 4 | 6, datagram: boolean): number | Promise<number> {
    if (this.netnsFd >= 0) return this.addon.socketInNetns(this.netnsFd, family, datagram);
    const fd = this.addon.socketOwnNetns(family, datagram);
    if (fd < 0) throw errnoError(fd, 'socket');
    return fd;
  }

  private connectOwnNetns(host: string, source: string | null, target: string, opts: ConnectOptions): Promise<Socket> {
    return new Promise<Socket>((resolve, reject) => {
      const socket = new Socket({ allowHalfOpen: true, highWaterMark: SOCKET_HIGH_WATER_MARK } as never);
      let done = false;
      const finish = (e?: Error) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        socket.off('error', finish);
        if (!e && opts.keepalive) {
          try {
            this.applyKeepalive(socketFd(socket), opts.keepalive, true);
          } catch (ke) {
            e = ke as Error;
          }
        }
        if (e) {
          socket.destroy();
          reject(e);
        } else {
          resolve(socket);
        }
      };
      const onAbort = () => finish(abortError(opts.signal));
      const timer = Number.isFinite(opts.timeoutMs) && opts.timeoutMs > 0
        ? setTimeout(() => finish(errnoError(-osConstants.errno.ETIMEDOUT, 'connect', target)), opts.timeoutMs)
        : undefined;
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      socket.once('error', finish);
      socket.setNoDelay(true);
      socket.connect({ host, port: opts.port, ...(source ? { localAddress: source } : {}) }, () => finish());
    });
  }

  async udpSocket(opts: UdpOptions): Promise<DatagramSocket> {
    const host = opts.bind ? canonicalIp(opts.bind.host) : opts.family === 6 ? '::' : '0.0.0.0';
    if (!host || ipFamily(host) !== opts.family) throw errnoError(-EINVAL, 'bind', `${opts.bind?.host} is not an IPv${opts.family} address`);
    if (this.netnsFd < 0 && opts.mark === undefined) {
      // Own netns, no mark: node:dgram directly, without the pool-thread hop (as connect does).
      const plain = createSocket({ type: opts.family === 6 ? 'udp6' : 'udp4' });
      await bindDatagram(plain, { address: host, port: opts.bind?.port ?? 0 });
      return plain;
    }
    const created = this.newSocket(opts.family, true);
    const fd = typeof created === 'number' ? created : await created;
    try {
      if (opts.mark !== undefined) this.must(fd, SOCKOPT.SOL_SOCKET, SOCKOPT.SO_MARK, opts.mark, 'SO_MARK');
      // Port 0: the kernel picks a random ephemeral source port for this socket.
      const b = this.addon.bindAddr(fd, host, opts.bind?.port ?? 0);
      if (b < 0) throw errnoError(b, 'bind', `${host}:${opts.bind?.port ?? 0}`);
    } catch (e) {
      this.addon.closeFd(fd);
      throw e;
    }
    const socket = createSocket({ type: opts.family === 6 ? 'udp6' : 'udp4' });
    try {
      await bindDatagram(socket, { fd });
    } catch (e) {
      this.addon.closeFd(fd);
      throw e;
    }
    return socket;
  }

  originalDst(socket: Socket): SocketAddr | null {
    return this.netfilterOriginalDst(socket) ?? localAddr(socket);
  }

  /**
   * Only the netfilter answer (capture.md §3 steps 1-2): null when conntrack has no record of the
   * connection (TPROXY, or no nat in that netns), so a caller can warn about the local-address
   * fallback on a non-transparent listener. A tracked but un-NATed connection answers its own
   * destination.
   */
  netfilterOriginalDst(socket: Socket): SocketAddr | null {
    const fd = socketFd(socket);
    if (fd < 0) return null;
    const r = this.addon.originalDst(fd);
    if (typeof r === 'number') return null;
    const ip = canonicalIp(r.ip);
    return ip ? { ip, port: r.port } : null;
  }

  configureAccepted(socket: Socket, keepalive?: KeepaliveOptions): void {
    socket.setNoDelay(true);
    const fd = socketFd(socket);
    if (keepalive && fd >= 0) this.applyKeepalive(fd, keepalive, false);
  }

  // capture.md §5: SO_KEEPALIVE with idle/interval/count in seconds; TCP_USER_TIMEOUT (ms) =
  // time + retries × interval, only when enabled. Accepted sockets ignore failures (the peer may
  // already be gone); dialed sockets report them.
  private applyKeepalive(fd: number, k: KeepaliveOptions, strict: boolean): void {
    if (!k.enabled) return;
    for (const [level, name, value, label] of keepaliveSteps(k)) {
      if (strict) this.must(fd, level, name, value, label);
      else this.addon.setSockOptInt(fd, level, name, value);
    }
  }

  private must(fd: number, level: number, name: number, value: number, label: string): void {
    const r = this.addon.setSockOptInt(fd, level, name, value);
    if (r < 0) throw errnoError(r, `setsockopt(${label})`);
  }

  // A non-blocking connect to a local address (loopback, a pod on this node) has usually finished
  // its handshake before connect(2) returns EINPROGRESS: the peer's SYN-ACK is processed on the
  // way out of the syscall. Then the fd is handed to Node at once, without the poll watcher, its
  // timer and an extra event-loop turn (issue 12: ~15 µs less CPU per spoofed connect). The
  // state is the first byte of struct tcp_info (linux/tcp.h; TCP_ESTABLISHED = 1).
  private established(fd: number): boolean {
    const v = this.addon.getSockOptInt(fd, SOCKOPT.IPPROTO_TCP, SOCKOPT.TCP_INFO);
    if (v < 0) return false;
    return (LITTLE_ENDIAN ? v & 0xff : v >>> 24) === TCP_ESTABLISHED;
  }

  // Waits for a non-blocking connect on Node's event loop: writable → SO_ERROR decides. The
  // watcher is closed before the fd is handed to Node, so the two never poll the fd together.
  private awaitConnected(fd: number, target: string, opts: ConnectOptions): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let done = false;
      const finish = (e?: Error) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        watcher.close();
        if (e) reject(e);
        else resolve();
      };
      const watcher = new this.addon.FdWatcher(fd, (status) => {
        // libuv reports EPOLLERR as status EBADF; SO_ERROR holds the real reason (ECONNREFUSED...).
        const soError = this.addon.getSockOptInt(fd, SOCKOPT.SOL_SOCKET, SOCKOPT.SO_ERROR);
        if (soError < 0) return finish(errnoError(soError, 'getsockopt(SO_ERROR)', target));
        if (soError !== 0) return finish(errnoError(-soError, 'connect', target));
        if (status < 0) return finish(errnoError(status, 'connect', target));
        finish();
      });
      const onAbort = () => finish(abortError(opts.signal));
      const timer = Number.isFinite(opts.timeoutMs) && opts.timeoutMs > 0
        ? setTimeout(() => finish(errnoError(-osConstants.errno.ETIMEDOUT, 'connect', target)), opts.timeoutMs)
        : undefined;
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const r = watcher.start(POLL_WRITABLE);
      if (r < 0) finish(errnoError(r, 'uv_poll_start', target));
    });
  }
}

type SockOptStep = readonly [level: number, name: number, value: number, label: string];

// The options are per listener or per config, so their setsockopt list is built once each rather
// than per connection (issue 12).
const keepaliveStepsOf = new WeakMap<KeepaliveOptions, readonly SockOptStep[]>();

function keepaliveSteps(k: KeepaliveOptions): readonly SockOptStep[] {
  let steps = keepaliveStepsOf.get(k);
  if (!steps) {
    const sec = (ms: number) => Math.max(1, Math.ceil(ms / 1000));
    const list: SockOptStep[] = [
      [SOCKOPT.SOL_SOCKET, SOCKOPT.SO_KEEPALIVE, 1, 'SO_KEEPALIVE'],
      [SOCKOPT.IPPROTO_TCP, SOCKOPT.TCP_KEEPIDLE, sec(k.timeMs), 'TCP_KEEPIDLE'],
      [SOCKOPT.IPPROTO_TCP, SOCKOPT.TCP_KEEPINTVL, sec(k.intervalMs), 'TCP_KEEPINTVL'],
      [SOCKOPT.IPPROTO_TCP, SOCKOPT.TCP_KEEPCNT, Math.max(1, k.retries), 'TCP_KEEPCNT'],
    ];
    if (k.userTimeout) {
      list.push([SOCKOPT.IPPROTO_TCP, SOCKOPT.TCP_USER_TIMEOUT, k.timeMs + k.retries * k.intervalMs, 'TCP_USER_TIMEOUT']);
    }
    keepaliveStepsOf.set(k, (steps = list));
  }
  return steps;
}

function transparentOpt(family: 4 | 6): readonly [number, number, string] {
  return family === 6
    ? [SOCKOPT.SOL_IPV6, SOCKOPT.IPV6_TRANSPARENT, 'IPV6_TRANSPARENT']
    : [SOCKOPT.SOL_IP, SOCKOPT.IP_TRANSPARENT, 'IP_TRANSPARENT'];
}

function abortError(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  if (reason instanceof Error) return reason;
  const e = new Error('connect aborted');
  e.name = 'AbortError';
  return e;
}

function localAddr(socket: Socket): SocketAddr | null {
  const ip = socket.localAddress ? canonicalIp(socket.localAddress) : null;
  if (!ip || socket.localPort === undefined) return null;
  return { ip, port: socket.localPort };
}

/**
 * Which capability a failed start-up check lacks (Istio's DaemonSet grants NET_ADMIN, SYS_ADMIN and
 * NET_RAW): setns(2) into a pod's network namespace needs CAP_SYS_ADMIN, SO_MARK CAP_NET_ADMIN.
 */
export function capabilityHint(e: unknown): string {
  const { code, syscall } = (e ?? {}) as NodeJS.ErrnoException;
  const denied = code === 'EPERM' || code === 'EACCES';
  if (denied && syscall === 'setns') return 'entering a pod network namespace (setns) needs CAP_SYS_ADMIN: make sure ztunnel has CAP_SYS_ADMIN, CAP_NET_ADMIN and CAP_NET_RAW';
  if (denied && syscall?.startsWith('setsockopt')) return 'setting SO_MARK needs CAP_NET_ADMIN: make sure ztunnel has CAP_SYS_ADMIN, CAP_NET_ADMIN and CAP_NET_RAW';
  return 'make sure ztunnel has CAP_SYS_ADMIN, CAP_NET_ADMIN and CAP_NET_RAW';
}

/**
 * Adopts a bound TCP socket fd as a listening net.Server (Node calls listen(2) on it). When Node
 * refuses the fd, `release` closes it (it is still the caller's); once adopted, closing the
 * server closes the fd.
 */
export async function listenOnFd(fd: number, backlog: number | undefined, release: () => void): Promise<Server> {
  const server: Server = createServer({ allowHalfOpen: true, highWaterMark: SOCKET_HIGH_WATER_MARK } as never);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ fd, backlog: backlog ?? 1024 }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    server.close();
    // If Node never adopted the fd, it is still ours to close.
    if (!serverHasHandle(server)) release();
    throw e;
  }
  return server;
}
