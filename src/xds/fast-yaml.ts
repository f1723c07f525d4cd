// The fast path of local-file.ts (issue 7: a 10,000-workload file in well under a second). A
// single-pass reader of the YAML that config files are made of (block maps and lists, one-line
// flow `[...]` / `{...}`, plain and quoted scalars, comments, CRLF) builds light nodes that the
// `yaml` package's isMap / isSeq / isScalar recognise, without source positions, so local-file.ts
// runs its one validator over them. Plain scalars resolve exactly as in the `yaml` package's
// YAML 1.2 core schema, keeping their source text as `yaml` does (`canonicalRevision: 007` is the
// string "007"). Anything outside that subset (anchors, tags, escapes, block or multi-line
// scalars, floats, several documents, duplicate keys, ...) answers null and the caller parses
// with the `yaml` package; so does the caller whenever validation reports a problem, so every
// message (with its line) still comes from the full parser. js-yaml, used here before, is not:
// it accepts some text `yaml` rejects (e.g. under-indented flow continuation lines) and loses
// the source text of numbers. Top-level lists are read item by item while the validator walks
// them (readFastYaml), so a large file never exists as one tree. Measured on the 3.8 MB bench
// file: this reader ~0.1 s, js-yaml ~0.4 s, `yaml` several seconds.
import type { Alias, Scalar, YAMLMap, YAMLSeq } from 'yaml';

const NODE_TYPE = Symbol.for('yaml.node.type');
const MAP = Symbol.for('yaml.map');
const SEQ = Symbol.for('yaml.seq');
const SCALAR = Symbol.for('yaml.scalar');
const PAIR = Symbol.for('yaml.pair');

class FastScalar {
  declare readonly [NODE_TYPE]: symbol;
  constructor(readonly value: string | number | boolean | null, readonly source: string) {}
}
class FastPair {
  declare readonly [NODE_TYPE]: symbol;
  constructor(readonly key: FastScalar, readonly value: FastNode) {}
}
class FastMap {
  declare readonly [NODE_TYPE]: symbol;
  readonly items: FastPair[] = [];
}
class FastSeq {
  declare readonly [NODE_TYPE]: symbol;
  readonly items: FastNode[] = [];
}
Object.defineProperty(FastScalar.prototype, NODE_TYPE, { value: SCALAR });
Object.defineProperty(FastPair.prototype, NODE_TYPE, { value: PAIR });
Object.defineProperty(FastMap.prototype, NODE_TYPE, { value: MAP });
Object.defineProperty(FastSeq.prototype, NODE_TYPE, { value: SEQ });

// The `yaml` package's node guards, by the same registered symbols (its identity.js), so that
// local-file.ts can tell nodes of either parser apart without loading `yaml` (issue 7: idle RSS;
// the package is loaded only when the full parser runs, core/yaml-lib.ts).
const ALIAS = Symbol.for('yaml.alias');
const nodeType = (n: unknown): unknown => (typeof n === 'object' && n !== null ? (n as { [NODE_TYPE]?: unknown })[NODE_TYPE] : undefined);
export const isMap = <K = unknown, V = unknown>(n: unknown): n is YAMLMap<K, V> => nodeType(n) === MAP;
export const isSeq = <T = unknown>(n: unknown): n is YAMLSeq<T> => nodeType(n) === SEQ;
export const isScalar = <T = unknown>(n: unknown): n is Scalar<T> => nodeType(n) === SCALAR;
export const isAlias = (n: unknown): n is Alias => nodeType(n) === ALIAS;

/**
 * A block list that is the value of a top-level key (`workloads:`), read item by item while the
 * validator walks it (readFastYaml): each item's nodes are garbage as soon as it is validated,
 * instead of the whole tree of a large file living until the end, which the garbage collector
 * would have to copy (most of the time spent on a large file).
 */
class LazySeq {
  declare readonly [NODE_TYPE]: symbol;
  constructor(
    private readonly reader: PlainReader,
    /** Column and index of the first `-`; where the next significant line after the list starts (-1: end of text). */
    readonly col: number,
    readonly first: number,
    readonly end: number,
  ) {}
  get items(): Iterable<FastNode> {
    return this.reader.itemsOf(this);
  }
}
Object.defineProperty(LazySeq.prototype, NODE_TYPE, { value: SEQ });

export type FastNode = FastScalar | FastMap | FastSeq | LazySeq;

const NULL_NODE = new FastScalar(null, '');

// ---------------------------------------------------------------------------------------------
// The reader

/** Thrown inside the reader when the text leaves the subset; caught by the exported functions. */
const OUTSIDE = new Error('outside the plain YAML subset');

const NL = 10;
const SPACE = 32;
const HASH = 35;
const DQUOTE = 34;
const SQUOTE = 39;
const COMMA = 44;
const DASH = 45;
const DOT = 46;
const COLON = 58;
const LBRACKET = 91;
const BACKSLASH = 92;
const RBRACKET = 93;
const LBRACE = 123;
const RBRACE = 125;

/**
 * Hint slots (PlainReader.plain): keys and values of block maps by column (< 16) and position in
 * the map (< 32), then keys and values of flow collections by position (< 32).
 */
const HINT_SLOTS = 16 * 32 * 2 + 32 * 2;
const FLOW_HINTS = 16 * 32 * 2;
function hintSlot(col: number, index: number): number {
  return col < 16 && index < 32 ? (col * 32 + index) * 2 : -1;
}
function flowHintSlot(index: number): number {
  return index < 32 ? FLOW_HINTS + index * 2 : -1;
}
/** Longest implicit key the reader takes (YAML limits implicit keys to 1024 characters). */
const MAX_KEY_LENGTH = 1000;

// The `yaml` package's YAML 1.2 core schema tests (yaml/dist/schema/core/*.js, common/null.js).
const CORE_NULL = /^(?:~|[Nn]ull|NULL)?$/;
const CORE_BOOL = /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/;
const CORE_INT = /^[-+]?[0-9]+$/;
const CORE_INT_OCT_HEX = /^0o[0-7]+$|^0x[0-9a-fA-F]+$/;
const CORE_FLOAT_NAN = /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/;
const CORE_FLOAT_EXP = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/;
const CORE_FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/;

/**
 * Characters that leave the subset: tabs, CR, control characters, NBSP, the line and paragraph
 * separators, BOM and non-characters, and unpaired surrogates. Other non-ASCII text (comments,
 * names) is plain content for YAML and stays.
 */
const OUTSIDE_CHARS =
  /[^\n\x20-\x7e\xa1-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\ud800-\udfff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** A plain scalar resolved as the core schema does. Floats, octal and hex ints leave the subset. */
function plainScalar(s: string): FastScalar {
  const c = s.charCodeAt(0);
  if ((c >= 48 && c <= 57) || c === 43 || c === DASH || c === DOT) {
    if (CORE_INT.test(s)) {
      const v = parseInt(s, 10); // as `yaml` resolves it (so `-0` stays -0)
      if (!Number.isSafeInteger(v)) throw OUTSIDE;
      return new FastScalar(v, s);
    }
    if (CORE_INT_OCT_HEX.test(s) || CORE_FLOAT.test(s) || CORE_FLOAT_EXP.test(s) || CORE_FLOAT_NAN.test(s)) throw OUTSIDE;
    return new FastScalar(s, s);
  }
  // Only texts starting with ~ n N (null) or t T f F (booleans) can be anything but a string.
  if (s.length <= 5 && (c === 126 || c === 110 || c === 78 || c === 116 || c === 84 || c === 102 || c === 70)) {
    if (CORE_NULL.test(s)) return new FastScalar(null, s);
    if (CORE_BOOL.test(s)) return new FastScalar(c === 116 || c === 84, s); // t / T
  }
  return new FastScalar(s, s);
}

/** Characters that may not start a plain scalar here (YAML c-indicator), besides `-` + space. */
function isIndicator(c: number): boolean {
  switch (c) {
    case 33: // !
    case 34: // "
    case 35: // #
    case 37: // %
    case 38: // &
    case 39: // '
    case 42: // *
    case 44: // ,
    case 58: // :
    case 62: // >
    case 63: // ?
    case 64: // @
    case 91: // [
    case 93: // ]
    case 96: // `
    case 123: // {
    case 124: // |
    case 125: // }
      return true;
    default:
      return false;
  }
}

/** True when `c` (a char code, NaN past the end) ends a token: space, newline or end of text. */
function isBreak(c: number): boolean {
  return c === SPACE || c === NL || Number.isNaN(c);
}

/**
 * True when `key` repeats a key of `items`. Compared by text, which is stricter than `yaml` (80
 * and "80" count as the same key here): any such file simply leaves the subset. `seen` is a 32-bit
 * summary of the keys so far (see keyBit), so most keys are known to be new without comparing.
 */
function sameKey(items: readonly FastPair[], key: FastScalar, seen: number, bit: number): boolean {
  if ((seen & bit) === 0) return false;
  const v = key.value;
  for (let i = 0; i < items.length; i++) {
    const w = items[i]!.key.value;
    if (w === v || (typeof w !== typeof v && String(w) === String(v))) return true;
  }
  return false;
}

/** One of 32 bits for a key's text (its length and last character): equal texts, equal bits. */
function keyBit(key: FastScalar): number {
  const v = key.value;
  const t = typeof v === 'string' ? v : String(v);
  return 1 << ((t.length * 7 + t.charCodeAt(t.length - 1)) & 31);
}

const listEnds = new Map<number, RegExp>();
/**
 * A pattern finding, from an item of a list at column `col`, the newline before the first line
 * that ends the list: not indented deeper than `col`, not blank or a comment, and not `-` + space
 * at `col` (the next item). One native scan instead of looking at each line (PlainReader.lazySeq).
 */
function listEnd(col: number): RegExp {
  let re = listEnds.get(col);
  if (re === undefined) {
    re = new RegExp(`\\n(?! {${col + 1}}| *(?:\\n|#|$)| {${col}}-(?: |\\n|$))`, 'g');
    listEnds.set(col, re);
  }
  return re;
}

class PlainReader {
  /** Indentation of the current significant line; -1 at the end of the text. */
  private indent = -1;
  /** Index of the first non-space character of the current significant line. */
  private content = 0;

  /** Position inside a one-line flow collection. */
  private at = 0;
  /**
   * The last plain scalar read at each place (see hintSlot): the items of a long list repeat
   * their keys and many of their values in the same order, so the node is reused when the text
   * is the same, instead of a new string and node each time. The nodes are read-only; with fewer
   * of them the garbage collector, most of the time spent on a large file, has less to copy.
   */
  private readonly hints: Array<FastScalar | undefined> = new Array<FastScalar | undefined>(HINT_SLOTS);

  /** Lists read lazily (top-level values, when `lazy`): how many were made and how many read to the end. */
  private lazyLists = 0;
  private lazyDone = 0;
  private lazyActive = false;

  constructor(
    private readonly s: string,
    private readonly lazy: boolean,
  ) {}

  /** True once every lazy list has been read to its end (so the whole text was read). */
  complete(): boolean {
    return this.lazyDone === this.lazyLists && !this.lazyActive;
  }

  /** The plain scalar from `p` to `end`, reusing the one last read at `slot` (-1: none) if the text is the same. */
  private plain(slot: number, p: number, end: number): FastScalar {
    if (slot < 0) return plainScalar(this.s.slice(p, end));
    const hint = this.hints[slot];
    if (hint !== undefined && this.textAt(hint.source, p, end)) return hint;
    const n = plainScalar(this.s.slice(p, end));
    this.hints[slot] = n;
    return n;
  }

  /**
   * True when the text from `p` to `end` is `t`. A loop (startsWith(t, p) is several times slower
   * here), from the end: texts that differ, like names with a counter, mostly differ there.
   */
  private textAt(t: string, p: number, end: number): boolean {
    if (t.length !== end - p) return false;
    const s = this.s;
    for (let i = t.length - 1; i >= 0; i--) if (s.charCodeAt(p + i) !== t.charCodeAt(i)) return false;
    return true;
  }

  /** keyEnd(p), trying first the key last read at `slot`: the same text, then `:` and a space or the line end. */
  private keyEndAt(p: number, slot: number): number {
    const hint = slot >= 0 ? this.hints[slot] : undefined;
    if (hint !== undefined) {
      // A key's text has no `: ` and no ` #` in it, so keyEnd would stop at this same `:`.
      const e = p + hint.source.length;
      const s = this.s;
      if (s.charCodeAt(e) === COLON && isBreak(s.charCodeAt(e + 1)) && this.textAt(hint.source, p, e)) return e;
    }
    return this.keyEnd(p);
  }

  read(): FastNode | null {
    this.nextLine(0);
    if (this.indent < 0) return null;
    const s = this.s;
    // A leading `---` alone on its line starts the one document.
    if (this.indent === 0 && s.startsWith('---', this.content) && isBreak(s.charCodeAt(this.content + 3))) {
      this.endOfValue(this.content + 3);
      if (this.indent < 0) return null;
    }
    const p = this.content;
    const colon = this.keyEnd(p);
    const root = colon >= 0 ? this.blockMap(this.indent, p, colon, this.lazy) : this.blockNode(this.indent, p);
    if (this.indent >= 0) throw OUTSIDE; // text after the root node
    return root;
  }

  /**
   * A list whose items are read when walked: the text is only skipped over here, up to the
   * first line that ends the list (less indented, or at its column without `-`). Reading the
   * items must end at that same line, or the text leaves the subset.
   */
  private lazySeq(col: number, first: number): LazySeq {
    const s = this.s;
    // The first line after the first item that is not deeper than the list, a blank or comment
    // line, or the next item's `-` at the list's column.
    const ends = listEnd(col);
    ends.lastIndex = first;
    const m = ends.exec(s);
    if (m === null) this.indent = -1;
    else {
      this.nextLine(m.index + 1);
      // Guards the pattern: the line it found must end the list.
      if (this.indent >= 0 && !(this.indent < col || (this.indent === col && !(s.charCodeAt(this.content) === DASH && isBreak(s.charCodeAt(this.content + 1)))))) {
        throw OUTSIDE;
      }
    }
    this.lazyLists++;
    return new LazySeq(this, col, first, this.indent < 0 ? -1 : this.content);
  }

  /** The items of a lazy list, read one at a time (after read() has finished). */
  *itemsOf(seq: LazySeq): Generator<FastNode> {
    if (this.lazyActive) throw OUTSIDE; // one at a time (the validator walks them one after another)
    this.lazyActive = true;
    this.indent = seq.col;
    this.content = seq.first;
    let p = seq.first;
    do {
      yield this.seqItem(seq.col, p);
      p = this.nextItem(seq.col);
    } while (p >= 0);
    if ((this.indent < 0 ? -1 : this.content) !== seq.end) throw OUTSIDE;
    this.lazyActive = false;
    this.lazyDone++;
  }

  /** Moves to the next line at or after `from` that holds content (skips blank and comment lines). */
  private nextLine(from: number): void {
    const s = this.s;
    const n = s.length;
    let lineStart = from;
    for (;;) {
      let i = lineStart;
      while (i < n && s.charCodeAt(i) === SPACE) i++;
      if (i >= n) {
        this.indent = -1;
        return;
      }
      const c = s.charCodeAt(i);
      if (c === NL) {
        lineStart = i + 1;
        continue;
      }
      if (c === HASH) {
        const e = s.indexOf('\n', i);
        if (e < 0) {
          this.indent = -1;
          return;
        }
        lineStart = e + 1;
        continue;
      }
      if (i === lineStart && (c === DASH || c === DOT) && (s.startsWith('---', i) || s.startsWith('...', i)) && isBreak(s.charCodeAt(i + 3))) {
        // Document markers: the leading `---` is taken by read(); any other is outside the subset.
        if (lineStart !== 0 || c === DOT) throw OUTSIDE;
      }
      this.indent = i - lineStart;
      this.content = i;
      return;
    }
  }

  /** After a one-line value ending at `i`: only spaces and a comment may follow on the line. */
  private endOfValue(i: number): void {
    const s = this.s;
    const start = i;
    while (s.charCodeAt(i) === SPACE) i++;
    if (i >= s.length) {
      this.indent = -1;
      return;
    }
    const c = s.charCodeAt(i);
    if (c === NL) return this.nextLine(i + 1);
    if (c === HASH && i > start) {
      const e = s.indexOf('\n', i);
      if (e < 0) {
        this.indent = -1;
        return;
      }
      return this.nextLine(e + 1);
    }
    throw OUTSIDE;
  }

  /** A block node starting at `p` (column `col`): a list, a map, or (outside the subset) anything else. */
  private blockNode(col: number, p: number): FastNode {
    const s = this.s;
    if (s.charCodeAt(p) === DASH && isBreak(s.charCodeAt(p + 1))) return this.blockSeq(col, p);
    const colon = this.keyEnd(p);
    if (colon >= 0) return this.blockMap(col, p, colon, false);
    throw OUTSIDE; // a scalar on a line of its own may continue on the next lines
  }

  /** A block list whose first `-` is at `p`, column `col`. */
  private blockSeq(col: number, p: number): FastSeq {
    const seq = new FastSeq();
    do {
      seq.items.push(this.seqItem(col, p));
      p = this.nextItem(col);
    } while (p >= 0);
    return seq;
  }

  /** The list item whose `-` is at `p`, column `col`. */
  private seqItem(col: number, p: number): FastNode {
    const s = this.s;
    let q = p + 1;
    while (s.charCodeAt(q) === SPACE) q++;
    const c = s.charCodeAt(q);
    if (c === NL || c === HASH || Number.isNaN(c)) {
      // `-` alone: the item is the block node on the next lines, or null.
      this.endOfValue(p + 1);
      return this.indent > col ? this.blockNode(this.indent, this.content) : NULL_NODE;
    }
    // A node on the same line: a compact list or map, or a one-line value.
    const itemCol = col + (q - p);
    if (c === DASH && isBreak(s.charCodeAt(q + 1))) return this.blockSeq(itemCol, q);
    const colon = this.keyEndAt(q, hintSlot(itemCol, 0));
    if (colon >= 0) return this.blockMap(itemCol, q, colon, false);
    return this.lineValue(q, -1);
  }

  /** After an item of the list at column `col`: the index of the next item's `-`, or -1 at the end of the list. */
  private nextItem(col: number): number {
    if (this.indent < col) return -1;
    if (this.indent > col) throw OUTSIDE;
    const p = this.content;
    const s = this.s;
    return s.charCodeAt(p) === DASH && isBreak(s.charCodeAt(p + 1)) ? p : -1; // else the parent map's next key
  }

  /**
   * A block map whose first key starts at `p` (its `:` at `colon`), column `col`. With `lazyLists`
   * (the top-level map), block lists are LazySeqs.
   */
  private blockMap(col: number, p: number, colon: number, lazyLists: boolean): FastMap {
    const s = this.s;
    const map = new FastMap();
    let seen = 0;
    for (;;) {
      const slot = hintSlot(col, map.items.length);
      const key = this.keyScalar(p, colon, slot);
      const bit = keyBit(key);
      if (sameKey(map.items, key, seen, bit)) throw OUTSIDE;
      seen |= bit;
      let q = colon + 1;
      while (s.charCodeAt(q) === SPACE) q++;
      const c = s.charCodeAt(q);
      let value: FastNode;
      if (c === NL || c === HASH || Number.isNaN(c)) {
        // `key:` alone: a block node on the next lines (a list may sit at the key's column), or null.
        this.endOfValue(colon + 1);
        const dash = this.indent >= col && s.charCodeAt(this.content) === DASH && isBreak(s.charCodeAt(this.content + 1));
        if (dash && lazyLists) value = this.lazySeq(this.indent, this.content);
        else if (this.indent > col) value = this.blockNode(this.indent, this.content);
        else if (dash) value = this.blockSeq(col, this.content);
        else value = NULL_NODE;
      } else {
        value = this.lineValue(q, slot < 0 ? -1 : slot + 1);
      }
      map.items.push(new FastPair(key, value));
      if (this.indent < col) return map;
      if (this.indent > col) throw OUTSIDE;
      p = this.content;
      colon = this.keyEndAt(p, hintSlot(col, map.items.length));
      if (colon < 0) throw OUTSIDE;
    }
  }

  /**
   * If a block map key starts at `p` (a plain or quoted scalar followed by `:` and a space or the
   * end of the line), the index of that `:`; otherwise -1.
   */
  private keyEnd(p: number): number {
    const s = this.s;
    const c = s.charCodeAt(p);
    if (c === DQUOTE || c === SQUOTE) {
      const e = this.quotedEnd(p);
      return s.charCodeAt(e) === COLON && isBreak(s.charCodeAt(e + 1)) ? e : -1;
    }
    if (isIndicator(c) || c === DASH) return -1;
    for (let i = p + 1; ; i++) {
      const d = s.charCodeAt(i);
      if (d === NL || Number.isNaN(d)) return -1;
      if (d === COLON && isBreak(s.charCodeAt(i + 1))) {
        // `key :` (a space before the colon) and very long keys are left to the full parser.
        if (s.charCodeAt(i - 1) === SPACE || i - p > MAX_KEY_LENGTH) throw OUTSIDE;
        return i;
      }
      if (d === HASH && s.charCodeAt(i - 1) === SPACE) return -1;
      if (d === LBRACKET || d === RBRACKET || d === LBRACE || d === RBRACE) throw OUTSIDE;
    }
  }

  /** The key scalar of a block map entry from `p` to the `:` at `colon`. */
  private keyScalar(p: number, colon: number, slot: number): FastScalar {
    const c = this.s.charCodeAt(p);
    if (c === DQUOTE || c === SQUOTE) return this.quoted(p, colon);
    return this.plain(slot, p, colon);
  }

  /** Index just past the closing quote of the quoted scalar at `p` (on the same line), or throws. */
  private quotedEnd(p: number): number {
    const s = this.s;
    const quote = s.charCodeAt(p);
    for (let i = p + 1; ; i++) {
      const d = s.charCodeAt(i);
      if (d === NL || Number.isNaN(d)) throw OUTSIDE; // multi-line scalars fold: not in the subset
      if (d === BACKSLASH && quote === DQUOTE) throw OUTSIDE; // escapes are left to the full parser
      if (d === quote) {
        if (quote === SQUOTE && s.charCodeAt(i + 1) === SQUOTE) {
          i++;
          continue;
        }
        return i + 1;
      }
    }
  }

  /** The quoted scalar from `p` to `end` (just past its closing quote). */
  private quoted(p: number, end: number): FastScalar {
    let v = this.s.slice(p + 1, end - 1);
    if (this.s.charCodeAt(p) === SQUOTE && v.includes("''")) v = v.replaceAll("''", "'");
    return new FastScalar(v, v);
  }

  /** A value that ends on its line (scalar or flow collection) at `q`; moves to the next line. */
  private lineValue(q: number, slot: number): FastNode {
    const s = this.s;
    const c = s.charCodeAt(q);
    if (c === DQUOTE || c === SQUOTE) {
      const e = this.quotedEnd(q);
      const v = this.quoted(q, e);
      this.endOfValue(e);
      return v;
    }
    if (c === LBRACKET || c === LBRACE) {
      this.at = q;
      const v = this.flowNode(-1);
      this.endOfValue(this.at);
      return v;
    }
    if (isIndicator(c) || (c === DASH && isBreak(s.charCodeAt(q + 1)))) throw OUTSIDE;
    // A plain scalar: to the end of the line or a ` #` comment.
    let i = q + 1;
    let last = q; // last non-space character
    for (;;) {
      const d = s.charCodeAt(i);
      if (d === NL || Number.isNaN(d)) break;
      if (d === SPACE) {
        if (s.charCodeAt(i + 1) === HASH) break;
      } else {
        // `a: b` inside a value is a nested map (an error for YAML); flow characters are left alone.
        if (d === COLON && isBreak(s.charCodeAt(i + 1))) throw OUTSIDE;
        if (d === LBRACKET || d === RBRACKET || d === LBRACE || d === RBRACE) throw OUTSIDE;
        last = i;
      }
      i++;
    }
    const v = this.plain(slot, q, last + 1);
    this.endOfValue(last + 1);
    // A following line indented deeper than the key would continue this plain scalar: the
    // callers see an indentation greater than their column there and leave the subset.
    return v;
  }

  /** A flow node at `this.at` on one line; `this.at` is moved past it. */
  private flowNode(slot: number): FastNode {
    const s = this.s;
    const c = s.charCodeAt(this.at);
    if (c === LBRACKET) {
      const seq = new FastSeq();
      this.at = this.skipSpaces(this.at + 1);
      if (s.charCodeAt(this.at) === RBRACKET) {
        this.at++;
        return seq;
      }
      for (;;) {
        const slot = flowHintSlot(seq.items.length);
        seq.items.push(this.flowNode(slot < 0 ? -1 : slot + 1));
        this.at = this.skipSpaces(this.at);
        const d = s.charCodeAt(this.at);
        if (d === RBRACKET) {
          this.at++;
          return seq;
        }
        if (d !== COMMA) throw OUTSIDE;
        this.at = this.skipSpaces(this.at + 1);
        if (s.charCodeAt(this.at) === RBRACKET) throw OUTSIDE; // a trailing comma
      }
    }
    if (c === LBRACE) {
      const map = new FastMap();
      this.at = this.skipSpaces(this.at + 1);
      if (s.charCodeAt(this.at) === RBRACE) {
        this.at++;
        return map;
      }
      let seen = 0;
      for (;;) {
        const slot = flowHintSlot(map.items.length);
        const key = this.flowScalar(true, slot);
        const bit = keyBit(key);
        if (sameKey(map.items, key, seen, bit)) throw OUTSIDE;
        seen |= bit;
        // `key: value` with a space after the colon; `{a}`, `{a:b}` and `{"a":b}` are left to the full parser.
        if (s.charCodeAt(this.at) !== COLON || s.charCodeAt(this.at + 1) !== SPACE) throw OUTSIDE;
        this.at = this.skipSpaces(this.at + 2);
        const d = s.charCodeAt(this.at);
        if (d === COMMA || d === RBRACE) throw OUTSIDE; // an empty value
        map.items.push(new FastPair(key, this.flowNode(slot < 0 ? -1 : slot + 1)));
        this.at = this.skipSpaces(this.at);
        const e = s.charCodeAt(this.at);
        if (e === RBRACE) {
          this.at++;
          return map;
        }
        if (e !== COMMA) throw OUTSIDE;
        this.at = this.skipSpaces(this.at + 1);
        if (s.charCodeAt(this.at) === RBRACE) throw OUTSIDE; // a trailing comma
      }
    }
    return this.flowScalar(false, slot);
  }

  /**
   * A scalar inside a flow collection. Plain ones end at `,`, `]`, `}` (or, for a key, at `:`);
   * a `:` or `#` anywhere in them leaves the subset.
   */
  private flowScalar(isKey: boolean, slot: number): FastScalar {
    const s = this.s;
    const p = this.at;
    const c = s.charCodeAt(p);
    if (c === DQUOTE || c === SQUOTE) {
      const e = this.quotedEnd(p);
      this.at = e;
      return this.quoted(p, e);
    }
    if (isBreak(c) || isIndicator(c) || (c === DASH && !(s.charCodeAt(p + 1) >= 48 && s.charCodeAt(p + 1) <= 57))) throw OUTSIDE;
    let i = p + 1;
    let last = p;
    for (;;) {
      const d = s.charCodeAt(i);
      if (d === COMMA || d === RBRACKET || d === RBRACE) break;
      if (d === COLON) {
        if (isKey && s.charCodeAt(i - 1) !== SPACE) break;
        throw OUTSIDE;
      }
      if (d === NL || Number.isNaN(d) || d === HASH || d === LBRACKET || d === LBRACE) throw OUTSIDE;
      if (d !== SPACE) last = i;
      i++;
    }
    if (isKey && (s.charCodeAt(i) !== COLON || last !== i - 1 || i - p > MAX_KEY_LENGTH)) throw OUTSIDE;
    this.at = last + 1;
    return this.plain(slot, p, last + 1);
  }

  private skipSpaces(i: number): number {
    while (this.s.charCodeAt(i) === SPACE) i++;
    return i;
  }
}

/** The text with CRLF line ends read as LF, or null when it holds characters outside the subset. */
function subsetText(text: string): string | null {
  let t = text;
  if (t.includes('\r')) {
    // CRLF line ends: `yaml` reads them as line breaks, and no scalar here spans a line.
    if (/\r(?!\n)/.test(t)) return null;
    t = t.replaceAll('\r\n', '\n');
  }
  return OUTSIDE_CHARS.test(t) ? null : t;
}

/**
 * The single document of `text` as yaml-compatible nodes, or null when the text leaves the plain
 * subset (the caller then parses with the `yaml` package). An empty document also answers null.
 */
export function fastParseYaml(text: string): FastNode | null {
  const t = subsetText(text);
  if (t === null) return null;
  try {
    return new PlainReader(t, false).read();
  } catch (e) {
    if (e === OUTSIDE) return null;
    throw e;
  }
}

/**
 * Reads `text` as fastParseYaml does, except that top-level lists are read while `use` walks
 * them, and returns what `use` returns; null when the text leaves the subset (found while reading
 * or while `use` walks a list) or when `use` did not walk every top-level list to its end.
 */
export function readFastYaml<T>(text: string, use: (root: FastNode) => T | null): T | null {
  const t = subsetText(text);
  if (t === null) return null;
  try {
    const reader = new PlainReader(t, true);
    const root = reader.read();
    if (root === null) return null;
    const result = use(root);
    return result !== null && reader.complete() ? result : null;
  } catch (e) {
    if (e === OUTSIDE) return null;
    throw e;
  }
}
