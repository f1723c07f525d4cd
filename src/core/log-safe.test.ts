import t from 'tap';
import { LOG_TEXT_MAX_CHARS, logSafe } from './log-safe.js';

t.test('untrusted text in log lines is escaped and bounded', async (t) => {
  const rows: [string, string, string][] = [
    ['clean short text is unchanged', 'cart.shop.svc.cluster.local', 'cart.shop.svc.cluster.local'],
    ['an escape sequence cannot reach the terminal', 'a\u001b[31mb', 'a\\u001b[31mb'],
    ['NUL, CR and LF are visible', 'a\0b\r\nc', 'a\\u0000b\\u000d\\u000ac'],
    ['a backslash stays unambiguous', 'a\\u0000', 'a\\\\u0000'],
  ];
  for (const [name, input, want] of rows) t.equal(logSafe(input), want, name);
  const long = 'x'.repeat(8000);
  const out = logSafe(long);
  t.equal(out, `${'x'.repeat(LOG_TEXT_MAX_CHARS)}…(8000 chars)`, 'an 8,000-character name is cut, with its length');
});
