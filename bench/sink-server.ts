// The application server of every scenario, run as its own process (forked by run.ts). Listens on
// the host given as argv[2] (port 0) and reports { type: 'listening', port } over IPC. Speaks the
// one-byte-opcode protocol of lib/protocol.ts.
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { BULK_CHUNK_BYTES, OP_DOWNLOAD, OP_ECHO, OP_REQUEST, REQUEST_BYTES, RESPONSE_BYTES } from './lib/protocol.js';

const host = process.argv[2] ?? '127.0.0.1';
const HIGH_WATER_MARK = 256 * 1024;

// Incompressible-looking data (no proxy here compresses, but keep it honest).
const chunk = Buffer.alloc(BULK_CHUNK_BYTES);
for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 2654435761) >>> 24;
const response = Buffer.alloc(RESPONSE_BYTES, 0x72);

function download(s: Socket): void {
  // Sends until the client goes away; write() returning false waits for 'drain'.
  const pump = () => {
    while (!s.destroyed && s.writable) {
      if (!s.write(chunk)) {
        s.once('drain', pump);
        return;
      }
    }
  };
  s.on('data', () => {}); // ignore anything else the client sends
  pump();
}

function echo(s: Socket, first: Buffer): void {
  if (first.length) s.write(first);
  s.on('data', (d: Buffer) => s.write(d));
}

function request(s: Socket, first: Buffer): void {
  let got = first.length;
  const check = () => {
    if (got >= REQUEST_BYTES) {
      s.removeListener('data', onData);
      s.end(response);
    }
  };
  const onData = (d: Buffer) => {
    got += d.length;
    check();
  };
  s.on('data', onData);
  check();
}

const server = createServer({ allowHalfOpen: false, noDelay: true, highWaterMark: HIGH_WATER_MARK }, (s) => {
  s.on('error', () => {});
  s.once('data', (d: Buffer) => {
    const op = d[0];
    const rest = d.subarray(1);
    if (op === OP_DOWNLOAD) download(s);
    else if (op === OP_ECHO) echo(s, rest);
    else if (op === OP_REQUEST) request(s, rest);
    else s.destroy();
  });
});
server.maxConnections = 19_000;
server.on('error', (e) => {
  process.send?.({ type: 'error', message: e.message });
  process.exit(1);
});
server.listen(0, host, () => {
  process.send?.({ type: 'listening', port: (server.address() as AddressInfo).port });
});
// The orchestrator owns this process: leave when it disconnects (it died or is done).
process.on('disconnect', () => process.exit(0));
