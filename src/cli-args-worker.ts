// Worker-thread entry of cli-args.ts: parses one command line with yargs and posts the result, so
// the daemon's main thread never loads yargs (docs/memory.md). Started only by parseCommandLineOffThread.
import { parentPort, workerData } from 'node:worker_threads';
import { parseCommandLine } from './cli-args.js';

parentPort!.postMessage(await parseCommandLine(workerData as string[]));
