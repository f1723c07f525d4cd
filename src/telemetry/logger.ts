// Logger: pino, one child per component (docs/design.md §2). pino's records are rewritten into Istio
// ztunnel's layout for LOG_FORMAT=plain or json by plain-format.ts (cli.ts wires the destination);
// field names follow ztunnel's access-log keys. Created in app.ts and passed down; nothing logs at
// import time.
import { pino, type Logger, type LevelWithSilent, type DestinationStream } from 'pino';
import { istioTime, istioTimestamp, type IstioDestination } from './plain-format.js';

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

const componentOf = new WeakMap<Logger, string | null>();

/** The `component` of a LogControl child (its only binding), or null for any other logger. */
function componentName(logger: Logger): string | null {
  let name = componentOf.get(logger);
  if (name === undefined) {
    const chindings = (logger as unknown as Record<symbol, unknown>)[pino.symbols.chindingsSym];
    const m = typeof chindings === 'string' ? /^,"component":("(?:[^"\\]|\\.)*")$/.exec(chindings) : null;
    name = m ? (JSON.parse(m[1]!) as string) : null;
    componentOf.set(logger, name);
  }
  return name;
}

/**
 * `logger[level](fields, msg)` for the per-connection lines (access log): when the logger writes
 * to an Istio-format destination, the record goes to it as an object, without pino's JSON and the
 * parse back; the line is the same. Takes `fields` over (the record is built in it).
 */
export function logFields(logger: Logger, level: 'error' | 'warn' | 'info' | 'debug', fields: Record<string, unknown>, msg: string): void {
  if (!logger.isLevelEnabled(level)) return;
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as Partial<IstioDestination> | undefined;
  const component = stream?.writeRecord ? componentName(logger) : null;
  if (component === null) {
    logger[level](fields, msg);
    return;
  }
  // Key order is free: both formats place level, time, scope and message themselves.
  fields['level'] = level;
  fields['time'] = istioTime();
  fields['component'] = component;
  fields['msg'] = msg;
  stream!.writeRecord!(fields);
}
