// Worker-thread entry of local-parse.ts: parses one local config text and posts the result.
import { parentPort, workerData } from 'node:worker_threads';
import { parseLocalConfig } from './local-file.js';

const { text, fileName } = workerData as { text: string; fileName: string };
parentPort!.postMessage(parseLocalConfig(text, fileName));
