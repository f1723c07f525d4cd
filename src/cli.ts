// The commands (cli-args.ts, on yargs). `run` starts the daemon; every option is also read from the
// environment under Istio's names (config/options.ts). Unknown flags and bad values are rejected
// before start; usage errors exit 2.
import type { RunningApp } from './app.js';
import { parseCommandLineOffThread, type FlagValues } from './cli-args.js';
import { loadConfig } from './config/load.js';
import { createLogger } from './telemetry/logger.js';
import { istioDestination } from './telemetry/plain-format.js';

export interface CliIo {
  readonly argv: string[];
  readonly env: NodeJS.ProcessEnv;
  readonly stdout: (s: string) => void;
  readonly stderr: (s: string) => void;
}

export type CliOutcome = { kind: 'exit'; code: number } | { kind: 'running'; app: RunningApp };

export async function runCli(io: CliIo): Promise<CliOutcome> {
  let outcome: CliOutcome = { kind: 'exit', code: 0 };
  const runHandler = async (flags: FlagValues) => {
    const result = loadConfig({ flags, env: io.env });
    if (!result.ok) {
      io.stderr(`ztunnel: invalid configuration:\n${result.error.map((e) => `  - ${e}`).join('\n')}\n`);
      outcome = { kind: 'exit', code: 2 };
      return;
    }
    const logger = createLogger({ level: 'info', destination: istioDestination(result.value.logFormat) });
    for (const w of result.value.warnings) logger.warn(w);
    try {
      // The data path relies on a few Node internals (src/core/node-internals.ts): refuse to start
      // on a Node that lacks one rather than degrade in silence.
      const { checkNodeInternals } = await import('./core/node-internals.js');
      const missing = await checkNodeInternals();
      if (missing.length > 0) {
        throw new Error(`node ${process.version} lacks internals ztunnel-ts needs: ${missing.join(', ')} (supported: see "engines" in package.json)`);
      }
      // Loaded here so `explain` does not load (or depend on) the whole daemon.
      const { startApp } = await import('./app.js');
      const app = await startApp({ config: result.value, logger });
      outcome = { kind: 'running', app };
    } catch (e) {
      logger.fatal({ err: e instanceof Error ? e.message : String(e) }, 'failed to start');
      outcome = { kind: 'exit', code: 1 };
    }
  };
  const parsed = await parseCommandLineOffThread(io.argv);
  if (parsed.kind === 'help') {
    io.stdout(parsed.text);
    return { kind: 'exit', code: 0 };
  }
  try {
    if (parsed.kind === 'usage-error') throw new UsageError(parsed.message);
    if (parsed.command === 'explain') {
      const f = parsed.flags;
      const config = single(f, 'config');
      const admin = single(f, 'admin');
      const srcIdentity = single(f, 'src-identity');
      const plaintext = bool(f, 'plaintext');
      const json = bool(f, 'json');
      // Loaded only for `explain`: the daemon does not carry its code (issue 7: idle RSS).
      const { runExplain } = await import('./explain-command.js');
      const code = await runExplain(
        {
          // Both are required: the parser refuses the command line without them.
          srcIp: single(f, 'src-ip') ?? '',
          dst: single(f, 'dst') ?? '',
          ...(config !== undefined ? { config } : {}),
          ...(admin !== undefined ? { admin } : {}),
          ...(srcIdentity !== undefined ? { srcIdentity } : {}),
          ...(plaintext !== undefined ? { plaintext } : {}),
          ...(json !== undefined ? { json } : {}),
        },
        { stdout: io.stdout, stderr: io.stderr },
      );
      outcome = { kind: 'exit', code };
    } else {
      // `run`, or `proxy ztunnel` (the parser accepts no other component).
      await runHandler(parsed.flags);
    }
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.stderr(`ztunnel: ${e.message}\n`);
    return { kind: 'exit', code: 2 };
  }
  return outcome;
}

/** One value of an `explain` flag; load.ts does this for `run` flags. */
function single(flags: FlagValues, name: string): string | undefined {
  const v = flags[name];
  if (typeof v === 'string' || v === undefined) return v;
  throw new UsageError(`--${name} is given more than once`);
}

function bool(flags: FlagValues, name: string): boolean | undefined {
  const v = single(flags, name);
  if (v === undefined) return undefined;
  if (v === '' || v === 'true') return true;
  if (v === 'false') return false;
  throw new UsageError(`--${name}: ${JSON.stringify(v)} is not a boolean (use true or false)`);
}

class UsageError extends Error {}
