// Every use of Node.js internals in ztunnel-ts, in one place (issue #12). Node has no public API
// for these; each one is a field or method of Node's own stream/handle objects that the data path
// needs:
//
// - `socket._handle.writeQueueSize` and `tlsSocket._handle.readStart()`: the HTTP/2 read-stall
//   watchdog (src/hbone/read-watchdog.ts). Re-measured on Node 24.21: without it, 8 streams
//   echoing 8 MiB both ways on one session still hang for good.
// - `tlsSocket._handle.verifyError()`: chain verification of a server-side `new tls.TLSSocket`
//   (src/tls/verify.ts), which Node leaves to its tls.Server.
// - `socket._handle.fd` and `server._handle`: the OS fd behind a socket (SO_ORIGINAL_DST, marks)
//   and whether a server adopted an fd (src/platform/linux-socket-factory.ts).
// - `stream._readableState` / `_writableState`: raising highWaterMarks Node gives no option for
//   (src/hbone/stream-buffers.ts) and knowing whether an end already closed (src/proxy/relay.ts).
//
// `checkNodeInternals()` runs once at start (src/main.ts) on real objects and fails loudly when a
// Node upgrade removed or renamed one, instead of the data path degrading in silence. The `engines`
// range in package.json pins the Node versions this was checked on.
import net from 'node:net';
import { PassThrough } from 'node:stream';
import tls from 'node:tls';

interface StreamHandle {
  readonly fd?: number;
  readonly writeQueueSize?: number;
  readStart?(): number;
  verifyError?(): Error | null;
}

interface BufferState {
  highWaterMark: number;
  closeEmitted?: boolean;
  endEmitted?: boolean;
}

function handleOf(o: object): StreamHandle | null | undefined {
  return (o as { _handle?: StreamHandle | null })._handle;
}

/** Bytes libuv holds for the socket that the kernel has not taken yet (0 when closed). */
export function pendingWriteBytes(socket: net.Socket): number {
  const q = handleOf(socket)?.writeQueueSize;
  return typeof q === 'number' ? q : 0;
}

/** Asks the TLS layer to read from its socket again (a no-op once the socket is closing). */
export function restartTlsReads(socket: tls.TLSSocket): void {
  try {
    handleOf(socket)?.readStart?.();
  } catch {
    // handle closing; its 'close' ends the caller's interest
  }
}

/**
 * The result of OpenSSL's chain verification on a TLS socket: null when verified, the error
 * otherwise, or undefined when the handle is gone (the caller fails closed).
 */
export function tlsVerifyError(socket: tls.TLSSocket): Error | null | undefined {
  const h = handleOf(socket);
  if (!h || typeof h.verifyError !== 'function') return undefined;
  return h.verifyError();
}

/** The OS fd behind a net.Socket (libuv TCP handles expose it on Linux), or -1. */
export function socketFd(socket: net.Socket): number {
  const fd = handleOf(socket)?.fd;
  return typeof fd === 'number' ? fd : -1;
}

/** Whether a server took ownership of the fd it was asked to listen on. */
export function serverHasHandle(server: net.Server): boolean {
  return Boolean(handleOf(server));
}

function readableState(s: object): BufferState | undefined {
  return (s as { _readableState?: BufferState })._readableState;
}

function writableState(s: object): BufferState | undefined {
  return (s as { _writableState?: BufferState })._writableState;
}

/** Whether the stream already emitted 'close' (before anyone listened for it). */
export function closeEmitted(s: object): boolean {
  return readableState(s)?.closeEmitted === true;
}

/** Raises (never lowers) the readable and writable highWaterMarks of a duplex. */
export function raiseStreamHighWaterMarks(s: object, readableBytes: number, writableBytes: number): void {
  const r = readableState(s);
  const w = writableState(s);
  if (r && typeof r.highWaterMark === 'number' && r.highWaterMark < readableBytes) r.highWaterMark = readableBytes;
  if (w && typeof w.highWaterMark === 'number' && w.highWaterMark < writableBytes) w.highWaterMark = writableBytes;
}

/**
 * Checks, on a real loopback TCP connection and a TLS socket over it, that every internal used
 * above exists with the expected type. Resolves with the list of what is missing (empty when all
 * is well); never throws for a missing internal.
 */
export async function checkNodeInternals(): Promise<string[]> {
  const missing: string[] = [];
  const pt = new PassThrough();
  if (typeof readableState(pt)?.highWaterMark !== 'number') missing.push('stream._readableState.highWaterMark');
  if (typeof writableState(pt)?.highWaterMark !== 'number') missing.push('stream._writableState.highWaterMark');
  if (typeof readableState(pt)?.closeEmitted !== 'boolean') missing.push('stream._readableState.closeEmitted');
  pt.destroy();

  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  try {
    if (!serverHasHandle(server)) missing.push('net.Server._handle');
    const { port } = server.address() as net.AddressInfo;
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const client = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
    });
    const peer = await accepted;
    try {
      const h = handleOf(client);
      if (typeof h?.fd !== 'number' || h.fd < 0) missing.push('net.Socket._handle.fd');
      if (typeof h?.writeQueueSize !== 'number') missing.push('net.Socket._handle.writeQueueSize');
      // A server-side TLS socket over the accepted connection: its handle (TLSWrap) exists before
      // any handshake; nothing is sent.
      const t = new tls.TLSSocket(peer, { isServer: true });
      const th = handleOf(t);
      if (typeof th?.readStart !== 'function') missing.push('tls.TLSSocket._handle.readStart');
      if (typeof th?.verifyError !== 'function') missing.push('tls.TLSSocket._handle.verifyError');
      t.destroy();
    } finally {
      client.destroy();
      peer.destroy();
    }
  } finally {
    server.close();
  }
  return missing;
}
