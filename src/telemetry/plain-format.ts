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

export function istioTime(nowMs: number = performance.timeOrigin + performance.now()): string {
  const totalMicros = Math.round(nowMs * 1000); // < 2^53 until the year 2255
  const wholeMs = Math.floor(totalMicros / 1000);
  const micros = totalMicros - wholeMs * 1000;
  return `${new Date(wholeMs).toISOString().slice(0, -1)}${String(micros).padStart(3, '0')}Z`;
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
  const fields = Object.entries(record)
    .filter(([k, v]) => !OMIT.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${value(k, v)}`);
  const time = typeof record['time'] === 'string' ? record['time'] : istioTime();
  return `${time}\t${level(record)}\t${String(record['component'] ?? 'ztunnel')}\t${String(record['msg'] ?? '')}\t${fields.join(' ')}\n`;
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

/** A pino destination that rewrites each JSON record as an Istio-format line on `out`. */
export function istioDestination(format: 'plain' | 'json', out: { write(s: string): unknown } = process.stdout): DestinationStream {
  const render = format === 'plain' ? formatPlain : formatJson;
  return {
    write(line: string) {
      try {
        out.write(render(JSON.parse(line) as Record<string, unknown>));
      } catch {
        out.write(line);
      }
    },
  };
}

/** LOG_FORMAT=plain. */
export function plainDestination(out: { write(s: string): unknown } = process.stdout): DestinationStream {
  return istioDestination('plain', out);
}
