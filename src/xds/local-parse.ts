// Parses the local config file off the event loop (issue 16 item 9): `yaml` and the validator run
// on a short-lived worker thread with a deadline and a heap cap, so a large or hostile file never
// stalls the data path, and a parse that runs too long or needs too much memory is a clear
// problem instead of a hang. The worker is started per load (reloads are rare) and its memory
// goes with it; the main thread never loads `yaml` for this.
import { Worker } from 'node:worker_threads';
import type { LocalConfigResult } from './local-file.js';
import { fileProblem } from './local-problem.js';

export interface ParseBounds {
  /** Deadline for one parse; past it the worker is stopped and the load rejected. */
  readonly timeoutMs: number;
  /** Heap cap of the worker (V8 old generation). */
  readonly maxHeapMb: number;
}

/**
 * 10,000 workloads (3.8 MB) take about 1–2 s and ~300 MB of heap on a 2-core VM; the size limit
 * of the file (local-source.ts) keeps a valid file well inside both.
 */
export const DEFAULT_PARSE_BOUNDS: ParseBounds = { timeoutMs: 60_000, maxHeapMb: 1536 };

const WORKER_URL = new URL('./local-parse-worker.js', import.meta.url);

export function parseLocalConfigOffThread(text: string, fileName: string, bounds: ParseBounds = DEFAULT_PARSE_BOUNDS): Promise<LocalConfigResult> {
  return new Promise((resolve) => {
    const fail = (message: string): LocalConfigResult => ({ ok: false, errors: [fileProblem(fileName, message)], warnings: [] });
    let worker: Worker;
    try {
      worker = new Worker(WORKER_URL, {
        workerData: { text, fileName },
        execArgv: [], // not the process's own flags (some are refused in a worker)
        resourceLimits: { maxOldGenerationSizeMb: bounds.maxHeapMb },
        stdout: false,
        stderr: false,
      });
    } catch (e) {
      resolve(fail(`cannot start the config parser: ${e instanceof Error ? e.message : String(e)}`));
      return;
    }
    let done = false;
    const finish = (r: LocalConfigResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      void worker.terminate();
      resolve(r);
    };
    const timer = setTimeout(() => finish(fail(`parsing took longer than ${bounds.timeoutMs / 1000} s; the file is refused`)), bounds.timeoutMs);
    worker.once('message', (r: LocalConfigResult) => finish(r));
    worker.once('error', (e: Error & { code?: string }) =>
      finish(
        fail(
          e.code === 'ERR_WORKER_OUT_OF_MEMORY'
            ? `parsing needed more than ${bounds.maxHeapMb} MB of memory; the file is refused`
            : `the config parser failed: ${e.message}`,
        ),
      ),
    );
    worker.once('exit', (code) => finish(fail(`the config parser stopped (exit code ${code}) without a result`)));
  });
}
