// Text from the network or a config file put into a log line: bounded and escaped, so a peer or a
// bad file cannot write megabytes or terminal control sequences into the logs (issue 16).

/** Longest piece of untrusted text a log line carries (a DNS name is at most 253). */
export const LOG_TEXT_MAX_CHARS = 256;

const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\\]/g;

function escapeChar(c: string): string {
  if (c === '\\') return '\\\\';
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/**
 * `s` with control characters (and backslashes) escaped as `\uXXXX`, cut to `max` characters
 * with a note of how long it was. Short clean text is returned as is (no allocation).
 */
export function logSafe(s: string, max: number = LOG_TEXT_MAX_CHARS): string {
  UNSAFE.lastIndex = 0;
  if (s.length <= max && !UNSAFE.test(s)) return s;
  const cut = s.length > max ? s.slice(0, max) : s;
  const escaped = cut.replace(UNSAFE, escapeChar);
  return s.length > max ? `${escaped}…(${s.length} chars)` : escaped;
}
