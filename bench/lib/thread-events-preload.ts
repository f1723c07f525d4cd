// Preloaded into ztunnel-ts daemons by `--vs-istio --pingpong-trace DIR` (node --import, which
// worker threads inherit): records, per thread, when V8 collected garbage and when the native
// addon's memory calls ran (malloc_trim, V8's low-memory notification), with wall-clock times,
// so a slow ping-pong round trip can be matched with what the daemon did at that moment.
// Writes one JSON line per event to $ZTUNNEL_BENCH_EVENTS_DIR/events-<pid>-<thread>.jsonl:
//   { t: epoch ms at the start, d: duration ms, k: 'scavenge' | 'mark-compact' | … | 'malloc_trim' | 'low-memory' }
// Without the variable it does nothing. Not used by any measured run without the flag.
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { constants, performance, PerformanceObserver } from 'node:perf_hooks';
import { threadId } from 'node:worker_threads';

const dir = process.env['ZTUNNEL_BENCH_EVENTS_DIR'];

const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'scavenge',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'mark-compact',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental-marking',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak-callbacks',
};

if (dir) {
  mkdirSync(dir, { recursive: true });
  const fd = openSync(path.join(dir, `events-${process.pid}-${threadId}.jsonl`), 'a');
  const write = (t: number, d: number, k: string) => writeSync(fd, `${JSON.stringify({ t, d, k })}\n`);
  const wall = (perfMs: number) => performance.timeOrigin + perfMs;

  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      write(wall(e.startTime), e.duration, GC_KINDS[kind ?? -1] ?? `gc-${kind}`);
    }
  });
  gc.observe({ entryTypes: ['gc'] });

  // The addon is loaded with require(), which calls process.dlopen: wrap the calls that reclaim memory.
  const dlopen = process.dlopen.bind(process) as (...args: unknown[]) => void;
  process.dlopen = ((...args: unknown[]) => {
    // As called (the flags argument only when given: undefined is refused).
    dlopen(...args);
    const module = args[0] as { exports: Record<string, unknown> };
    for (const [name, label] of [
      ['mallocTrim', 'malloc_trim'],
      ['lowMemoryNotification', 'low-memory'],
    ] as const) {
      const fn = module.exports[name];
      if (typeof fn !== 'function') continue;
      module.exports[name] = (...args: unknown[]) => {
        const t0 = performance.now();
        try {
          return (fn as (...a: unknown[]) => unknown)(...args);
        } finally {
          write(wall(t0), performance.now() - t0, label);
        }
      };
    }
  }) as typeof process.dlopen;
  process.once('exit', () => closeSync(fd));
}
