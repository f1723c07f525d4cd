// Shutdown's guarantee (admin.test.ts "POST /quitquitquit drains"): every access record is written
// before "shutdown complete", even when a drained connection's sockets are still closing.
import t from 'tap';
import { ZtunnelError } from '../core/errors.js';
import { ConnectionRecorder } from './connection-record.js';
import { createLogger } from './logger.js';

function recorder() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({ level: 'info', destination: { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) } });
  return { lines, recorder: new ConnectionRecorder(logger) };
}

const description = (port: number) => ({
  direction: 'outbound' as const,
  srcAddr: { ip: '127.0.0.1', port },
  dstAddr: { ip: '127.0.0.2', port: 15008 },
  mtls: true,
});

t.test('finishOpen writes every open record now, once, with the reason; settled() then resolves at once', async (t) => {
  const { lines, recorder: rec } = recorder();
  const done = rec.start(description(1));
  const straggler = rec.start(description(2));
  done.finish();
  t.equal(rec.openCount, 1);
  t.equal(rec.finishOpen(new ZtunnelError('DRAINING', 'connection closed at the drain deadline')), 1, 'one record was still open');
  t.equal(rec.openCount, 0);
  const drained = lines.filter((l) => l['src.addr'] === '127.0.0.1:2');
  t.equal(drained.length, 1);
  t.equal(drained[0]?.['level'], 'error');
  t.equal(drained[0]?.['error'], 'connection closed at the drain deadline');
  straggler.finish(new Error('socket closed later'));
  t.equal(lines.filter((l) => l['src.addr'] === '127.0.0.1:2').length, 1, 'its own late finish writes nothing more');
  await rec.settled(60_000); // resolves at once: nothing is open
  t.equal(rec.finishOpen(new Error('x')), 0, 'nothing left to finish');
});
