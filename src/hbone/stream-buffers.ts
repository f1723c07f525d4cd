// Stream buffer sizes (perf-notes.md knob 2; hbone.md §2 "send buffer per stream"). Node gives
// http2 streams and accepted sockets 16 KiB highWaterMarks and no option to change them at
// creation; the marks are plain fields read on every push/write, so raising them afterwards
// takes effect at once.
import type { Duplex } from 'node:stream';

/** 256 KiB: the measured sweet spot for relay buffers (perf-notes.md knob 2). */
export const RELAY_HIGH_WATER_MARK = 256 * 1024;

interface BufferState {
  highWaterMark: number;
}

/** Raises (never lowers) the readable and writable highWaterMarks of a duplex. */
export function raiseHighWaterMarks(d: Duplex, readableBytes: number, writableBytes: number = readableBytes): void {
  const r = (d as unknown as { _readableState?: BufferState })._readableState;
  const w = (d as unknown as { _writableState?: BufferState })._writableState;
  if (r && typeof r.highWaterMark === 'number' && r.highWaterMark < readableBytes) r.highWaterMark = readableBytes;
  if (w && typeof w.highWaterMark === 'number' && w.highWaterMark < writableBytes) w.highWaterMark = writableBytes;
}
