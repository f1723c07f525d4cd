// The ztunnel command line: argv → command + flags, a --help text, or a usage error. Pure (no I/O).
// Built on node:util parseArgs instead of yargs: yargs builds its help machinery (string-width,
// cliui, y18n) at import, ~15 MB of RSS the idle daemon paid for nothing (issue 7). Messages keep
// the yargs wording users and scripts already match ("Unknown argument: x", "Choices: ...").
import { parseArgs } from 'node:util';
import { runFlags } from './config/options.js';

export interface FlagSpec {
  /** Without the leading `--` (kebab-case); the camelCase spelling is accepted too. */
  readonly name: string;
  /**
   * true: needs a value (`--f v`, `--f=v`, `--f=` for ""). false (a boolean): bare `--f` is "",
   * `--f=x` is "x", `--f true|false|""` takes that word, `--no-f` is "false".
   */
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

export interface ProgramSpec {
  readonly name: string;
  readonly commands: readonly CommandSpec[];
  /** The usage error when no command is named. */
  readonly noCommand: string;
}

/** Flag values by kebab-case name; a flag given more than once keeps every value, in order. */
export type FlagValues = Readonly<Record<string, string | readonly string[]>>;

export type ParsedCommandLine =
  | { readonly kind: 'command'; readonly command: string; readonly positionals: Readonly<Record<string, string>>; readonly flags: FlagValues }
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'usage-error'; readonly message: string };

/** The commands of ztunnel-ts. */
export function ztunnelProgram(): ProgramSpec {
  const run = runFlags();
  return {
    name: 'ztunnel',
    noCommand: 'name a command: run or explain',
    commands: [
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
    ],
  };
}

const isHelp = (a: string | undefined): boolean => a === '--help' || a === '-h';
/** A word that is another option, not a value (`-` and negative numbers are values, as in yargs). */
const looksLikeFlag = (a: string): boolean => a.startsWith('-') && a !== '-' && !/^-\d/.test(a);
const camelCase = (flag: string): string => flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const plural = (n: number, one: string, many: string): string => (n === 1 ? one : many);

/** Parse `argv` (without node and script) against `program`; never throws. */
export function parseCommandLine(argv: readonly string[], program: ProgramSpec = ztunnelProgram()): ParsedCommandLine {
  const first = argv[0];
  if (first === undefined) return { kind: 'usage-error', message: program.noCommand };
  const byName = (n: string | undefined) => program.commands.find((c) => c.name === n);
  if (isHelp(first) || first === 'help') {
    const c = byName(argv[1]);
    return { kind: 'help', text: formatHelp(program, c) };
  }
  const command = byName(first);
  if (!command) {
    if (!first.startsWith('-')) return { kind: 'usage-error', message: `Unknown argument: ${first}` };
    return argv.some(isHelp) ? { kind: 'help', text: formatHelp(program) } : { kind: 'usage-error', message: program.noCommand };
  }
  return parseCommand(argv.slice(1), program, command);
}

function parseCommand(args: readonly string[], program: ProgramSpec, command: CommandSpec): ParsedCommandLine {
  const spelling = new Map<string, FlagSpec>();
  const parseOptions: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const f of command.flags) {
    for (const s of [f.name, camelCase(f.name)]) {
      spelling.set(s, f);
      parseOptions[s] = { type: f.takesValue ? 'string' : 'boolean' };
    }
  }
  // Not strict: unknown options come back as tokens so every one can be named in one message.
  const { tokens } = parseArgs({ args: [...args], options: parseOptions, strict: false, allowPositionals: true, tokens: true });

  const values = new Map<string, string[]>();
  const set = (f: FlagSpec, v: string) => {
    const list = values.get(f.name);
    if (list) list.push(v);
    else values.set(f.name, [v]);
  };
  let help = false;
  const unknown: string[] = [];
  const positionals: string[] = [];
  const missingValue: string[] = [];
  /**
   * The flag just before, given without `=`: a boolean takes a following `true`, `false` or "";
   * an unknown flag takes any following word (named alone in the error, as yargs did).
   */
  let open: { name: string; index: number; known: boolean } | undefined;
  for (const tok of tokens) {
    const before = open;
    open = undefined;
    if (tok.kind === 'option-terminator') continue;
    if (tok.kind === 'positional') {
      if (before && tok.index === before.index + 1 && !before.known) continue;
      if (before && tok.index === before.index + 1 && (tok.value === 'true' || tok.value === 'false' || tok.value === '')) {
        const list = values.get(before.name)!;
        list[list.length - 1] = tok.value;
      } else positionals.push(tok.value);
      continue;
    }
    if (tok.name === 'help') {
      help = true;
      continue;
    }
    const f = spelling.get(tok.name);
    if (f?.takesValue) {
      // parseArgs takes the next word even when it is another flag; yargs (and users) do not.
      if (tok.value === undefined || (!tok.inlineValue && looksLikeFlag(tok.value))) {
        if (isHelp(tok.value)) help = true;
        missingValue.push(f.name);
      } else set(f, tok.value);
    } else if (f) {
      set(f, tok.value ?? '');
      if (tok.value === undefined) open = { name: f.name, index: tok.index, known: true };
    } else {
      const negated = tok.name.startsWith('no-') ? spelling.get(tok.name.slice(3)) : undefined;
      if (negated && !negated.takesValue && tok.value === undefined) set(negated, 'false');
      else {
        unknown.push(tok.name);
        if (tok.value === undefined) open = { name: tok.name, index: tok.index, known: false };
      }
    }
  }
  // --help wins over every other problem once the command is known (as with yargs).
  if (help) return { kind: 'help', text: formatHelp(program, command) };

  const named: Record<string, string> = {};
  const wanted = command.positionals ?? [];
  for (const p of wanted) {
    const v = positionals.shift();
    if (v === undefined) {
      return { kind: 'usage-error', message: `Not enough non-option arguments: got ${Object.keys(named).length}, need at least ${wanted.length}` };
    }
    if (!p.choices.includes(v)) {
      const choices = p.choices.map((c) => JSON.stringify(c)).join(', ');
      return { kind: 'usage-error', message: `Invalid values:\n  Argument: ${p.name}, Given: ${JSON.stringify(v)}, Choices: ${choices}` };
    }
    named[p.name] = v;
  }
  if (missingValue.length > 0) return { kind: 'usage-error', message: `Not enough arguments following: ${missingValue[0]}` };
  const required = command.flags.filter((f) => f.required && !values.has(f.name)).map((f) => f.name);
  if (required.length > 0) {
    return { kind: 'usage-error', message: `Missing required ${plural(required.length, 'argument', 'arguments')}: ${required.join(', ')}` };
  }
  const extras = [...unknown, ...positionals];
  if (extras.length > 0) return { kind: 'usage-error', message: `Unknown ${plural(extras.length, 'argument', 'arguments')}: ${extras.join(', ')}` };

  const flags: Record<string, string | readonly string[]> = {};
  for (const [name, list] of values) flags[name] = list.length === 1 ? list[0]! : list;
  return { kind: 'command', command: command.name, positionals: named, flags };
}

// --- help --------------------------------------------------------------------------------------

const HELP_WIDTH = 100;
/** Flag names longer than this get their description on the next line. */
const MAX_LABEL = 36;

/** The top-level help, or one command's. */
export function formatHelp(program: ProgramSpec, command?: CommandSpec): string {
  const helpRow: [string, string] = ['-h, --help', 'show help'];
  if (!command) {
    const visible = program.commands.filter((c) => !c.hidden);
    return [
      `Usage: ${program.name} <command> [options]`,
      '',
      'Commands:',
      ...table(visible.map((c) => [`${program.name} ${c.name}`, c.describe])),
      '',
      'Options:',
      ...table([helpRow]),
      '',
    ].join('\n');
  }
  const positionals = command.positionals ?? [];
  const usage = [program.name, command.name, ...positionals.map((p) => `<${p.name}>`), '[options]'].join(' ');
  const out = [`Usage: ${usage}`, '', ...wrap(command.describe, HELP_WIDTH), ''];
  if (positionals.length > 0) {
    out.push('Arguments:', ...table(positionals.map((p) => [`<${p.name}>`, `one of: ${p.choices.join(', ')}`])), '');
  }
  // One description column for the whole page, so the sections line up.
  const groups = new Map<string, [string, string][]>();
  for (const f of command.flags) {
    const title = f.group ?? 'Options:';
    const rows = groups.get(title) ?? [];
    rows.push([f.takesValue ? `--${f.name} <value>` : `--${f.name}`, f.required ? `${f.describe} [required]` : f.describe]);
    groups.set(title, rows);
  }
  const options = groups.get('Options:') ?? [];
  groups.delete('Options:');
  groups.set('Options:', [...options, helpRow]);
  const all = [...groups.values()].flat();
  for (const [title, rows] of groups) out.push(title, ...table(rows, all), '');
  return out.join('\n');
}

/**
 * Two columns, indented by 2; the description wrapped to HELP_WIDTH under its own column, as wide
 * as the longest label of `page` (up to MAX_LABEL).
 */
function table(rows: readonly (readonly [string, string])[], page: readonly (readonly [string, string])[] = rows): string[] {
  const labelWidth = Math.min(MAX_LABEL, Math.max(...page.map(([l]) => l.length)));
  const indent = ' '.repeat(2 + labelWidth + 2);
  const out: string[] = [];
  for (const [label, text] of rows) {
    const lines = wrap(text, HELP_WIDTH - indent.length);
    if (label.length > labelWidth) out.push(`  ${label}`, ...lines.map((l) => indent + l));
    else out.push(`  ${label.padEnd(labelWidth)}  ${lines[0] ?? ''}`, ...lines.slice(1).map((l) => indent + l));
  }
  return out;
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines;
}
