// SOCK_SEQPACKET unix sockets for ZDS (capture.md §6): one protobuf message per datagram, file
// descriptors via SCM_RIGHTS. The fd is non-blocking; every send/recv is one non-blocking
// syscall on the main thread, retried when a uv_poll watcher on Node's event loop reports the
// fd ready. No thread blocks and no libuv pool slot is held while the agent is quiet.
import { constants as osConstants } from 'node:os';
import { err, ok, type Result } from '../core/errors.js';
import {
  POLL_DISCONNECT,
  POLL_READABLE,
  POLL_WRITABLE,
  errnoError,
  type FdWatcher,
  type NativeAddon,
} from '../platform/native-addon.js';

/** capture.md §6: ztunnel reads into a 1024-byte buffer; MSG_TRUNC / MSG_CTRUNC are errors. */
export const ZDS_MAX_MESSAGE_BYTES = 1024;

const EAGAIN = osConstants.errno.EAGAIN;

export interface SeqpacketMessage {
  readonly data: Buffer;
  /** Received fds (close-on-exec), owned by the receiver. */
  readonly fds: number[];
  /** MSG_TRUNC or MSG_CTRUNC was reported: the message is unusable. */
  readonly truncated: boolean;
}

type Waiter = { resolve: () => void; reject: (e: Error) => void };

/** A connected SOCK_SEQPACKET socket. One recv() and one send() may be in flight at a time each. */
export class SeqpacketSocket {
  private readonly watcher: FdWatcher;
  private readers: Waiter[] = [];
  private writers: Waiter[] = [];
  private closed = false;

  private constructor(
    private readonly addon: NativeAddon,
    private readonly fd: number,
  ) {
    this.watcher = new addon.FdWatcher(fd, (status, events) => this.onReady(status, events));
  }

  /** Connects to a listening path; a Node-style errno error value on failure (ENOENT, ECONNREFUSED, EAGAIN...). */
  static connect(addon: NativeAddon, path: string): Result<SeqpacketSocket, NodeJS.ErrnoException> {
    const fd = addon.seqpacketConnect(path);
    if (fd < 0) return err(errnoError(fd, 'connect', path));
    return ok(new SeqpacketSocket(addon, fd));
  }

  /** Wraps an already connected fd (e.g. from SeqpacketListener.accept); takes ownership. */
  static fromFd(addon: NativeAddon, fd: number): SeqpacketSocket {
    return new SeqpacketSocket(addon, fd);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Sends one datagram (with `fds` as SCM_RIGHTS; they stay open on our side). */
  async send(data: Uint8Array, fds: number[] = []): Promise<void> {
    for (;;) {
      if (this.closed) throw errnoError(-osConstants.errno.EBADF, 'sendmsg', 'socket closed');
      const n = this.addon.sendMessage(this.fd, data, fds);
      if (n >= 0) return;
      if (n !== -EAGAIN) throw errnoError(n, 'sendmsg');
      await this.wait('w');
    }
  }

  /** Receives one datagram; null at end of stream (or after close()). */
  async recv(maxBytes: number = ZDS_MAX_MESSAGE_BYTES): Promise<SeqpacketMessage | null> {
    for (;;) {
      const r = this.tryRecv(maxBytes);
      if (r !== undefined) return r;
      try {
        await this.wait('r');
      } catch (e) {
        if (this.closed) return null;
        throw e;
      }
    }
  }

  /** One non-blocking receive: a message, null at end of stream, undefined when nothing is queued. */
  tryRecv(maxBytes: number = ZDS_MAX_MESSAGE_BYTES): SeqpacketMessage | null | undefined {
    if (this.closed) return null;
    const r = this.addon.recvMessage(this.fd, maxBytes);
    if (typeof r !== 'number') {
      if (r.data.length === 0 && r.fds.length === 0 && !r.truncated && !r.ctruncated) return null;
      return { data: r.data, fds: r.fds, truncated: r.truncated || r.ctruncated };
    }
    if (r === -EAGAIN) return undefined;
    throw errnoError(r, 'recvmsg');
  }

  /** Closes the fd; pending recv() resolves null, pending send() rejects. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watcher.close();
    this.addon.closeFd(this.fd);
    const e = errnoError(-osConstants.errno.EBADF, 'poll', 'socket closed');
    for (const w of [...this.readers, ...this.writers]) w.reject(e);
    this.readers = [];
    this.writers = [];
  }

  private wait(dir: 'r' | 'w'): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      (dir === 'r' ? this.readers : this.writers).push({ resolve, reject });
      this.arm();
    });
  }

  private arm(): void {
    if (this.closed) return;
    const events = (this.readers.length ? POLL_READABLE | POLL_DISCONNECT : 0) | (this.writers.length ? POLL_WRITABLE : 0);
    if (events === 0) {
      this.watcher.stop();
      return;
    }
    const r = this.watcher.start(events);
    if (r < 0) this.onReady(r, 0);
  }

  private onReady(status: number, events: number): void {
    let wake: Waiter[];
    if (status < 0) {
      // An error wakes everyone; the retried syscall reports the real errno.
      wake = [...this.readers, ...this.writers];
      this.readers = [];
      this.writers = [];
    } else {
      wake = [];
      if (events & (POLL_READABLE | POLL_DISCONNECT)) {
        wake.push(...this.readers);
        this.readers = [];
      }
      if (events & POLL_WRITABLE) {
        wake.push(...this.writers);
        this.writers = [];
      }
    }
    this.arm();
    for (const w of wake) w.resolve();
  }
}

/** A listening SOCK_SEQPACKET socket (the node agent's side; used by tests and the CNI stand-in). */
export class SeqpacketListener {
  private readonly watcher: FdWatcher;
  private pending: Waiter | null = null;
  private closed = false;

  private constructor(
    private readonly addon: NativeAddon,
    private readonly fd: number,
  ) {
    this.watcher = new addon.FdWatcher(fd, () => {
      const p = this.pending;
      this.pending = null;
      this.watcher.stop();
      p?.resolve();
    });
  }

  static listen(addon: NativeAddon, path: string, backlog = 16): Result<SeqpacketListener, NodeJS.ErrnoException> {
    const fd = addon.seqpacketListen(path, backlog);
    if (fd < 0) return err(errnoError(fd, 'listen', path));
    return ok(new SeqpacketListener(addon, fd));
  }

  /** The next connection; null once closed. */
  async accept(): Promise<SeqpacketSocket | null> {
    for (;;) {
      if (this.closed) return null;
      const c = this.addon.acceptFd(this.fd);
      if (c >= 0) return SeqpacketSocket.fromFd(this.addon, c);
      if (c !== -EAGAIN) throw errnoError(c, 'accept');
      try {
        await new Promise<void>((resolve, reject) => {
          this.pending = { resolve, reject };
          const r = this.watcher.start(POLL_READABLE);
          if (r < 0) reject(errnoError(r, 'poll'));
        });
      } catch (e) {
        if (this.closed) return null;
        throw e;
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watcher.close();
    this.addon.closeFd(this.fd);
    this.pending?.reject(new Error('listener closed'));
    this.pending = null;
  }
}
