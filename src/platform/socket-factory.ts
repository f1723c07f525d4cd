// How the proxy creates sockets (docs/design.md §2). The Linux implementation (over the native addon)
// can create sockets inside another network namespace and set marks / transparent options; the
// plain implementation uses node:net only and serves dedicated mode and tests.
import type { Socket as DatagramSocket } from 'node:dgram';
import type { Server, Socket } from 'node:net';
import type { SocketAddr } from '../core/net.js';

export type TransparentMode = 'force' | 'try' | 'off';

/**
 * capture.md §4, Istio's rule in both modes: ENABLE_ORIG_SRC unset → best effort (spoof when the
 * listener accepts IP_TRANSPARENT), true → forced (an error without the privilege), false → off.
 */
export function transparentMode(enableOrigSrc: boolean | undefined): TransparentMode {
  return enableOrigSrc === undefined ? 'try' : enableOrigSrc ? 'force' : 'off';
}

export interface ListenOptions {
  readonly host: string;
  readonly port: number;
  /** SO_REUSEPORT (in-pod listeners, capture.md §5). */
  readonly reusePort?: boolean;
  /** IP_TRANSPARENT on the listener (capture.md §4). */
  readonly transparent?: TransparentMode;
  readonly backlog?: number;
}

export interface ListenResult {
  /** A net.Server created with allowHalfOpen: true, already listening. */
  readonly server: Server;
  /** Whether IP_TRANSPARENT is in force on the listener. */
  readonly transparent: boolean;
}

export interface KeepaliveOptions {
  readonly enabled: boolean;
  readonly timeMs: number;
  readonly intervalMs: number;
  readonly retries: number;
  readonly userTimeout: boolean;
}

export interface ConnectOptions {
  readonly host: string;
  readonly port: number;
  /** Bind to this source IP first (spoofed when transparent is set; capture.md §4). */
  readonly sourceIp?: string;
  /** Use IP_TRANSPARENT + IP_FREEBIND so sourceIp need not be local. */
  readonly transparentSource?: boolean;
  /** SO_MARK. */
  readonly mark?: number;
  /** IP_TOS / IPV6_TCLASS (DS field = DSCP << 2), set before connect so the SYN carries it. */
  readonly tos?: number;
  readonly keepalive?: KeepaliveOptions;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

export interface UdpOptions {
  readonly family: 4 | 6;
  /** Bind here (a listener); absent: the kernel picks an ephemeral port on the first send. */
  readonly bind?: { readonly host: string; readonly port: number };
  /** SO_MARK (upstream DNS queries from a pod netns, capture.md §2). */
  readonly mark?: number;
}

export interface SocketFactory {
  readonly kind: 'linux' | 'plain';
  listen(opts: ListenOptions): Promise<ListenResult>;
  /**
   * Serves a listener another thread bound (docs/workers.md): adopts a duplicate of `fd`, so
   * closing the returned server leaves the original open. Absent: the factory cannot (no addon).
   */
  adoptListener?(fd: number, backlog?: number): Promise<Server>;
  /** Resolves once connected (allowHalfOpen: true, TCP_NODELAY); rejects with the errno error. */
  connect(opts: ConnectOptions): Promise<Socket>;
  /** SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST, else the socket's local address (capture.md §3). */
  originalDst(socket: Socket): SocketAddr | null;
  /** A UDP socket (node:dgram) in this factory's netns; resolves once bound (when `bind` is given). */
  udpSocket(opts: UdpOptions): Promise<DatagramSocket>;
  /** Applies keepalive/user-timeout to an accepted socket (capture.md §5). */
  configureAccepted(socket: Socket, keepalive?: KeepaliveOptions): void;
}
