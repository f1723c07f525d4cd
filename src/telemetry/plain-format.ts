// LOG_FORMAT=plain (the default, telemetry.md §4): ztunnel-style text lines
//   2026-03-02T10:15:07.412305Z  INFO access: connection complete src.addr=... direction="outbound"
// made from pino's JSON records. Strings are quoted, numbers bare, as in the spec's example.
import type { DestinationStream } from 'pino';

const OMIT = new Set(['level', 'time', 'msg', 'component']);

export function formatPlain(record: Record<string, unknown>): string {
  const level = String(record['level'] ?? 'info').toUpperCase().padStart(5);
  const target = record['component'] ? `${String(record['component'])}: ` : '';
  const fields = Object.entries(record)
    .filter(([k, v]) => !OMIT.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? (k.endsWith('.addr') || k.endsWith('_addr') ? v : JSON.stringify(v)) : typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
  return `${String(record['time'] ?? new Date().toISOString())} ${level} ${target}${String(record['msg'] ?? '')}${fields.length ? ' ' + fields.join(' ') : ''}\n`;
}

/** A pino destination that rewrites each JSON line as a plain line on `out`. */
export function plainDestination(out: { write(s: string): unknown } = process.stdout): DestinationStream {
  return {
    write(line: string) {
      try {
        out.write(formatPlain(JSON.parse(line) as Record<string, unknown>));
      } catch {
        out.write(line);
      }
    },
  };
}
