// The ztunnel command line on yargs: argv → command + flags, a --help text, or a usage error. No
// I/O: yargs reports into a callback (help text, failure message) instead of printing or exiting.
// yargs is imported on first use, so only the command-line path loads it (issue 15: idle RSS), and
// the daemon parses on a short-lived thread (parseCommandLineOffThread) so its main thread never does.
import { Worker } from 'node:worker_threads';
import type { Argv } from 'yargs';
import { runFlags } from './config/options.js';

export interface FlagSpec {
  /** Without the leading `--` (kebab-case); the camelCase spelling is accepted too. */
  readonly name: string;
  /** true: needs a value (`--f v`, `--f=v`, `--f=` for ""). false: a boolean (`--f`, `--no-f`, `--f=false`). */
  readonly takesValue: boolean;
  readonly describe: string;
  /** --help section title; "Options:" when absent. */
  readonly group?: string;
  readonly required?: boolean;
}

export interface PositionalSpec {
  readonly name: string;
  readonly choices: readonly string[];
}

export interface CommandSpec {
  readonly name: string;
  readonly describe: string;
  /** Not listed in the top-level help (its own --help still works). */
  readonly hidden?: boolean;
  readonly positionals?: readonly PositionalSpec[];
  readonly flags: readonly FlagSpec[];
}

/**
 * Flag values by kebab-case name: text for flags that take a value ("" for `--f=`), "true" or
 * "false" for booleans; a flag given more than once keeps every value, in order (load.ts refuses it).
 */
export type FlagValues = Readonly<Record<string, string | readonly string[]>>;

export type ParsedCommandLine =
  | { readonly kind: 'command'; readonly command: string; readonly positionals: Readonly<Record<string, string>>; readonly flags: FlagValues }
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'usage-error'; readonly message: string };

const PROGRAM = 'ztunnel';
const NO_COMMAND = 'name a command: run or explain';
const HELP_WIDTH = 100;

/** The commands of ztunnel-ts. */
export function ztunnelCommands(): readonly CommandSpec[] {
  const run = runFlags();
  return [
    { name: 'run', describe: 'run the ztunnel-ts daemon (options also read from the environment: see README)', flags: run },
    {
      // `proxy ztunnel` is how Istio's ztunnel DaemonSet starts its container: same as `run`.
      name: 'proxy',
      describe: 'same as run (how Istio starts the ztunnel container)',
      hidden: true,
      positionals: [{ name: 'component', choices: ['ztunnel'] }],
      flags: run,
    },
    {
      name: 'explain',
      describe: 'would a connection be allowed, and why? (policy.md "Beyond the reference"; exit 0 allowed, 1 denied, 2 bad input)',
      flags: [
        { name: 'config', takesValue: true, describe: 'local config file (ztunnel form and/or Istio YAML)' },
        { name: 'admin', takesValue: true, describe: 'admin URL of a running ztunnel, e.g. http://127.0.0.1:15000 (reads /config_dump)' },
        { name: 'src-ip', takesValue: true, required: true, describe: 'source IP of the connection' },
        { name: 'src-identity', takesValue: true, describe: 'peer identity spiffe://<td>/ns/<ns>/sa/<sa> (an HBONE client)' },
        { name: 'plaintext', takesValue: false, describe: 'no peer identity (plaintext to 15006); the default without --src-identity' },
        { name: 'dst', takesValue: true, required: true, describe: 'destination IP:PORT (workload IP and target port, or Service VIP and port)' },
        { name: 'json', takesValue: false, describe: 'print one JSON document (docs/explain-json.md)' },
      ],
    },
  ];
}

type Yargs = (args?: readonly string[]) => Argv;
let loadingYargs: Promise<Yargs> | undefined;
const loadYargs = (): Promise<Yargs> => (loadingYargs ??= import('yargs').then((m) => m.default as unknown as Yargs));

/** The longest the daemon waits for the parsing thread before it parses on its own thread. */
const OFF_THREAD_PARSE_MS = 10_000;

/**
 * parseCommandLine on a short-lived worker thread (cli-args-worker.ts): yargs and its helpers then
 * never load into the daemon's main thread, whose modules stay for its whole life (~1.6 MB of V8
 * heap, docs/memory.md). Falls back to parsing here when the thread cannot run; never throws.
 */
export function parseCommandLineOffThread(argv: readonly string[]): Promise<ParsedCommandLine> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: ParsedCommandLine | null): void => {
      if (done) return;
      done = true;
      if (r) resolve(r);
      else resolve(parseCommandLine(argv));
    };
    let worker: Worker;
    try {
      worker = new Worker(new URL('./cli-args-worker.js', import.meta.url), { workerData: [...argv], execArgv: [], stdout: false, stderr: false });
    } catch {
      finish(null);
      return;
    }
    // Bounded: a thread that neither answers nor exits is given up on and parsing happens here.
    const timer = setTimeout(() => {
      finish(null);
      void worker.terminate();
    }, OFF_THREAD_PARSE_MS);
    const settle = (r: ParsedCommandLine | null) => {
      clearTimeout(timer);
      finish(r);
    };
    worker.once('message', (r: ParsedCommandLine) => {
      settle(r);
      void worker.terminate();
    });
    worker.once('error', () => settle(null));
    worker.once('exit', () => settle(null));
  });
}

/** Parse `argv` (without node and script); never throws. */
export async function parseCommandLine(argv: readonly string[], commands: readonly CommandSpec[] = ztunnelCommands()): Promise<ParsedCommandLine> {
  const yargs = await loadYargs();
  const parser = yargs()
    .scriptName(PROGRAM)
    .usage(`Usage: $0 <command> [options]`)
    .epilogue(`Each command lists its options: ${commands.filter((c) => !c.hidden).map((c) => `${PROGRAM} ${c.name} --help`).join(', ')}.`)
    .demandCommand(1, NO_COMMAND)
    .strict()
    .help()
    .alias('help', 'h')
    .version(false)
    .wrap(HELP_WIDTH)
    .exitProcess(false)
    .parserConfiguration({ 'duplicate-arguments-array': true });
  (parser as unknown as { usageConfiguration(c: Record<string, boolean>): void }).usageConfiguration({ 'hide-types': true });
  for (const c of commands) {
    const words = [c.name, ...(c.positionals ?? []).map((p) => `<${p.name}>`)].join(' ');
    if (c.hidden) parser.command(words, false, (y) => commandBuilder(y, c));
    else parser.command(words, c.describe, (y) => commandBuilder(y, c));
  }

  const outcome = await new Promise<{ error: string | undefined; args: Record<string, unknown>; help: string }>((resolve) => {
    // The callback form keeps yargs from printing and from exiting.
    void parser.parse([...argv], {}, (e: Error | undefined, args: Record<string, unknown>, output: string) => {
      resolve({ error: e?.message, args, help: output });
    });
  });
  if (outcome.error !== undefined) return { kind: 'usage-error', message: withHint(outcome.error, argv, commands) };
  if (outcome.help !== '') return { kind: 'help', text: `${outcome.help}\n` };

  const badBool = badBooleanValue(argv, commands);
  if (badBool) return { kind: 'usage-error', message: badBool };
  const args = outcome.args;
  const [name, ...rest] = (args['_'] as unknown[]).map(String);
  const command = commands.find((c) => c.name === name);
  if (!command) return { kind: 'usage-error', message: name === undefined ? NO_COMMAND : `Unknown argument: ${name}` };
  if (rest.length > 0) return { kind: 'usage-error', message: `Unknown ${rest.length === 1 ? 'argument' : 'arguments'}: ${rest.join(', ')}` };
  const positionals: Record<string, string> = {};
  for (const p of command.positionals ?? []) positionals[p.name] = String(args[p.name]);
  const flags: Record<string, string | readonly string[]> = {};
  for (const f of command.flags) {
    const v = args[f.name];
    if (v === undefined) continue;
    const values = (Array.isArray(v) ? v : [v]).map(String);
    // yargs reads `--no-x` as x=false for any flag; only booleans have that spelling.
    if (f.takesValue && (Array.isArray(v) ? v : [v]).some((x) => typeof x === 'boolean')) {
      return { kind: 'usage-error', message: `Unknown argument: no-${f.name}` };
    }
    flags[f.name] = values.length === 1 ? values[0]! : values;
  }
  return { kind: 'command', command: command.name, positionals, flags };
}

function commandBuilder(y: Argv, c: CommandSpec): Argv {
  y.usage(`Usage: ${[PROGRAM, c.name, ...(c.positionals ?? []).map((p) => `<${p.name}>`), '[options]'].join(' ')}\n\n${c.describe}`);
  for (const p of c.positionals ?? []) y.positional(p.name, { type: 'string', choices: [...p.choices], describe: `one of: ${p.choices.join(', ')}` });
  for (const f of c.flags) {
    y.option(f.name, {
      type: f.takesValue ? 'string' : 'boolean',
      // hide-types leaves the notes to the description: [env …; default …] and [required].
      describe: f.required ? `${f.describe} [required]` : f.describe,
      ...(f.required ? { demandOption: true } : {}),
      ...(f.takesValue ? { requiresArg: true } : {}),
      ...(f.group ? { group: f.group } : {}),
    });
  }
  return y;
}

const camelCase = (flag: string): string => flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/**
 * `--bool=word`: yargs reads any word but "true" as false; the user meant something else. (The
 * word after a bare `--bool` is a positional unless it is true/false, and refused as such.)
 */
function badBooleanValue(argv: readonly string[], commands: readonly CommandSpec[]): string | undefined {
  const command = commands.find((c) => c.name === argv[0]);
  if (!command) return undefined;
  for (const a of argv) {
    if (a === '--') break;
    const m = /^--([^=]+)=(.*)$/s.exec(a);
    if (!m) continue;
    const f = command.flags.find((x) => x.name === m[1] || camelCase(x.name) === m[1]);
    if (f && !f.takesValue && m[2] !== 'true' && m[2] !== 'false') return `--${f.name}: ${JSON.stringify(m[2])} is not a boolean (use true or false)`;
  }
  return undefined;
}

/** yargs' message, plus the closest known flag for an unknown one ("Did you mean --x?"). */
function withHint(message: string, argv: readonly string[], commands: readonly CommandSpec[]): string {
  const m = /^Unknown arguments?: (.*)$/.exec(message);
  if (!m) return message;
  // yargs names an unknown kebab-case flag twice (also in camelCase): once is enough.
  const command = commands.find((c) => c.name === argv[0]);
  const listed = m[1]!.split(', ');
  const unknown = listed.filter((u) => !listed.some((o) => o !== u && camelCase(o) === u));
  message = `Unknown ${unknown.length === 1 ? 'argument' : 'arguments'}: ${unknown.join(', ')}`;
  const hints: string[] = [];
  for (const u of unknown) {
    if (!command || !argv.some((a) => a === `--${u}` || a.startsWith(`--${u}=`) || a === `-${u}`)) continue;
    const best = closest(u, command.flags.map((f) => f.name));
    if (best) hints.push(`--${best}`);
  }
  return hints.length > 0 ? `${message}\nDid you mean ${hints.join(', ')}?` : message;
}

/** The known name nearest to `word` by edit distance, when it is near enough to be a typo. */
export function closest(word: string, names: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const n of names) {
    const d = editDistance(word.toLowerCase(), n);
    if (d < bestDistance) [best, bestDistance] = [n, d];
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}
