import net from 'node:net';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { checkNodeInternals, closeEmitted, pendingWriteBytes, raiseStreamHighWaterMarks, socketFd } from './node-internals.js';

t.test('every Node internal the data path uses exists on this Node', async (t) => {
  t.same(await checkNodeInternals(), [], `node ${process.version}`);
});

t.test('the accessors read real values', async (t) => {
  const pt = new PassThrough();
  raiseStreamHighWaterMarks(pt, 1 << 20, 1 << 19);
  t.equal(pt.readableHighWaterMark, 1 << 20, 'readable mark raised');
  t.equal(pt.writableHighWaterMark, 1 << 19, 'writable mark raised');
  raiseStreamHighWaterMarks(pt, 1, 1);
  t.equal(pt.readableHighWaterMark, 1 << 20, 'never lowered');
  t.equal(closeEmitted(pt), false);
  pt.destroy();
  await new Promise((r) => pt.once('close', r));
  t.equal(closeEmitted(pt), true, 'close seen after the fact');

  const server = net.createServer((s) => s.pause());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise((r) => client.once('connect', r));
  t.ok(socketFd(client) > 2, 'a real fd');
  t.equal(pendingWriteBytes(client), 0, 'nothing queued on a fresh socket');
  client.destroy();
  await new Promise((r) => client.once('close', r));
  t.equal(socketFd(client), -1, 'no fd once closed');
});
