// Preloaded into a ztunnel-ts daemon by bench/idle-memory.ts (`node --import …/memory-probe.js`):
// runs in the main thread and in every worker thread (workers inherit the preload), records which
// modules the thread loaded and, once a second, writes that list and the thread's V8 heap figures
// to PROBE_DIR/<pid>/thread-<threadId>.json. Measurement only: never part of a deployment.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import module from 'node:module';
import path from 'node:path';
import v8 from 'node:v8';
import { isMainThread, threadId } from 'node:worker_threads';

/** Where the probe writes (the daemons get no environment of the bench's, so a fixed place). */
export const PROBE_DIR = '/tmp/ztunnel-memory-probe';

if (!isMainThread || process.argv[1]?.endsWith(path.join('src', 'main.js'))) {
  const dir = path.join(PROBE_DIR, String(process.pid));
  mkdirSync(dir, { recursive: true });
  const loaded: string[] = [];
  module.registerHooks({
    load(url, context, next) {
      loaded.push(url);
      return next(url, context);
    },
  });
  const file = path.join(dir, `thread-${threadId}.json`);
  const dump = () => {
    const spaces: Record<string, { size: number; used: number; physical: number }> = {};
    for (const s of v8.getHeapSpaceStatistics()) spaces[s.space_name] = { size: s.space_size, used: s.space_used_size, physical: s.physical_space_size };
    const snapshot = { threadId, isMainThread, at: Date.now(), heap: v8.getHeapStatistics(), spaces, modules: loaded };
    writeFileSync(`${file}.tmp`, JSON.stringify(snapshot));
    renameSync(`${file}.tmp`, file);
  };
  setInterval(dump, 1_000).unref();
}
