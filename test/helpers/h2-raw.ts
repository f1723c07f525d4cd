// A raw HTTP/2 client for tests that must send what no well-behaved library sends (RFC 9113):
// malformed header values, rapid HEADERS + RST_STREAM, DATA beyond the flow-control window. It
// writes frames byte by byte over a real TLS socket and records every frame the server sends.
// Header blocks are HPACK literals without indexing and without Huffman coding (RFC 7541 §6.2.2),
// which every decoder accepts; server header blocks are not decoded (tests look at frame types,
// error codes and connection state).
import tls from 'node:tls';

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8 } as const;
export const H2_ERROR = { NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, FLOW_CONTROL_ERROR: 3, STREAM_CLOSED: 5, FRAME_SIZE_ERROR: 6, REFUSED_STREAM: 7, CANCEL: 8, ENHANCE_YOUR_CALM: 11 } as const;
const FLAG_END_STREAM = 0x1;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

/** RFC 7541 §5.1 integer with an N-bit prefix; `first` carries the pattern bits above the prefix. */
function hpackInt(value: number, prefixBits: number, first: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([first | value]);
  const out = [first | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

function hpackString(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'latin1') : s;
  return Buffer.concat([hpackInt(b.length, 7, 0), b]);
}

/** A header block of literal fields without indexing (new names), in the order given. */
export function headerBlock(headers: readonly (readonly [string, string | Buffer])[]): Buffer {
  return Buffer.concat(headers.flatMap(([name, value]) => [Buffer.from([0]), hpackString(name), hpackString(value)]));
}

export function headersFrame(streamId: number, headers: readonly (readonly [string, string | Buffer])[], endStream = false): Buffer {
  return frame(FRAME.HEADERS, FLAG_END_HEADERS | (endStream ? FLAG_END_STREAM : 0), streamId, headerBlock(headers));
}

export function rstStreamFrame(streamId: number, code: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return frame(FRAME.RST_STREAM, 0, streamId, p);
}

export function dataFrame(streamId: number, data: Buffer, endStream = false): Buffer {
  return frame(FRAME.DATA, endStream ? FLAG_END_STREAM : 0, streamId, data);
}

export interface RawH2Options {
  readonly host: string;
  readonly port: number;
  readonly cert?: string;
  readonly key?: string;
  readonly ca?: readonly string[];
  /** ALPN offered; `null` offers none. Default ['h2']. */
  readonly alpn?: readonly string[] | null;
}

/** One raw HTTP/2 connection over TLS. */
export class RawH2 {
  readonly frames: Frame[] = [];
  closed = false;
  /** Set once the server's TLS socket ended or reset. */
  readonly done: Promise<void>;
  private buf: Buffer = Buffer.alloc(0);
  private waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];

  private constructor(readonly socket: tls.TLSSocket) {
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', () => {});
    this.done = new Promise((resolve) => socket.once('close', () => {
      this.closed = true;
      resolve();
    }));
  }

  /** Connects, completes TLS, sends the preface and an empty SETTINGS frame. */
  static connect(o: RawH2Options): Promise<RawH2> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({
        host: o.host,
        port: o.port,
        ...(o.cert ? { cert: o.cert } : {}),
        ...(o.key ? { key: o.key } : {}),
        ...(o.ca ? { ca: [...o.ca] } : {}),
        ...(o.alpn === null ? {} : { ALPNProtocols: [...(o.alpn ?? ['h2'])] }),
        checkServerIdentity: () => undefined,
        rejectUnauthorized: !!o.ca,
      });
      socket.once('error', reject);
      socket.once('secureConnect', () => {
        socket.off('error', reject);
        const c = new RawH2(socket);
        socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0)]));
        resolve(c);
      });
    });
  }

  write(b: Buffer): boolean {
    return this.socket.write(b);
  }

  /** Resolves with the first (past or future) frame matching `pred`; rejects after `timeoutMs` or when the connection closes first. */
  waitFor(pred: (f: Frame) => boolean, timeoutMs = 10_000): Promise<Frame> {
    const found = this.frames.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching frame within ${timeoutMs} ms; got types ${this.frames.map((f) => f.type).join(',')}`)), timeoutMs);
      const w = { pred, resolve: (f: Frame) => (clearTimeout(timer), resolve(f)) };
      this.waiters.push(w);
      void this.done.then(() => {
        if (!this.waiters.includes(w)) return;
        clearTimeout(timer);
        reject(new Error(`connection closed before a matching frame; got types ${this.frames.map((f) => f.type).join(',')}`));
      });
    });
  }

  goaway(timeoutMs?: number): Promise<{ lastStreamId: number; code: number }> {
    return this.waitFor((f) => f.type === FRAME.GOAWAY, timeoutMs).then((f) => ({ lastStreamId: f.payload.readUInt32BE(0) & 0x7fffffff, code: f.payload.readUInt32BE(4) }));
  }

  rstCodes(streamId: number): number[] {
    return this.frames.filter((f) => f.type === FRAME.RST_STREAM && f.streamId === streamId).map((f) => f.payload.readUInt32BE(0));
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    while (this.buf.length >= 9) {
      const len = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + len) break;
      const f: Frame = { type: this.buf[3]!, flags: this.buf[4]!, streamId: this.buf.readUInt32BE(5) & 0x7fffffff, payload: this.buf.subarray(9, 9 + len) };
      this.buf = this.buf.subarray(9 + len);
      this.frames.push(f);
      if (f.type === FRAME.SETTINGS && !(f.flags & FLAG_ACK)) this.socket.write(frame(FRAME.SETTINGS, FLAG_ACK, 0));
      if (f.type === FRAME.PING && !(f.flags & FLAG_ACK)) this.socket.write(frame(FRAME.PING, FLAG_ACK, 0, f.payload));
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(f)) return true;
        w.resolve(f);
        return false;
      });
    }
  }
}
