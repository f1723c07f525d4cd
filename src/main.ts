#!/usr/bin/env node
// Process entry: signals and exit codes (ports-and-modes.md §5). The only process.exit.
import { runCli } from './cli.js';
import { limitMallocArenas } from './platform/memory.js';
import { handleSignals } from './lifecycle.js';

// Before the daemon starts its threads (platform/memory.ts).
limitMallocArenas();

const outcome = await runCli({
  argv: process.argv.slice(2),
  env: process.env,
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
});

if (outcome.kind === 'exit') {
  // Explicit exit: a failed start may leave servers it opened keeping the loop alive.
  process.exit(outcome.code);
} else {
  const app = outcome.app;
  handleSignals(app, (code) => process.exit(code));
  await app.done;
  // 1 after a fatal ZDS protocol violation (capture.md §6), else 0.
  process.exit(app.exitCode?.() ?? 0);
}
