// Duration strings of spec/config.md §5 (`500ms`, `5s`, `5m`, `24h`, `1h30m`) → milliseconds.
// Rust ztunnel parses these with the `duration_str` crate, which also takes a bare number as
// seconds, a space between terms (`1h 30m`), decimals (`1.5s`) and long unit names; we accept the
// same so a value that works for Rust ztunnel works here too.
import { err, ok, type Result } from '../core/errors.js';

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6, nsec: 1e-6, nanosecond: 1e-6, nanoseconds: 1e-6,
  us: 1e-3, 'µs': 1e-3, usec: 1e-3, microsecond: 1e-3, microseconds: 1e-3,
  ms: 1, msec: 1, millisecond: 1, milliseconds: 1,
  s: 1000, sec: 1000, secs: 1000, second: 1000, seconds: 1000,
  m: 60_000, min: 60_000, mins: 60_000, minute: 60_000, minutes: 60_000,
  h: 3_600_000, hr: 3_600_000, hrs: 3_600_000, hour: 3_600_000, hours: 3_600_000,
  d: 86_400_000, day: 86_400_000, days: 86_400_000,
};

const TERM = /(\d+(?:\.\d+)?)\s*([a-zµ]+)\s*/gy;

/**
 * Parses a duration into whole milliseconds (sub-millisecond results round up, so a non-zero
 * duration never becomes 0). A bare non-negative number means seconds. Negative, empty or
 * unit-less compound input is an error value naming what was wrong.
 */
export function parseDuration(text: string): Result<number, string> {
  const s = text.trim().toLowerCase();
  if (s === '') return err('is empty, expected a duration such as 500ms, 5s, 5m, 24h or 1h30m');
  if (/^\d+(\.\d+)?$/.test(s)) return finish(Number(s) * 1000);
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    TERM.lastIndex = pos;
    const m = TERM.exec(s);
    if (!m) return err('is not a duration (expected e.g. 500ms, 5s, 5m, 24h, 1h30m)');
    const unit = UNIT_MS[m[2]!];
    if (unit === undefined) return err(`has unknown unit "${m[2]}" (use ms, s, m, h or d)`);
    total += Number(m[1]) * unit;
    pos = TERM.lastIndex;
  }
  return finish(total);
}

function finish(ms: number): Result<number, string> {
  if (!Number.isFinite(ms) || ms > Number.MAX_SAFE_INTEGER) return err('is too large');
  return ok(Math.ceil(ms));
}
