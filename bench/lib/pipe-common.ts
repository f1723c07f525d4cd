// What the two reference pipes (tls-pipe.ts, h2-pipe.ts) share: their TLS material from the
// environment, the tuned copy loop (perf-notes.md "Knobs that mattered" 2) and the 256 KiB
// buffer marks. Kept apart from src/ on purpose: the references must not use the product's code.
import { readFileSync } from 'node:fs';
import type { AddressInfo, Server } from 'node:net';
import type tls from 'node:tls';
import type { Duplex } from 'node:stream';

export const HIGH_WATER_MARK = 256 * 1024;
export const CIPHERS = 'TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256';

const env = (k: string) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};

/** BENCH_TLS_CERT, BENCH_TLS_KEY, BENCH_TLS_CA (PEM paths) and BENCH_TLS_PEER_URI (expected peer SAN). */
export function pipeTlsMaterial(): { contextOptions: tls.SecureContextOptions; peerUri: string } {
  return {
    contextOptions: {
      cert: readFileSync(env('BENCH_TLS_CERT')),
      key: readFileSync(env('BENCH_TLS_KEY')),
      ca: readFileSync(env('BENCH_TLS_CA')),
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      ciphers: CIPHERS,
    },
    peerUri: env('BENCH_TLS_PEER_URI'),
  };
}

/** Splits "host:port" (the last colon separates, so IPv6 literals without brackets work). */
export function splitHostPort(s: string): { host: string; port: number } {
  const sep = s.lastIndexOf(':');
  return { host: s.slice(0, sep), port: Number(s.slice(sep + 1)) };
}

/** Node gives accepted sockets and http2 streams 16 KiB marks; the fields are read on every push/write. */
export function raiseHighWaterMarks(d: Duplex): void {
  const r = (d as unknown as { _readableState?: { highWaterMark: number } })._readableState;
  const w = (d as unknown as { _writableState?: { highWaterMark: number } })._writableState;
  if (r && r.highWaterMark < HIGH_WATER_MARK) r.highWaterMark = HIGH_WATER_MARK;
  if (w && w.highWaterMark < HIGH_WATER_MARK) w.highWaterMark = HIGH_WATER_MARK;
}

/** A peer certificate names the expected SPIFFE URI. */
export const hasPeerUri = (c: tls.PeerCertificate | undefined, peerUri: string): boolean =>
  (c?.subjectaltname ?? '').split(', ').includes(`URI:${peerUri}`);

/** One direction: adaptive batching (first chunk at once, the rest of the burst corked). */
function copy(src: Duplex, dst: Duplex): void {
  let corked = false;
  let waiting = false;
  const uncork = () => {
    corked = false;
    dst.uncork();
  };
  const resume = () => {
    waiting = false;
    src.resume();
  };
  src.on('data', (chunk: Buffer) => {
    const ok = dst.write(chunk);
    if (!corked) {
      dst.cork();
      corked = true;
      setImmediate(uncork);
    }
    if (!ok && !waiting) {
      waiting = true;
      src.pause();
      dst.once('drain', resume);
    }
  });
  src.on('end', () => dst.end()); // FIN ↔ FIN / END_STREAM (end() also flushes a cork)
}

/** Joins two ends: data both ways, FIN carried over, an error or abrupt close destroys both. */
export function relay(a: Duplex, b: Duplex): void {
  copy(a, b);
  copy(b, a);
  const kill = () => {
    a.destroy();
    b.destroy();
  };
  a.on('error', kill);
  b.on('error', kill);
  a.on('close', () => (b.writableEnded ? undefined : b.destroy()));
  b.on('close', () => (a.writableEnded ? undefined : a.destroy()));
}

/** Serves `server` on an ephemeral port, reports { type: 'listening', port } over IPC, and exits on disconnect. */
export function servePipe(server: Server, name: string, listenHost: string): void {
  server.maxConnections = 19_000;
  server.on('error', (e) => {
    console.error(`${name}: ${e.message}`);
    process.exit(1);
  });
  server.listen(0, listenHost, () => {
    process.send?.({ type: 'listening', port: (server.address() as AddressInfo).port });
  });
  // Exit through process.exit so --cpu-prof (run.ts --profile-dir) writes its profile.
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
}
