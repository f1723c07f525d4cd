import t from 'tap';
import { parseDuration } from './duration.js';

const good: [string, string, number][] = [
  ['milliseconds', '500ms', 500],
  ['seconds', '5s', 5000],
  ['minutes', '5m', 300_000],
  ['hours', '24h', 86_400_000],
  ['hours and minutes together', '1h30m', 5_400_000],
  ['terms separated by a space', '1h 30m', 5_400_000],
  ['a bare number as seconds (as Rust ztunnel\'s duration_str)', '30', 30_000],
  ['a decimal number of seconds', '1.5s', 1500],
  ['long unit names', '2 minutes', 120_000],
  ['upper-case units', '10S', 10_000],
  ['days', '1d', 86_400_000],
  ['zero', '0s', 0],
  ['sub-millisecond durations rounded up, never to zero', '10us', 1],
];
for (const [name, text, ms] of good) {
  t.test(`parses ${name}: ${text}`, async (t) => {
    const r = parseDuration(text);
    t.ok(r.ok, `"${text}" parses`);
    if (r.ok) t.equal(r.value, ms);
  });
}

const bad: [string, string][] = [
  ['an empty string', ''],
  ['a word', 'soon'],
  ['an unknown unit', '5 fortnights'],
  ['a negative value', '-5s'],
  ['a compound with a unit-less tail', '1h30'],
  ['a unit without a number', 'ms'],
];
for (const [name, text] of bad) {
  t.test(`rejects ${name} with a message`, async (t) => {
    const r = parseDuration(text);
    t.notOk(r.ok);
    if (!r.ok) t.match(r.error, /\S/);
  });
}
