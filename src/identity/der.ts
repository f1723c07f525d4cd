// A minimal DER (X.690) encoder and reader: just what X.509 certificates and PKCS#10 requests
// need (RFC 5280, RFC 2986). It replaces @peculiar/x509 in the product so the daemon does not
// load that library and its decorators/ASN.1 schema stack (issue 7: idle RSS). Single-byte tags
// only (X.509 never uses high tag numbers); lengths in definite form only (DER, X.690 §10.1).

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

// ---------------------------------------------------------------------------------------------
// Encoding

/** Length octets: short form below 128, else long form with the minimal byte count (X.690 §8.1.3). */
export function encodeLength(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`DER length ${n} is invalid`);
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One TLV: tag byte, length, content. */
export function tlv(tag: number, content: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(content.length), content]);
}

export function sequence(...items: Uint8Array[]): Buffer {
  return tlv(TAG.SEQUENCE, Buffer.concat(items));
}

/** SET OF, its elements sorted by their encoding as DER requires (X.690 §11.6). */
export function setOf(...items: Uint8Array[]): Buffer {
  const sorted = items.map((i) => Buffer.from(i)).sort(Buffer.compare);
  return tlv(TAG.SET, Buffer.concat(sorted));
}

/**
 * A non-negative INTEGER from its big-endian magnitude: redundant leading zeros dropped, and one
 * 0x00 prepended when the high bit is set so it does not read as negative (X.690 §8.3.2; RFC 5280
 * §4.1.2.2 wants positive serial numbers).
 */
export function unsignedInteger(magnitude: Uint8Array): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  let bytes = Buffer.from(magnitude.subarray(i));
  if (bytes.length === 0) bytes = Buffer.from([0]);
  if (bytes[0]! & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return tlv(TAG.INTEGER, bytes);
}

export function smallInteger(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`smallInteger(${n}): non-negative integers only`);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return unsignedInteger(Uint8Array.from(bytes));
}

export function boolean(v: boolean): Buffer {
  return tlv(TAG.BOOLEAN, Buffer.from([v ? 0xff : 0x00])); // DER TRUE is 0xFF (X.690 §11.1)
}

export function nullValue(): Buffer {
  return Buffer.from([TAG.NULL, 0x00]);
}

export function octetString(bytes: Uint8Array): Buffer {
  return tlv(TAG.OCTET_STRING, bytes);
}

/** A BIT STRING holding whole bytes (signatures, public keys): 0 unused bits. */
export function bitString(bytes: Uint8Array, unusedBits = 0): Buffer {
  if (unusedBits < 0 || unusedBits > 7 || (bytes.length === 0 && unusedBits !== 0)) throw new RangeError(`bad unused bit count ${unusedBits}`);
  return tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([unusedBits]), bytes]));
}

/**
 * A NamedBitList BIT STRING (e.g. KeyUsage) from the numbers of its set bits, bit 0 being the
 * most significant bit of the first byte; trailing zero bits are removed (X.690 §11.2.2).
 */
export function namedBits(bits: readonly number[]): Buffer {
  if (bits.length === 0) return bitString(Buffer.alloc(0));
  const last = Math.max(...bits);
  const bytes = Buffer.alloc((last >> 3) + 1);
  for (const b of bits) bytes[b >> 3]! |= 0x80 >> (b & 7);
  return bitString(bytes, 7 - (last & 7));
}

export function objectIdentifier(dotted: string): Buffer {
  const arcs = dotted.split('.').map((a) => {
    if (!/^\d+$/.test(a)) throw new RangeError(`bad OID ${dotted}`);
    return BigInt(a);
  });
  if (arcs.length < 2 || arcs[0]! > 2n || (arcs[0]! < 2n && arcs[1]! > 39n)) throw new RangeError(`bad OID ${dotted}`);
  const out: number[] = [];
  // The first two arcs share one subidentifier (X.690 §8.19.4); each is base-128, high bit = more.
  for (const v of [arcs[0]! * 40n + arcs[1]!, ...arcs.slice(2)]) {
    const chunk: number[] = [Number(v & 0x7fn)];
    for (let r = v >> 7n; r > 0n; r >>= 7n) chunk.unshift(Number(r & 0x7fn) | 0x80);
    out.push(...chunk);
  }
  return tlv(TAG.OID, Buffer.from(out));
}

export function utf8String(s: string): Buffer {
  return tlv(TAG.UTF8_STRING, Buffer.from(s, 'utf8'));
}

export function ia5String(s: string): Buffer {
  if (!/^[\x00-\x7f]*$/.test(s)) throw new RangeError('IA5String holds ASCII only');
  return tlv(TAG.IA5_STRING, Buffer.from(s, 'ascii'));
}

/**
 * Certificate validity time (RFC 5280 §4.1.2.5): UTCTime YYMMDDHHMMSSZ through 2049, then
 * GeneralizedTime YYYYMMDDHHMMSSZ; always UTC, seconds included, no fractions.
 */
export function time(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const year = d.getUTCFullYear();
  if (year < 1950 || year > 9999) throw new RangeError(`date ${iso} outside X.509 validity range`);
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  return year < 2050
    ? tlv(TAG.UTC_TIME, Buffer.from(digits.slice(2) + 'Z', 'ascii'))
    : tlv(TAG.GENERALIZED_TIME, Buffer.from(digits + 'Z', 'ascii'));
}

/** [n] EXPLICIT: a constructed context tag wrapping a whole TLV. */
export function explicit(n: number, inner: Uint8Array): Buffer {
  return tlv(0xa0 | n, inner);
}

/** [n] IMPLICIT: the content of a primitive (or `constructed`) value under a context tag. */
export function implicit(n: number, content: Uint8Array, constructed = false): Buffer {
  return tlv((constructed ? 0xa0 : 0x80) | n, content);
}

// ---------------------------------------------------------------------------------------------
// Reading

/** One decoded TLV inside `buf`; `content` is a view, `raw` the whole TLV (for verbatim copies). */
export interface DerNode {
  readonly tag: number;
  readonly content: Buffer;
  readonly raw: Buffer;
}

export class DerError extends Error {
  override readonly name = 'DerError';
}

/** Reads the TLV starting at `offset`; throws DerError on truncated or non-DER framing. */
export function readNode(buf: Buffer, offset = 0): DerNode {
  if (offset + 2 > buf.length) throw new DerError(`truncated DER at offset ${offset}`);
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError(`high tag numbers are not supported (offset ${offset})`);
  let pos = offset + 1;
  const first = buf[pos++]!;
  let length: number;
  if (first < 0x80) {
    length = first;
  } else {
    const n = first & 0x7f;
    if (n === 0) throw new DerError(`indefinite length is not DER (offset ${offset})`);
    if (n > 4) throw new DerError(`length of ${n} bytes is too long (offset ${offset})`);
    if (pos + n > buf.length) throw new DerError(`truncated DER length at offset ${offset}`);
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[pos++]!;
    if (length < 0x80 || buf[pos - n] === 0) throw new DerError(`non-minimal DER length at offset ${offset}`);
  }
  const end = pos + length;
  if (end > buf.length) throw new DerError(`DER value at offset ${offset} runs past the end (${length} bytes)`);
  return { tag, content: buf.subarray(pos, end), raw: buf.subarray(offset, end) };
}

/** Decodes a whole buffer that must hold exactly one TLV. */
export function decode(buf: Buffer): DerNode {
  const node = readNode(buf, 0);
  if (node.raw.length !== buf.length) throw new DerError(`${buf.length - node.raw.length} trailing bytes after DER value`);
  return node;
}

/** The TLVs inside a constructed value. */
export function children(node: DerNode): DerNode[] {
  if ((node.tag & 0x20) === 0) throw new DerError(`tag 0x${node.tag.toString(16)} is not constructed`);
  const out: DerNode[] = [];
  for (let off = 0; off < node.content.length;) {
    const c = readNode(node.content, off);
    out.push(c);
    off += c.raw.length;
  }
  return out;
}

export function expectTag(node: DerNode | undefined, tag: number, what: string): DerNode {
  if (!node) throw new DerError(`${what}: missing`);
  if (node.tag !== tag) throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, got 0x${node.tag.toString(16)}`);
  return node;
}

export function readOid(node: DerNode): string {
  expectTag(node, TAG.OID, 'OBJECT IDENTIFIER');
  const arcs: bigint[] = [];
  let v = 0n;
  for (let i = 0; i < node.content.length; i++) {
    const b = node.content[i]!;
    v = (v << 7n) | BigInt(b & 0x7f);
    if ((b & 0x80) === 0) {
      arcs.push(v);
      v = 0n;
    } else if (i === node.content.length - 1) {
      throw new DerError('truncated OBJECT IDENTIFIER');
    }
  }
  if (arcs.length === 0) throw new DerError('empty OBJECT IDENTIFIER');
  const first = arcs[0]!;
  const head = first < 80n ? [first / 40n, first % 40n] : [2n, first - 80n];
  return [...head, ...arcs.slice(1)].join('.');
}

export function readBoolean(node: DerNode): boolean {
  expectTag(node, TAG.BOOLEAN, 'BOOLEAN');
  if (node.content.length !== 1) throw new DerError('BOOLEAN must be one byte');
  return node.content[0] !== 0;
}

/** A BIT STRING's unused-bit count and its bytes. */
export function readBitString(node: DerNode): { unusedBits: number; bytes: Buffer } {
  expectTag(node, TAG.BIT_STRING, 'BIT STRING');
  if (node.content.length === 0) throw new DerError('BIT STRING without unused-bits byte');
  const unusedBits = node.content[0]!;
  if (unusedBits > 7 || (node.content.length === 1 && unusedBits !== 0)) throw new DerError(`bad BIT STRING unused-bits ${unusedBits}`);
  return { unusedBits, bytes: node.content.subarray(1) };
}

/** Whether named bit `n` (0 = most significant bit of the first byte) is set. */
export function hasBit(bits: { bytes: Buffer }, n: number): boolean {
  const byte = bits.bytes[n >> 3];
  return byte !== undefined && (byte & (0x80 >> (n & 7))) !== 0;
}

/** UTCTime / GeneralizedTime in the RFC 5280 §4.1.2.5 profile (UTC, seconds, 'Z'). */
export function readTime(node: DerNode): Date {
  const s = node.content.toString('ascii');
  let m: RegExpExecArray | null;
  let year: number;
  if (node.tag === TAG.UTC_TIME && (m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s))) {
    const yy = Number(m[1]);
    year = yy < 50 ? 2000 + yy : 1900 + yy; // RFC 5280 §4.1.2.5.1
  } else if (node.tag === TAG.GENERALIZED_TIME && (m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s))) {
    year = Number(m[1]);
  } else {
    throw new DerError(`unsupported time value ${JSON.stringify(s)} (tag 0x${node.tag.toString(16)})`);
  }
  const ms = Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  if (Number.isNaN(ms)) throw new DerError(`invalid time ${s}`);
  return new Date(ms);
}
