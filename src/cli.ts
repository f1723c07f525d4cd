// yargs commands. `run` starts the daemon; every option is also read from the environment under
// Istio's names (config/options.ts). Unknown flags and bad values are rejected before start.
import yargs from 'yargs';
import type { RunningApp } from './app.js';
import { loadConfig } from './config/load.js';
import { runExplain } from './explain-command.js';
import { yargsOptions } from './config/options.js';
import { createLogger } from './telemetry/logger.js';
import { plainDestination } from './telemetry/plain-format.js';

export interface CliIo {
  readonly argv: string[];
  readonly env: NodeJS.ProcessEnv;
  readonly stdout: (s: string) => void;
  readonly stderr: (s: string) => void;
}

export type CliOutcome = { kind: 'exit'; code: number } | { kind: 'running'; app: RunningApp };

export async function runCli(io: CliIo): Promise<CliOutcome> {
  let outcome: CliOutcome = { kind: 'exit', code: 0 };
  const runHandler = async (argv: Record<string, unknown>) => {
    const result = loadConfig({ flags: argv, env: io.env });
    if (!result.ok) {
      io.stderr(`ztunnel: invalid configuration:\n${result.error.map((e) => `  - ${e}`).join('\n')}\n`);
      outcome = { kind: 'exit', code: 2 };
      return;
    }
    const logger = createLogger({ level: 'info', ...(result.value.logFormat === 'plain' ? { destination: plainDestination() } : {}) });
    try {
      // Loaded here so `explain` does not load (or depend on) the whole daemon.
      const { startApp } = await import('./app.js');
      const app = await startApp({ config: result.value, logger });
      outcome = { kind: 'running', app };
    } catch (e) {
      logger.fatal({ err: e instanceof Error ? e.message : String(e) }, 'failed to start');
      outcome = { kind: 'exit', code: 1 };
    }
  };
  const parser = yargs(io.argv)
    .scriptName('ztunnel')
    .usage('$0 <command> [options]')
    .command('run', 'run the ztunnel-ts daemon (options also read from the environment: see README)', (y) => y.options(yargsOptions()), runHandler)
    .command(
      // `proxy ztunnel` is how Istio's ztunnel DaemonSet starts its container: same as `run`.
      'proxy <component>',
      false,
      (y) => y.positional('component', { type: 'string', choices: ['ztunnel'] }).options(yargsOptions()),
      runHandler,
    )
    .command(
      'explain',
      'would a connection be allowed, and why? (policy.md "Beyond the reference"; exit 0 allowed, 1 denied, 2 bad input)',
      (y) =>
        y
          .option('config', { type: 'string', describe: 'local config file (ztunnel form and/or Istio YAML)' })
          .option('admin', { type: 'string', describe: 'admin URL of a running ztunnel, e.g. http://127.0.0.1:15000 (reads /config_dump)' })
          .option('src-ip', { type: 'string', demandOption: true, describe: 'source IP of the connection' })
          .option('src-identity', { type: 'string', describe: 'peer identity spiffe://<td>/ns/<ns>/sa/<sa> (an HBONE client)' })
          .option('plaintext', { type: 'boolean', describe: 'no peer identity (plaintext to 15006); the default without --src-identity' })
          .option('dst', { type: 'string', demandOption: true, describe: 'destination IP:PORT (workload IP and target port, or Service VIP and port)' })
          .option('json', { type: 'boolean', describe: 'print one JSON document (docs/explain-json.md)' }),
      async (argv) => {
        const code = await runExplain(
          {
            srcIp: argv.srcIp,
            dst: argv.dst,
            ...(argv.config !== undefined ? { config: argv.config } : {}),
            ...(argv.admin !== undefined ? { admin: argv.admin } : {}),
            ...(argv.srcIdentity !== undefined ? { srcIdentity: argv.srcIdentity } : {}),
            ...(argv.plaintext !== undefined ? { plaintext: argv.plaintext } : {}),
            ...(argv.json !== undefined ? { json: argv.json } : {}),
          },
          { stdout: io.stdout, stderr: io.stderr },
        );
        outcome = { kind: 'exit', code };
      },
    )
    .demandCommand(1, 'name a command: run or explain')
    .strict()
    .help()
    .version(false)
    .fail((msg, err) => {
      // Throwing stops yargs before any command handler runs.
      throw new UsageError(msg ?? err?.message ?? 'invalid command line');
    })
    .exitProcess(false);
  try {
    await parser.parseAsync();
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.stderr(`ztunnel: ${e.message}\n`);
    return { kind: 'exit', code: 2 };
  }
  return outcome;
}

class UsageError extends Error {}
