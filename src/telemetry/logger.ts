// Logger: pino, one child per component (docs/design.md §2). pino's records are rewritten into Istio
// ztunnel's layout for LOG_FORMAT=plain or json by plain-format.ts (cli.ts wires the destination);
// field names follow ztunnel's access-log keys. Created in app.ts and passed down; nothing logs at
// import time.
import { pino, type Logger, type LevelWithSilent, type DestinationStream } from 'pino';
import { istioTimestamp } from './plain-format.js';

export type { Logger } from 'pino';

/** RUST_LOG-style level names → pino levels. */
export function toPinoLevel(level: string): LevelWithSilent | null {
  switch (level.trim().toLowerCase()) {
    case 'trace': return 'trace';
    case 'debug': return 'debug';
    case 'info': return 'info';
    case 'warn': case 'warning': return 'warn';
    case 'error': return 'error';
    case 'off': return 'silent';
    default: return null;
  }
}

export function createLogger(opts: { level: string; destination?: DestinationStream }): Logger {
  const level = toPinoLevel(opts.level) ?? 'info';
  const options = {
    level,
    base: undefined,
    // Istio's timestamps: UTC with microseconds (telemetry.md §4).
    timestamp: istioTimestamp,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}
