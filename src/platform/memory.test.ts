// The allocator controls of platform/memory.ts: the native malloc_trim/mallopt wrappers do what
// they say on this glibc, and MemoryTrimmer trims after start-up and at quiet moments after growth.
import t from 'tap';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { loadNativeAddon } from './native-addon.js';
import { MemoryTrimmer, limitMallocArenas, trimMalloc } from './memory.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const loaded = loadNativeAddon();
if (!loaded.ok) {
  t.fail(`native addon unavailable (build it with node scripts/build-native.mjs): ${loaded.error.message}`);
} else {
  const addon = loaded.value;

  t.test('mallocArenaMax accepts a positive count and refuses 0', async (t) => {
    t.equal(addon.mallocArenaMax(0), -22, 'EINVAL for 0');
    t.equal(addon.mallocArenaMax(4), 0, 'a positive count is set');
    t.equal(limitMallocArenas(), true, 'the default cap is set');
    t.throws(() => (addon.mallocArenaMax as unknown as (n: string) => number)('2'), TypeError);
  });

  t.test('mallocTrim returns freed heap pages to the kernel', async (t) => {
    // Every other 16 KiB native buffer freed: holes inside the heap that free() alone keeps.
    const kept: Buffer[] = [];
    let dropped: Buffer[] = [];
    for (let i = 0; i < 4096; i++) {
      const b = Buffer.allocUnsafeSlow(16 * 1024).fill(1);
      (i % 2 ? kept : dropped).push(b);
    }
    dropped = [];
    gc();
    gc();
    const before = process.memoryUsage.rss();
    t.equal(trimMalloc(), true, 'something was released');
    const after = process.memoryUsage.rss();
    t.ok(before - after >= 8 * 1024 * 1024, `RSS fell by ≥ 8 MiB (${before} → ${after}) with ${kept.length} buffers still held`);
    t.equal(dropped.length, 0);
  });
}

t.test('MemoryTrimmer: once after start-up, then only after growth while connections are not rising', async (t) => {
  let rss = 100;
  let open = 0;
  const trims: string[] = [];
  const trimmer = new MemoryTrimmer({
    openConnections: () => open,
    startupDelayMs: 1,
    intervalMs: 3_600_000, // the test drives check() itself
    minGrowthBytes: 50,
    rss: () => rss,
    trim: () => {
      rss = Math.max(100, rss - 40);
      return true;
    },
    onTrim: (reason, before, after) => trims.push(`${reason} ${before}->${after}`),
  });
  t.teardown(() => trimmer.stop());
  await new Promise<void>((resolve) => {
    const wait = () => (trims.length ? resolve() : setImmediate(wait));
    wait();
  });
  t.same(trims, ['startup 100->100'], 'the start-up trim ran');
  open = 1000;
  rss = 400;
  t.equal(trimmer.check(), false, 'connections rising: no trim');
  t.equal(trimmer.check(), true, 'grown and not rising any more: trim');
  t.same(trims.at(-1), 'idle 400->360');
  rss = 380;
  t.equal(trimmer.check(), false, 'less growth than the threshold since the last trim: no trim');
  open = 10;
  rss = 420;
  t.equal(trimmer.check(), true, 'after the burst closed: trim');
  t.equal(trimmer.check(), false, 'nothing grew since: no trim');
});

t.test('MemoryTrimmer: when RSS cannot be read (fds used up: EMFILE) it skips, never throws, and trims again once it can', async (t) => {
  let rss: number | Error = new Error('EMFILE: too many open files, uv_resident_set_memory');
  let trims = 0;
  const trimmer = new MemoryTrimmer({
    openConnections: () => 0,
    startupDelayMs: 1,
    intervalMs: 3_600_000,
    minGrowthBytes: 50,
    rss: () => {
      if (rss instanceof Error) throw rss;
      return rss;
    },
    trim: () => {
      trims++;
      return true;
    },
  });
  t.teardown(() => trimmer.stop());
  // The start-up trim runs from a timer while RSS is unreadable: a throw there would end the process.
  await new Promise<void>((resolve) => {
    const wait = () => (trims ? resolve() : setImmediate(wait));
    wait();
  });
  t.equal(trims, 1, 'the start-up trim ran without RSS');
  t.equal(trimmer.check(), false, 'unreadable RSS: no trim, no throw');
  rss = 500;
  t.equal(trimmer.check(), true, 'readable again: the next look decides (trim)');
  t.equal(trims, 2);
  rss = new Error('EMFILE');
  t.equal(trimmer.check(), false, 'unreadable again: no trim, no throw');
});
