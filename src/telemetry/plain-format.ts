// Log lines as Istio's ztunnel writes them (telemetry.md §4), in both LOG_FORMAT values, made from
// pino's JSON records (istio/ztunnel src/telemetry.rs gives the layout):
//   plain  2026-03-02T10:15:07.412305Z<TAB>info<TAB>access<TAB>connection complete<TAB>src.addr=10.244.1.12:51544 src.workload="frontend-7d9c" ...
//   json   {"level":"info","time":"2026-03-02T10:15:07.412305Z","scope":"access","message":"connection complete","src.addr":"10.244.1.12:51544",...}
// Time in UTC with microseconds; level lower-case; the scope is the component (`access` for the
// access log, as Istio's target). In plain lines the message is followed by a tab (always, as in
// Istio's), then the fields space-separated: strings quoted as Rust's Debug quotes them, numbers
// and booleans bare, addresses (`*.addr`, `*_addr`, which Istio logs with Display) bare.
import type { DestinationStream } from 'pino';

const OMIT = new Set(['level', 'time', 'msg', 'component']);

/** pino `timestamp` option: `,"time":"<RFC 3339 UTC with microseconds>"`. */
export function istioTimestamp(): string {
  return `,"time":"${istioTime()}"`;
}

// `YYYY-MM-DDTHH:MM:SS.` of the last second formatted: Date#toISOString once per second rather
// than once per line (it was ~1.5% of a short connection's CPU, issue 12).
let cachedSecond = NaN;
let cachedPrefix = '';

export function istioTime(nowMs: number = performance.timeOrigin + performance.now()): string {
  const totalMicros = Math.round(nowMs * 1000); // < 2^53 until the year 2255
  const second = Math.floor(totalMicros / 1_000_000);
  if (second !== cachedSecond) {
    cachedPrefix = new Date(second * 1000).toISOString().slice(0, -4);
    cachedSecond = second;
  }
  return `${cachedPrefix}${String(totalMicros - second * 1_000_000).padStart(6, '0')}Z`;
}

/** Istio has no `fatal` (tracing's levels end at error). */
function level(record: Record<string, unknown>): string {
  const l = String(record['level'] ?? 'info').toLowerCase();
  return l === 'fatal' ? 'error' : l;
}

const bare = (k: string) => k.endsWith('.addr') || k.endsWith('_addr');

function value(k: string, v: unknown): string {
  if (typeof v === 'string') return bare(k) ? v : JSON.stringify(v);
  if (typeof v === 'object' && v !== null) return JSON.stringify(v);
  return String(v);
}

export function formatPlain(record: Record<string, unknown>): string {
  // One string built in a loop: no entry, filter and map arrays per line (one per connection).
  let fields = '';
  for (const k of Object.keys(record)) {
    const v = record[k];
    if (v === undefined || OMIT.has(k)) continue;
    fields += fields === '' ? `${k}=${value(k, v)}` : ` ${k}=${value(k, v)}`;
  }
  const time = typeof record['time'] === 'string' ? record['time'] : istioTime();
  return `${time}\t${level(record)}\t${String(record['component'] ?? 'ztunnel')}\t${String(record['msg'] ?? '')}\t${fields}\n`;
}

/** The JSON line: level, time, scope, message, then the fields in the order they were logged. */
export function formatJson(record: Record<string, unknown>): string {
  const out: Record<string, unknown> = {
    level: level(record),
    time: typeof record['time'] === 'string' ? record['time'] : istioTime(),
    scope: record['component'] ?? 'ztunnel',
    message: record['msg'] ?? '',
  };
  for (const [k, v] of Object.entries(record)) if (!OMIT.has(k) && v !== undefined) out[k] = v;
  return `${JSON.stringify(out)}\n`;
}

/**
 * A pino destination that rewrites each JSON record as an Istio-format line on `out`. Its
 * `writeRecord` takes a record that never was JSON (logger.ts `logFields`): the same line without
 * pino's serialisation and the parse back (~5% of a short connection's CPU, issue 12).
 */
export interface IstioDestination extends DestinationStream {
  writeRecord(record: Record<string, unknown>): void;
}

export function istioDestination(format: 'plain' | 'json', out: { write(s: string): unknown } = process.stdout): IstioDestination {
  const render = format === 'plain' ? formatPlain : formatJson;
  return {
    write(line: string) {
      try {
        out.write(render(JSON.parse(line) as Record<string, unknown>));
      } catch {
        out.write(line);
      }
    },
    writeRecord(record: Record<string, unknown>) {
      out.write(render(record));
    },
  };
}

/** LOG_FORMAT=plain. */
export function plainDestination(out: { write(s: string): unknown } = process.stdout): DestinationStream {
  return istioDestination('plain', out);
}

/** Bytes a pipe write(2) keeps whole (PIPE_BUF): a batch of lines is never larger, unless one line is. */
export const LINE_BATCH_BYTES = 4096;
/** The longest a line waits for others to share its write. */
export const LINE_BATCH_MS = 10;

export interface LineBatcher {
  write(s: string): void;
  /** Writes what is pending now (before the thread ends or replies that it is done). */
  flush(): void;
}

/**
 * Collects log lines and writes them to `out` together, once LINE_BATCH_BYTES are pending or
 * LINE_BATCH_MS after the first: one write(2), and one wake-up of the reader of the pipe, for
 * several access lines rather than each (together ~8% of a short connection's CPU, issue 12), as
 * Istio's ztunnel hands its lines to a writer thread. Lines keep their order; a batch holds whole
 * lines only, so lines of other threads on the same fd never cut into one (a pipe write up to
 * PIPE_BUF is atomic).
 */
export function batchLines(out: { write(s: string): unknown }, schedule: (fn: () => void) => unknown = laterUnref): LineBatcher {
  let pending = '';
  let pendingBytes = 0;
  let timerSet = false;
  const flush = () => {
    if (pendingBytes === 0) return;
    const s = pending;
    pending = '';
    pendingBytes = 0;
    out.write(s);
  };
  const onTimer = () => {
    timerSet = false;
    flush();
  };
  return {
    write(s: string) {
      const bytes = Buffer.byteLength(s);
      if (pendingBytes + bytes > LINE_BATCH_BYTES) flush();
      pending += s;
      pendingBytes += bytes;
      if (!timerSet) {
        timerSet = true;
        schedule(onTimer);
      }
    },
    flush,
  };
}

function laterUnref(fn: () => void): void {
  setTimeout(fn, LINE_BATCH_MS).unref();
}
