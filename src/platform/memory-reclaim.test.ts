// Issue 16 item 5: after a burst of unauthenticated closes, the heap V8 grew is given back.
import t from 'tap';
import { RECLAIM_MIN_EVENTS, RECLAIM_QUIET_MS, noteUnauthenticatedClose } from './memory-reclaim.js';

t.test('a burst of unauthenticated closes is followed by one collection that shrinks the heap', async (t) => {
  // Garbage of the kind a burst leaves: many short-lived objects that grew the heap.
  let garbage: object[] | null = [];
  for (let i = 0; i < 1_500_000; i++) garbage.push({ i, s: `x${i}` });
  garbage = null;
  const grown = process.memoryUsage().heapTotal;
  for (let i = 0; i < RECLAIM_MIN_EVENTS; i++) noteUnauthenticatedClose();
  const end = Date.now() + RECLAIM_QUIET_MS + 10_000;
  while (process.memoryUsage().heapTotal > grown / 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
  const after = process.memoryUsage().heapTotal;
  t.ok(after <= grown / 2, `heap total ${(grown / 1048576).toFixed(0)} MB → ${(after / 1048576).toFixed(0)} MB`);
});
