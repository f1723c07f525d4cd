// Wire capture for the netns suite: tcpdump inside a namespace writes a pcap file; a tiny reader
// returns the IPv4/TCP segments so tests can assert what actually crossed a link (capture.md §1:
// mesh traffic is TLS on 15008; plaintext elsewhere).
import { spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';

export interface TcpSegment {
  readonly src: string;
  readonly dst: string;
  readonly srcPort: number;
  readonly dstPort: number;
  readonly syn: boolean;
  readonly payload: Buffer;
}

export interface Capture {
  /** Stops tcpdump (flushing the file) and returns every IPv4 TCP segment captured. */
  stop(): Promise<{ segments: TcpSegment[]; raw: Buffer }>;
}

const START_TIMEOUT_MS = 5000;
const STOP_TIMEOUT_MS = 5000;

/** Starts `tcpdump -i <iface> <filter>` inside netns `ns`; resolves once it is listening. */
export async function startCapture(ns: string, iface: string, file: string, filter: string): Promise<Capture> {
  // -U + --immediate-mode: each packet reaches the file at once (without immediate mode, packets
  // still in the kernel ring when SIGINT arrives are lost); -Z root: keep privileges so the file lands in our temp dir.
  const child = spawn('ip', ['netns', 'exec', ns, 'tcpdump', '-i', iface, '-n', '-U', '--immediate-mode', '-s', '0', '-Z', 'root', '-w', file, filter], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tcpdump did not start within ${START_TIMEOUT_MS} ms: ${stderr}`));
    }, START_TIMEOUT_MS);
    child.stderr.on('data', (d: string) => {
      stderr += d;
      if (stderr.includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`tcpdump exited with ${code}: ${stderr}`));
    });
  });
  return {
    async stop() {
      // SIGINT makes tcpdump drop packets it has not written yet: wait until the file stopped
      // growing (-U writes each packet as it is processed), bounded.
      await settled(file);
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
      const raw = readFileSync(file);
      return { segments: parsePcap(raw), raw };
    },
  };
}

const SETTLE_POLL_MS = 50;
const SETTLE_STABLE_POLLS = 4;
const SETTLE_MAX_MS = 3000;

async function settled(file: string): Promise<void> {
  const size = () => {
    try {
      return statSync(file).size;
    } catch {
      return -1;
    }
  };
  let last = size();
  let stable = 0;
  const deadline = Date.now() + SETTLE_MAX_MS;
  while (stable < SETTLE_STABLE_POLLS && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, SETTLE_POLL_MS));
    const now = size();
    stable = now === last ? stable + 1 : 0;
    last = now;
  }
}

/** Classic pcap (Ethernet link type) → IPv4 TCP segments; other frames are skipped. */
export function parsePcap(buf: Buffer): TcpSegment[] {
  if (buf.length < 24) return [];
  const magic = buf.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const linkType = u32(20);
  const out: TcpSegment[] = [];
  let off = 24;
  while (off + 16 <= buf.length) {
    const incl = u32(off + 8);
    const frame = buf.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    let ip: Buffer;
    if (linkType === 1) {
      if (frame.length < 14 || frame.readUInt16BE(12) !== 0x0800) continue;
      ip = frame.subarray(14);
    } else if (linkType === 113) {
      // Linux cooked capture (SLL), e.g. `-i any`.
      if (frame.length < 16 || frame.readUInt16BE(14) !== 0x0800) continue;
      ip = frame.subarray(16);
    } else {
      continue;
    }
    if (ip.length < 20 || ip[0]! >> 4 !== 4 || ip[9] !== 6) continue;
    const ihl = (ip[0]! & 0x0f) * 4;
    const total = ip.readUInt16BE(2);
    const tcp = ip.subarray(ihl, Math.min(total, ip.length));
    if (tcp.length < 20) continue;
    const dataOff = (tcp[12]! >> 4) * 4;
    out.push({
      src: `${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}`,
      dst: `${ip[16]}.${ip[17]}.${ip[18]}.${ip[19]}`,
      srcPort: tcp.readUInt16BE(0),
      dstPort: tcp.readUInt16BE(2),
      syn: (tcp[13]! & 0x02) !== 0,
      payload: Buffer.from(tcp.subarray(dataOff)),
    });
  }
  return out;
}

/** A TLS record header: content type 20..23, version 3.x (hbone.md §1: TLS 1.3 records say 3.3). */
export function looksLikeTlsRecord(b: Buffer): boolean {
  return b.length >= 5 && b[0]! >= 20 && b[0]! <= 23 && b[1] === 3 && b[2]! <= 4;
}
