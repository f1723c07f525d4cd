// Stream buffer sizes (perf-notes.md knob 2; hbone.md §2 "send buffer per stream"). Node gives
// http2 streams and accepted sockets 16 KiB highWaterMarks and no option to change them at
// creation; the marks are plain fields read on every push/write, so raising them afterwards
// takes effect at once.
import type { Duplex } from 'node:stream';
import { raiseStreamHighWaterMarks } from '../core/node-internals.js';

/** 256 KiB: the measured sweet spot for relay buffers (perf-notes.md knob 2). */
export const RELAY_HIGH_WATER_MARK = 256 * 1024;

/** Raises (never lowers) the readable and writable highWaterMarks of a duplex. */
export function raiseHighWaterMarks(d: Duplex, readableBytes: number, writableBytes: number = readableBytes): void {
  raiseStreamHighWaterMarks(d, readableBytes, writableBytes);
}
