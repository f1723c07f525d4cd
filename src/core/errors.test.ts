// docs/errors.md and the catalogue stay equal (docs/design.md §3): every code is documented with the
// HBONE status it answers with and its response flag, and the doc names no code that does not exist.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { ERRORS, ZtunnelError, asZtunnelError, osErrorText, type ErrorCode } from './errors.js';

// Compiled to dist/src/core/: the repository root is three levels up.
const DOC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'docs', 'errors.md');

interface DocRow {
  readonly status: number | null;
  readonly flag: string;
  readonly line: number;
}

/** Rows of the catalogue table: | `CODE` | 400 or — | FLAG | meaning |. */
function parseDoc(text: string): Map<string, DocRow> {
  const rows = new Map<string, DocRow>();
  text.split('\n').forEach((raw, i) => {
    const m = /^\|\s*`([A-Z0-9_]+)`\s*\|\s*([^|]*?)\s*\|\s*([^|]*?)\s*\|/.exec(raw);
    if (!m) return;
    const status = m[2] === '—' ? null : Number(m[2]);
    if (rows.has(m[1]!)) throw new Error(`docs/errors.md:${i + 1}: ${m[1]} documented twice`);
    rows.set(m[1]!, { status, flag: m[3]!, line: i + 1 });
  });
  return rows;
}

const doc = parseDoc(readFileSync(DOC, 'utf8'));
const codes = Object.keys(ERRORS) as ErrorCode[];

t.test('the doc table was found and parsed', async (t) => {
  t.ok(doc.size >= 10, `${doc.size} documented codes`);
});

t.test('every code in the catalogue is documented with its status and flag', async (t) => {
  for (const code of codes) {
    const row = doc.get(code);
    t.ok(row, `${code} is in docs/errors.md`);
    if (!row) continue;
    t.equal(row.status, ERRORS[code].status, `${code}: status (docs/errors.md:${row.line})`);
    t.equal(row.flag, ERRORS[code].flag, `${code}: flag (docs/errors.md:${row.line})`);
  }
});

t.test('the doc names no code the catalogue does not have', async (t) => {
  t.same([...doc.keys()].filter((c) => !(c in ERRORS)), []);
});

t.test('an error takes its status and flag from its code; other errors are wrapped with a cause', async (t) => {
  const e = new ZtunnelError('POLICY_DENIED');
  t.equal(e.status, 401);
  t.equal(e.flag, 'DENY');
  t.equal(e.message, ERRORS.POLICY_DENIED.summary, 'the summary is the default message');
  const sys = Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:80'), { code: 'ECONNREFUSED' });
  const wrapped = asZtunnelError(sys, 'UPSTREAM_CONNECT');
  t.equal(wrapped.code, 'UPSTREAM_CONNECT');
  t.equal(wrapped.message, 'connection failed: Connection refused (os error 111)', "the text of Istio's ztunnel (Rust io::Error)");
  t.equal((wrapped.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED', 'the errno survives');
  const odd = Object.assign(new Error('something odd'), { code: 'ESOMETHING' });
  t.equal(asZtunnelError(odd, 'UPSTREAM_CONNECT').message, 'something odd', 'an errno without a known text keeps its message');
  t.equal(asZtunnelError(e, 'UPSTREAM_CONNECT'), e, 'a coded error is kept as is');
});

const osTexts: [string, string][] = [
  ['ECONNREFUSED', 'Connection refused (os error 111)'],
  ['ECONNRESET', 'Connection reset by peer (os error 104)'],
  ['ETIMEDOUT', 'Connection timed out (os error 110)'],
  ['EHOSTUNREACH', 'No route to host (os error 113)'],
  ['ENETUNREACH', 'Network is unreachable (os error 101)'],
  ['EADDRINUSE', 'Address already in use (os error 98)'],
  ['EPIPE', 'Broken pipe (os error 32)'],
];
for (const [code, text] of osTexts) {
  t.test(`a Node ${code} reads as Rust's io::Error: ${text}`, async (t) => {
    t.equal(osErrorText(Object.assign(new Error('x'), { code })), text);
  });
}
