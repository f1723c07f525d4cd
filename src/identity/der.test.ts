import t from 'tap';
import {
  DerError, TAG, bitString, boolean, children, decode, encodeLength, hasBit, ia5String, namedBits, objectIdentifier,
  readBitString, readBoolean, readNode, readOid, readTime, sequence, setOf, smallInteger, time, tlv, unsignedInteger,
} from './der.js';

const hex = (b: Buffer): string => b.toString('hex');

t.test('lengths use the short form below 128 and the minimal long form above', async (t) => {
  const rows: Array<[number, string]> = [
    [0, '00'], [5, '05'], [127, '7f'], [128, '8180'], [255, '81ff'], [256, '820100'], [65535, '82ffff'], [65536, '83010000'],
  ];
  for (const [n, want] of rows) {
    t.equal(hex(encodeLength(n)), want, `length ${n}`);
    // Round trip through the reader with a real value of that length.
    const enc = tlv(TAG.OCTET_STRING, Buffer.alloc(n, 0xab));
    const node = decode(enc);
    t.equal(node.content.length, n, `a ${n}-byte value reads back whole`);
    t.equal(node.raw.length, enc.length);
  }
});

t.test('INTEGER serials stay positive: a leading zero is added when the high bit is set and redundant zeros dropped', async (t) => {
  const rows: Array<[string, string, string]> = [
    ['7f', '02017f', 'high bit clear: as is'],
    ['80', '02020080', 'high bit set: 0x00 prepended'],
    ['ff01', '020300ff01', 'multi-byte negative-looking magnitude'],
    ['0001', '020101', 'redundant leading zero removed'],
    ['000080', '02020080', 'zeros removed, then one added back for the sign'],
    ['', '020100', 'empty magnitude is zero'],
  ];
  for (const [mag, want, name] of rows) t.equal(hex(unsignedInteger(Buffer.from(mag, 'hex'))), want, name);
  t.equal(hex(smallInteger(0)), '020100', 'version v1 = 0');
  t.equal(hex(smallInteger(2)), '020102', 'version v3 = 2');
  t.equal(hex(smallInteger(200)), '020200c8', 'small integer with the high bit set');
  t.throws(() => smallInteger(-1), RangeError, 'negative numbers are refused');
});

t.test('object identifiers encode base-128 arcs and read back', async (t) => {
  const rows: Array<[string, string]> = [
    ['2.5.29.17', '0603551d11'],
    ['1.2.840.10045.4.3.2', '06082a8648ce3d040302'],
    ['1.3.6.1.5.5.7.3.1', '06082b06010505070301'],
    ['1.2.840.113549.1.9.14', '06092a864886f70d01090e'],
    ['2.999.3', '0603883703'],
  ];
  for (const [oid, want] of rows) {
    t.equal(hex(objectIdentifier(oid)), want, `encode ${oid}`);
    t.equal(readOid(decode(Buffer.from(want, 'hex'))), oid, `decode ${oid}`);
  }
  t.throws(() => objectIdentifier('1'), RangeError, 'a single arc is not an OID');
  t.throws(() => objectIdentifier('1.40'), RangeError, 'second arc under 0/1 must be < 40');
  t.throws(() => readOid(decode(Buffer.from('06025588', 'hex'))), DerError, 'an OID whose last arc is unfinished is refused');
});

t.test('KeyUsage bit strings carry the minimal unused-bit count', async (t) => {
  const rows: Array<[number[], string, string]> = [
    [[0, 2], '030205a0', 'digitalSignature|keyEncipherment: 5 unused bits'],
    [[5, 6], '03020106', 'keyCertSign|cRLSign: 1 unused bit'],
    [[0], '03020780', 'digitalSignature alone: 7 unused bits'],
    [[7], '03020001', 'bit 7: no unused bits'],
    [[8], '0303070080', 'decipherOnly (bit 8) spills into a second byte'],
    [[], '030100', 'no bits: empty string'],
  ];
  for (const [bits, want, name] of rows) {
    const enc = namedBits(bits);
    t.equal(hex(enc), want, name);
    const read = readBitString(decode(enc));
    for (let b = 0; b < 9; b++) t.equal(hasBit(read, b), bits.includes(b), `${name}: bit ${b} reads back`);
  }
  t.equal(hex(bitString(Buffer.from('0102', 'hex'))), '0303000102', 'a key/signature BIT STRING has 0 unused bits');
});

t.test('validity times are UTCTime before 2050 and GeneralizedTime from 2050', async (t) => {
  const rows: Array<[string, number, string]> = [
    ['2030-01-02T03:04:05.678Z', TAG.UTC_TIME, '300102030405Z'],
    ['1999-12-31T23:59:59.000Z', TAG.UTC_TIME, '991231235959Z'],
    ['2049-12-31T23:59:59.000Z', TAG.UTC_TIME, '491231235959Z'],
    ['2050-01-01T00:00:00.000Z', TAG.GENERALIZED_TIME, '20500101000000Z'],
    ['9999-12-31T23:59:59.000Z', TAG.GENERALIZED_TIME, '99991231235959Z'],
  ];
  for (const [iso, tag, text] of rows) {
    const enc = time(new Date(iso));
    const node = decode(enc);
    t.equal(node.tag, tag, `${iso}: tag`);
    t.equal(node.content.toString('ascii'), text, `${iso}: text`);
    t.equal(readTime(node).toISOString(), iso.slice(0, 19) + '.000Z', `${iso}: reads back (whole seconds)`);
  }
  t.throws(() => readTime(decode(tlv(TAG.UTC_TIME, Buffer.from('3001020304Z')))), DerError, 'UTCTime without seconds is refused');
});

t.test('SET OF sorts its elements; BOOLEAN TRUE is 0xFF; IA5String refuses non-ASCII', async (t) => {
  t.equal(hex(setOf(Buffer.from('0201ff', 'hex'), Buffer.from('020101', 'hex'))), '3106020101' + '0201ff');
  t.equal(hex(boolean(true)), '0101ff');
  t.equal(readBoolean(decode(boolean(false))), false);
  t.throws(() => ia5String('spiffe://é'), RangeError);
  const seq = sequence(boolean(true), smallInteger(3));
  t.same(children(decode(seq)).map((c) => c.tag), [TAG.BOOLEAN, TAG.INTEGER], 'children of a SEQUENCE');
});

t.test('malformed input is a DerError, never a read past the buffer', async (t) => {
  const rows: Array<[string, string]> = [
    ['30', 'a lone tag byte'],
    ['3005020101', 'content shorter than its length'],
    ['3080020101', 'indefinite length'],
    ['0481050000000000', 'non-minimal long length'],
    ['04850100000000', 'five length bytes'],
    ['1f0100', 'high tag number form'],
    ['3003020101ff', 'trailing garbage after the value'],
  ];
  for (const [h, name] of rows) t.throws(() => decode(Buffer.from(h, 'hex')), DerError, name);
  t.throws(() => children(decode(Buffer.from('3003020501', 'hex'))), DerError, 'a child running past its parent');
  t.throws(() => children(readNode(Buffer.from('0400', 'hex'))), DerError, 'children of a primitive value');
});
