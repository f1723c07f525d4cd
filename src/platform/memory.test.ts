// The allocator controls of platform/memory.ts: the native malloc_trim/mallopt wrappers do what
// they say on this glibc, and MemoryTrimmer trims after start-up and at quiet moments after growth.
import t from 'tap';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { loadNativeAddon } from './native-addon.js';
import { readFileSync, realpathSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';
import { Worker } from 'node:worker_threads';
import { IdleReclaimer, MemoryTrimmer, cleanFileMappings, limitMallocArenas, releaseExecutablePages, trimMalloc, type ReclaimReason } from './memory.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const loaded = loadNativeAddon();
if (!loaded.ok) {
  t.fail(`native addon unavailable (build it with npm run build:native): ${loaded.error.message}`);
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

  t.test('lowMemoryNotification gives a grown heap back, on the main thread and in a worker', async (t) => {
    // Young-generation garbage grows the heap (V8 keeps the semi-spaces it grew to).
    let sink: unknown[] = [];
    for (let i = 0; i < 200_000; i++) sink.push({ i, s: `x${i}` });
    sink = [];
    const before = getHeapStatistics().total_physical_size;
    t.equal(addon.lowMemoryNotification(), true, 'ran for this isolate');
    const after = getHeapStatistics().total_physical_size;
    t.ok(after < before, `heap physical size fell (${before} → ${after})`);
    t.equal(sink.length, 0);
    // In a worker: the call reaches that worker's own isolate.
    const worker = new Worker(
      `const { parentPort } = require('node:worker_threads');
       const addon = require(${JSON.stringify(addonPath())});
       parentPort.postMessage(addon.lowMemoryNotification());`,
      { eval: true },
    );
    const result = await new Promise((resolve, reject) => worker.once('message', resolve).once('error', reject));
    t.equal(result, true, 'ran in the worker');
    await worker.terminate();
  });

  t.test('madvise reports a bad advice as an errno, never throws for a failed call', async (t) => {
    t.equal(addon.madvise(0n, 4096n, 9999), -22, 'EINVAL for an advice the kernel does not know');
    t.throws(() => (addon.madvise as unknown as (a: number, b: number, c: number) => number)(0, 4096, 4), TypeError, 'addresses must be BigInt');
  });

  t.test('releaseExecutablePages drops the node binary\'s resident clean pages from this process', async (t) => {
    const exe = realpathSync(process.execPath);
    const resident = () => cleanFileMappings(readFileSync('/proc/self/smaps', 'utf8'), exe).reduce((n, m) => n + m.rss, 0);
    const before = resident();
    const r = releaseExecutablePages();
    t.equal(r.unsupported, undefined, 'supported here (Linux, addon built)');
    t.ok(r.regions >= 2, `the binary's code and read-only data mappings (${r.regions})`);
    t.ok(r.bytes >= before / 2, 'their resident bytes are reported');
    const after = resident();
    t.ok(after < before / 2, `resident pages of the binary fell (${before} → ${after} bytes)`);
    // Everything still runs: pages used again come back from the page cache.
    t.equal(JSON.parse(JSON.stringify({ ok: [1, 2, 3] })).ok.length, 3);
    t.ok(resident() > 0, 'pages in use again are mapped back');
  });
}

function addonPath(): string {
  return new URL('../../../native/build/Release/ztunnel_native.node', import.meta.url).pathname;
}

t.test('cleanFileMappings keeps only read-only private mappings of the file without modified pages', async (t) => {
  const smaps = [
    '00400000-00600000 r--p 00000000 08:01 42 /usr/bin/node',
    'Rss:                 100 kB',
    'Anonymous:             0 kB',
    'Private_Dirty:         0 kB',
    '00600000-00800000 r-xp 00200000 08:01 42 /usr/bin/node',
    'Rss:                 200 kB',
    'Anonymous:             0 kB',
    '00800000-00900000 r--p 00400000 08:01 42 /usr/bin/node',
    'Rss:                  50 kB',
    'Anonymous:            12 kB',
    '00900000-00a00000 rw-p 00500000 08:01 42 /usr/bin/node',
    'Rss:                  10 kB',
    'Anonymous:             0 kB',
    '00a00000-00b00000 r--s 00000000 08:01 42 /usr/bin/node',
    'Rss:                  10 kB',
    '7f0000000000-7f0000100000 r-xp 00000000 08:01 43 /usr/lib/libc.so.6',
    'Rss:                  80 kB',
    'Anonymous:             0 kB',
    '7f0000200000-7f0000300000 rw-p 00000000 00:00 0 ',
    'Rss:                  80 kB',
  ].join('\n');
  t.same(cleanFileMappings(smaps, '/usr/bin/node'), [
    { start: 0x400000n, end: 0x600000n, rss: 100 * 1024 },
    { start: 0x600000n, end: 0x800000n, rss: 200 * 1024 },
  ], 'relocated (anonymous) pages, writable, shared and other files are left alone');
});

t.test('IdleReclaimer: start-up once quiet, the first traffic once it stops, then only after growth and time', async (t) => {
  let activity = 0;
  let utilization = 0.5;
  let heap = 100;
  let now = 0;
  const done: string[] = [];
  const r = new IdleReclaimer({
    activity: () => activity,
    utilization: () => utilization,
    heapBytes: () => heap,
    now: () => now,
    tickMs: 3_600_000, // the test drives tick() itself
    startupNow: false,
    minIntervalMs: 1_000,
    idleQuietMs: 500,
    minGrowthBytes: 50,
    reclaim: (reason: ReclaimReason) => {
      done.push(reason);
      heap = 100;
    },
  });
  t.teardown(() => r.stop());
  t.equal(r.tick(), undefined, 'event loop busy (starting up): nothing');
  utilization = 0;
  t.equal(r.tick(), 'startup', 'quiet: the start-up reclaim');
  t.equal(r.tick(), undefined, 'nothing happened since');
  activity = 5;
  heap = 120;
  t.equal(r.tick(), undefined, 'connections starting: not quiet');
  t.equal(r.tick(), 'first-traffic', 'quiet after the first connections: reclaimed, without waiting for growth or time');
  activity = 500;
  t.equal(r.tick(), undefined, 'more connections');
  heap = 400;
  t.equal(r.tick(), undefined, 'quiet and grown, but too soon after the last reclaim');
  now = 2_000;
  utilization = 0.9;
  t.equal(r.tick(), undefined, 'a busy loop (a long-lived connection moving data) is never paused');
  utilization = 0;
  t.equal(r.tick(), undefined, 'quiet again, but not yet for long enough');
  now = 2_600;
  t.equal(r.tick(), 'idle', 'quiet for long enough, grown and long enough after the last: reclaimed');
  now = 10_000;
  heap = 120;
  t.equal(r.tick(), undefined, 'not grown enough since the last reclaim');
  t.same(done, ['startup', 'first-traffic', 'idle']);
  // Back-off: each 'idle' reclaim of the window doubles the least interval.
  t.equal(r.idleInterval(), 2_000, 'one idle reclaim in the window: twice the minimum');
  heap = 400;
  t.equal(r.tick(), 'idle', '10 s after the last: reclaimed');
  t.equal(r.idleInterval(), 4_000, 'two: four times');
  now = 13_000;
  heap = 400;
  t.equal(r.tick(), undefined, 'grown, but 3 s < 4 s after the last');
  now = 14_000;
  t.equal(r.tick(), 'idle', '4 s after the last: reclaimed');
  now = 14_000 + 3_600_000;
  t.equal(r.idleInterval(), 1_000, 'an hour later the window is empty: back to the minimum');
});

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
