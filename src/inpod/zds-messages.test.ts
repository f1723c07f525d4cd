import t from 'tap';
import {
  decodeWorkloadRequest,
  decodeWorkloadResponse,
  decodeZdsHello,
  encodeWorkloadRequest,
  encodeWorkloadResponse,
  encodeZdsHello,
  type WorkloadRequest,
} from './zds-messages.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => Buffer.from(h.replace(/ /g, ''), 'hex');

// Expected bytes computed by hand from capture.md §6 field numbers: tag = field << 3 | wire type
// (0 varint, 2 length-delimited), then the length, then the payload.
t.test('the hello announces version V1 as field 1 varint 1', async (t) => {
  t.equal(hex(encodeZdsHello()), '0801');
  t.same(decodeZdsHello(bytes('0801')), { ok: true, value: { version: 1 } });
});

const requests: Array<[string, WorkloadRequest, string]> = [
  [
    'an Add carries uid (1) and workload_info (2) with name (1), namespace (2), service_account (3) inside payload field 1',
    { kind: 'add', uid: 'u1', workloadInfo: { name: 'n', namespace: 'ns', serviceAccount: 'sa' } },
    // WorkloadInfo: 0a 01 'n' | 12 02 'ns' | 1a 02 'sa' (11 bytes); AddWorkload: 0a 02 'u1' | 12 0b …
    '0a 11 0a 02 7531 12 0b 0a 01 6e 12 02 6e73 1a 02 7361',
  ],
  ['an Add without workload_info encodes only the uid', { kind: 'add', uid: 'u1', workloadInfo: null }, '0a 04 0a 02 7531'],
  ['a Keep is payload field 5 with uid field 1', { kind: 'keep', uid: 'u1' }, '2a 04 0a 02 7531'],
  ['a Del is payload field 2 and its uid is field 2 (not 1)', { kind: 'del', uid: 'u1' }, '12 04 12 02 7531'],
  ['SnapshotSent is an empty message in payload field 3', { kind: 'snapshotSent' }, '1a 00'],
];
for (const [name, req, expected] of requests) {
  t.test(name, async (t) => {
    t.equal(hex(encodeWorkloadRequest(req)), expected.replace(/ /g, ''));
    t.same(decodeWorkloadRequest(bytes(expected)), { ok: true, value: req }, 'decodes back to the same request');
  });
}

t.test('a uid of several hundred bytes survives the round trip (multi-byte lengths)', async (t) => {
  const req: WorkloadRequest = { kind: 'add', uid: 'x'.repeat(300), workloadInfo: { name: 'a', namespace: 'b', serviceAccount: 'c' } };
  const enc = encodeWorkloadRequest(req);
  // AddWorkload = uid (1 tag + 2 length + 300) + workload_info (1 + 1 + 9) = 314 = varint ba 02
  t.equal(hex(enc.subarray(0, 3)), '0aba02');
  t.same(decodeWorkloadRequest(enc), { ok: true, value: req });
});

t.test('an ACK is an Ack with no error (payload field 1, empty); a NACK carries the error text', async (t) => {
  t.equal(hex(encodeWorkloadResponse({ error: '' })), '0a00');
  t.equal(hex(encodeWorkloadResponse({ error: 'bad' })), '0a050a03626164');
  t.same(decodeWorkloadResponse(bytes('0a00')), { ok: true, value: { error: '' } });
  t.same(decodeWorkloadResponse(bytes('0a050a03626164')), { ok: true, value: { error: 'bad' } });
});

const garbage: Array<[string, string]> = [
  ['truncated length-delimited field', '0a05'],
  ['a varint that never ends', 'ffffffffffffffffffff'],
  ['an empty datagram (no payload)', ''],
  ['only the retired field 4 (no_snapshot_present)', '2200'],
  ['a field of an unknown number only', '3a00'],
  ['random bytes', 'deadbeefcafe'],
];
for (const [name, h] of garbage) {
  t.test(`a WorkloadRequest with ${name} decodes to an error value`, async (t) => {
    const r = decodeWorkloadRequest(bytes(h));
    t.equal(r.ok, false);
  });
}

t.test('a WorkloadResponse without an ack decodes to an error value', async (t) => {
  t.equal(decodeWorkloadResponse(bytes('')).ok, false);
  t.equal(decodeWorkloadResponse(bytes('0a05')).ok, false);
});
