// The only module that loads the native addon (native/, capture.md §3-§6). The addon is a set of
// thin syscall wrappers; every decision is made in TypeScript (linux-socket-factory.ts,
// inpod/zds-transport.ts). Loading is explicit (nothing runs at import time) and a missing addon
// is a value, so dedicated mode works without it.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getSystemErrorName } from 'node:util';
import type { Socket } from 'node:net';
import { ZtunnelError, err, ok, type Result } from '../core/errors.js';
import { socketFd } from '../core/node-internals.js';

/** Readiness bits for FdWatcher (libuv's UV_READABLE / UV_WRITABLE / UV_DISCONNECT). */
export const POLL_READABLE = 1;
export const POLL_WRITABLE = 2;
export const POLL_DISCONNECT = 4;

/** A uv_poll handle on Node's event loop. The callback gets a libuv status (negative errno) and the ready bits. */
export interface FdWatcher {
  /** (Re)arms the watcher for `events`; 0 or a negative errno. */
  start(events: number): number;
  stop(): void;
  /** Stops and releases the handle; the fd stays open and may be handed to Node afterwards. */
  close(): void;
}

export interface AddrInfo {
  readonly ip: string;
  readonly port: number;
  readonly family: 4 | 6;
}

export interface ReceivedMessage {
  readonly data: Buffer;
  /** Close-on-exec fds from SCM_RIGHTS; the receiver owns them. */
  readonly fds: number[];
  /** MSG_TRUNC: the datagram was longer than the buffer. */
  readonly truncated: boolean;
  /** MSG_CTRUNC: some ancillary data (fds) was dropped. */
  readonly ctruncated: boolean;
}

/**
 * Functions exported by native/src/ztunnel_native.cc. Synchronous calls return a negative errno
 * on failure (never throw for a failed syscall). All fds are non-blocking and close-on-exec.
 */
export interface NativeAddon {
  /**
   * socket(AF_INET|AF_INET6, SOCK_STREAM, or SOCK_DGRAM when `datagram`) created inside `netnsFd`
   * (-1: own netns) on a pool thread. Rejects with a Node-style errno error.
   */
  socketInNetns(netnsFd: number, family: 4 | 6, datagram?: boolean): Promise<number>;
  /** The same socket in the calling thread's own netns, synchronously: the fd or a negative errno. */
  socketOwnNetns(family: 4 | 6, datagram?: boolean): number;
  setSockOptInt(fd: number, level: number, name: number, value: number): number;
  /** SO_LINGER {on, 0}: closing the socket then sends a TCP RST. 0 or -errno. */
  setLingerReset(fd: number): number;
  /** The option value (unsigned 32-bit) or a negative errno. */
  getSockOptInt(fd: number, level: number, name: number): number;
  bindAddr(fd: number, ip: string, port: number): number;
  /** 0, -EINPROGRESS (wait for writability, then read SO_ERROR) or another negative errno. */
  connectAddr(fd: number, ip: string, port: number): number;
  /** SO_ORIGINAL_DST, then IP6T_SO_ORIGINAL_DST; negative errno (ENOENT) when not redirected. */
  originalDst(fd: number): AddrInfo | number;
  /** fstat().st_ino of a netns fd (its identity) or a negative errno. */
  netnsInode(fd: number): number;
  closeFd(fd: number): number;
  /** fcntl(F_DUPFD_CLOEXEC): a new fd for the same open socket, or a negative errno. */
  dupFd(fd: number): number;
  seqpacketConnect(path: string): number;
  seqpacketListen(path: string, backlog: number): number;
  acceptFd(fd: number): number;
  /** One datagram, with `fds` as SCM_RIGHTS; bytes sent or a negative errno (-EAGAIN: full). */
  sendMessage(fd: number, data: Uint8Array, fds: number[]): number;
  /** One datagram into a `maxBytes` buffer; a negative errno (-EAGAIN: none yet). Zero bytes and no fds: end of stream. */
  recvMessage(fd: number, maxBytes: number): ReceivedMessage | number;
  /** glibc malloc_trim(0): free heap memory in every arena back to the kernel; true when some was released. */
  mallocTrim(): boolean;
  /** glibc mallopt(M_ARENA_MAX, n): at most `n` malloc arenas from now on; 0 or -EINVAL. */
  mallocArenaMax(n: number): number;
  /** V8's LowMemoryNotification for the calling thread's isolate (full, compacting collections); false when there is none. */
  lowMemoryNotification(): boolean;
  /**
   * BasicConstraints cA of a DER certificate as Node's OpenSSL reads it: 1 TRUE, 0 not, -1 not a
   * certificate, -2 an extension OpenSSL could not decode (or a repeated one).
   */
  x509BasicConstraintsCa(der: Buffer): number;
  /** madvise(2) on [start, start + length); 0 or a negative errno (-EINVAL: advice unknown to this kernel). */
  madvise(start: bigint, length: bigint, advice: number): number;
  FdWatcher: new (fd: number, callback: (status: number, events: number) => void) => FdWatcher;
}

export const NATIVE_ADDON_MISSING =
  'native addon not built: shared (in-pod) mode needs Linux and `npm install` with g++/make available';

const ADDON_PATH = ['native', 'build', 'Release', 'ztunnel_native.node'];

let cached: Result<NativeAddon, ZtunnelError> | undefined;

/** Loads native/build/Release/ztunnel_native.node (once); an error value when it is absent. */
export function loadNativeAddon(): Result<NativeAddon, ZtunnelError> {
  if (cached) return cached;
  if (process.platform !== 'linux') {
    cached = err(new ZtunnelError('NATIVE_UNAVAILABLE', `${NATIVE_ADDON_MISSING} (platform is ${process.platform})`));
    return cached;
  }
  const root = packageRoot();
  const file = root ? join(root, ...ADDON_PATH) : null;
  if (!root || !file || !existsSync(file)) {
    cached = err(new ZtunnelError('NATIVE_UNAVAILABLE', NATIVE_ADDON_MISSING));
    return cached;
  }
  try {
    const require = createRequire(join(root, 'package.json'));
    cached = ok(require(file) as NativeAddon);
  } catch (e) {
    cached = err(new ZtunnelError('NATIVE_UNAVAILABLE', `${NATIVE_ADDON_MISSING}: ${(e as Error).message}`, { cause: e }));
  }
  return cached;
}

/** A Node-style system error (`code`, negative `errno`, `syscall`) from a negative errno. */
export function errnoError(negErrno: number, syscall: string, detail?: string): NodeJS.ErrnoException {
  let code: string;
  try {
    code = getSystemErrorName(negErrno);
  } catch {
    code = `E${-negErrno}`;
  }
  const e: NodeJS.ErrnoException = new Error(`${syscall} ${code}${detail ? ` ${detail}` : ''}`);
  e.errno = negErrno;
  e.code = code;
  e.syscall = syscall;
  return e;
}

// The directory holding package.json and native/ — dist/src/platform/ or src/platform/ below it.
function packageRoot(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'native'))) return dir;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return null;
}

/**
 * Makes the socket's close send a TCP RST (SO_LINGER {on, 0}) — for a connection refused after its
 * TLS handshake, where Node can send no TLS alert and its resetAndDestroy under a TLS socket takes
 * the process down. False when it cannot (no addon, no fd): the caller's close is then a plain FIN.
 */
export function armResetOnClose(socket: Socket): boolean {
  const addon = loadNativeAddon();
  if (!addon.ok) return false;
  const fd = socketFd(socket);
  return fd >= 0 && addon.value.setLingerReset(fd) === 0;
}

/**
 * Reads a DER certificate's BasicConstraints cA with Node's own OpenSSL (the one that parsed and
 * verified the peer's chain in the handshake): true / false, or an Error when the bytes are not a
 * certificate or hold an extension OpenSSL cannot decode. Undefined without the addon (or with an
 * addon built before it had the call: `npm run build:native`). tls/verify.ts's peer-leaf check uses
 * it so a data-plane worker does not load a certificate library for that one bit (docs/memory.md).
 */
export function basicConstraintsReader(): ((der: Buffer) => boolean | Error) | undefined {
  const addon = loadNativeAddon();
  if (!addon.ok || typeof addon.value.x509BasicConstraintsCa !== 'function') return undefined;
  const read = addon.value.x509BasicConstraintsCa;
  return (der) => {
    const r = read(der);
    if (r === 1) return true;
    if (r === 0) return false;
    return new Error(r === -1 ? 'not a DER X.509 certificate' : 'an extension could not be decoded (or is repeated)');
  };
}
