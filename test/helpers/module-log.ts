// Preloaded into a test daemon (`NODE_OPTIONS=--import <this file>`): in the main thread and in
// every worker thread (workers inherit the preload) it appends the URL of each module the thread
// loads to $ZTUNNEL_TEST_MODULE_LOG/thread-<threadId>.txt, so a test can see which modules each
// thread carries (test/integration/memory.test.ts).
import { appendFileSync } from 'node:fs';
import module from 'node:module';
import path from 'node:path';
import { threadId } from 'node:worker_threads';

const dir = process.env['ZTUNNEL_TEST_MODULE_LOG'];
if (dir) {
  const file = path.join(dir, `thread-${threadId}.txt`);
  module.registerHooks({
    load(url, context, next) {
      appendFileSync(file, `${url}\n`);
      return next(url, context);
    },
  });
}
