// Logger: pino, one child per component (docs/design.md §2). Output is JSON (LOG_FORMAT=json) or
// pino's JSON as well for `plain` until a pretty printer is chosen; field names follow ztunnel's
// access-log keys. Created in app.ts and passed down; nothing logs at import time.
import { pino, type Logger, type LevelWithSilent, type DestinationStream } from 'pino';

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
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}
