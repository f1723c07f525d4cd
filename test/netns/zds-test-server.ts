// The node agent's side of ZDS (capture.md §6) for tests: listens on a SOCK_SEQPACKET path,
// expects the hello, sends WorkloadRequests (with fds) and reads one ack per request.
// Usable by the CNI stand-in of the netns test bed as well.
import type { NativeAddon } from '../../src/platform/native-addon.js';
import {
  decodeWorkloadResponse,
  decodeZdsHello,
  encodeWorkloadRequest,
  type WorkloadRequest,
  type ZdsAck,
} from '../../src/inpod/zds-messages.js';
import { SeqpacketListener, SeqpacketSocket } from '../../src/inpod/zds-transport.js';

// A bound on waits for the daemon under test, not a timing assertion: a daemon starting on a loaded
// 2-core CI machine can take several seconds to reach its ZDS client.
const WAIT_MS = 20_000;

function within<T>(p: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`ZDS test server: no ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

export class ZdsTestServer {
  private readonly conns: ZdsTestConnection[] = [];

  private constructor(private readonly listener: SeqpacketListener) {}

  static start(addon: NativeAddon, path: string): ZdsTestServer {
    const l = SeqpacketListener.listen(addon, path);
    if (!l.ok) throw l.error;
    return new ZdsTestServer(l.value);
  }

  /** The next ztunnel connection, after its hello (the agent waits 5 s for it). */
  async accept(): Promise<ZdsTestConnection> {
    const sock = await within(this.listener.accept(), 'connection');
    if (!sock) throw new Error('ZDS test server closed');
    const hello = await within(sock.recv(), 'hello');
    if (!hello) throw new Error('connection closed before the hello');
    const decoded = decodeZdsHello(hello.data);
    if (!decoded.ok) throw new Error(`bad hello: ${decoded.error}`);
    const conn = new ZdsTestConnection(sock, decoded.value.version);
    this.conns.push(conn);
    return conn;
  }

  close(): void {
    for (const c of this.conns) c.close();
    this.listener.close();
  }
}

export class ZdsTestConnection {
  constructor(
    private readonly sock: SeqpacketSocket,
    readonly helloVersion: number,
  ) {}

  /** Sends a request (fds as SCM_RIGHTS; they stay open here) and returns ztunnel's ack. */
  request(req: WorkloadRequest, fds: number[] = []): Promise<ZdsAck> {
    return this.sendRaw(encodeWorkloadRequest(req), fds);
  }

  async sendRaw(bytes: Uint8Array, fds: number[] = []): Promise<ZdsAck> {
    await this.sock.send(bytes, fds);
    const reply = await within(this.sock.recv(), 'ack');
    if (!reply) throw new Error('connection closed instead of an ack');
    const ack = decodeWorkloadResponse(reply.data);
    if (!ack.ok) throw new Error(`bad ack: ${ack.error}`);
    return ack.value;
  }

  /** Whether ztunnel sent anything we have not read (it must not send unsolicited messages). */
  hasUnread(): boolean {
    const m = this.sock.tryRecv();
    return m !== undefined && m !== null;
  }

  /** Resolves when ztunnel closes the connection. */
  async closedByPeer(): Promise<void> {
    const m = await within(this.sock.recv(), 'close');
    if (m !== null) throw new Error('expected the connection to close, got a message');
  }

  close(): void {
    this.sock.close();
  }
}
