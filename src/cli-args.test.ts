import t from 'tap';
import { parseCommandLine, type ParsedCommandLine } from './cli-args.js';
import { OPTION_LIST } from './config/options.js';

type Want =
  | { command: string; flags: Record<string, string | string[]>; positionals?: Record<string, string> }
  | { error: RegExp }
  | { help: RegExp };

const rows: Array<[string, string[], Want]> = [
  // --- commands ---
  ['no command asks for run or explain', [], { error: /^name a command: run or explain$/ }],
  ['a flag before any command is refused (it belongs after the command)', ['--fake-ca', 'run'], { error: /^Unknown argument: fake-ca$/ }],
  ['an unknown command is refused by name', ['start'], { error: /^Unknown argument: start$/ }],
  ['run with no flags', ['run'], { command: 'run', flags: {} }],
  ['proxy ztunnel is accepted as the run command', ['proxy', 'ztunnel', '--fake-ca'], { command: 'proxy', positionals: { component: 'ztunnel' }, flags: { 'fake-ca': 'true' } }],
  ['proxy with another component names the one allowed choice', ['proxy', 'sidecar'], { error: /Argument: component, Given: "sidecar", Choices: "ztunnel"/ }],
  ['proxy without a component is refused', ['proxy'], { error: /^Not enough non-option arguments: got 0, need at least 1$/ }],
  ['proxy ztunnel still refuses unknown flags', ['proxy', 'ztunnel', '--bogus'], { error: /^Unknown argument: bogus$/ }],
  ['an extra word after run is refused', ['run', 'extra-positional'], { error: /^Unknown argument: extra-positional$/ }],
  ['an extra word after proxy ztunnel is refused', ['proxy', 'ztunnel', 'extra'], { error: /^Unknown argument: extra$/ }],
  ['a word after -- is still an extra word', ['run', '--', 'x'], { error: /^Unknown argument: x$/ }],

  // --- unknown flags ---
  ['an unknown flag is refused by name', ['run', '--bogus-flag'], { error: /^Unknown argument: bogus-flag$/ }],
  ['unknown flags and words are all named, flags first', ['run', 'extra', '--bogus', '--other=1'], { error: /^Unknown arguments: bogus, other, extra$/ }],
  ['the word after an unknown flag is taken as its value, not named', ['run', '--bogus-flag', '1', '--fake-ca'], { error: /^Unknown argument: bogus-flag$/ }],
  ['an unknown short flag is refused', ['run', '-x'], { error: /^Unknown argument: x$/ }],
  ['--version does not exist', ['run', '--version'], { error: /^Unknown argument: version$/ }],
  ['--no- works only for boolean flags', ['run', '--no-xds-address'], { error: /^Unknown argument: no-xds-address$/ }],
  ['--no-flag=value is not a spelling', ['run', '--no-fake-ca=true'], { error: /^Unknown argument: no-fake-ca\nDid you mean --fake-ca\?$/ }],

  // --- values ---
  ['--flag value', ['run', '--secret-ttl', '1h'], { command: 'run', flags: { 'secret-ttl': '1h' } }],
  ['--flag=value', ['run', '--secret-ttl=1h'], { command: 'run', flags: { 'secret-ttl': '1h' } }],
  ['--flag= gives an empty value (disables xDS)', ['run', '--xds-address='], { command: 'run', flags: { 'xds-address': '' } }],
  ['an explicit empty word is a value', ['run', '--xds-address', ''], { command: 'run', flags: { 'xds-address': '' } }],
  ['a value may contain =', ['run', '--local-xds=a=b'], { command: 'run', flags: { 'local-xds': 'a=b' } }],
  ['a negative number is a value, not a flag', ['run', '--dscp-mark', '-1'], { command: 'run', flags: { 'dscp-mark': '-1' } }],
  ['the camelCase spelling names the same flag', ['run', '--secretTtl', '1h'], { command: 'run', flags: { 'secret-ttl': '1h' } }],
  ['a flag that needs a value and is last has none', ['run', '--xds-address'], { error: /^Not enough arguments following: xds-address$/ }],
  ['a flag that needs a value does not take the next flag', ['run', '--xds-address', '--fake-ca'], { error: /^Not enough arguments following: xds-address$/ }],
  ['a flag given twice keeps both values (load.ts refuses them)', ['run', '--secret-ttl', '1h', '--secret-ttl=2h'], { command: 'run', flags: { 'secret-ttl': ['1h', '2h'] } }],

  // --- booleans ---
  ['a bare boolean flag is true', ['run', '--fake-ca'], { command: 'run', flags: { 'fake-ca': 'true' } }],
  ['--no-flag is "false"', ['run', '--no-fake-ca'], { command: 'run', flags: { 'fake-ca': 'false' } }],
  ['--flag=false is "false"', ['run', '--fake-ca=false'], { command: 'run', flags: { 'fake-ca': 'false' } }],
  ['--flag=other is refused for a boolean', ['run', '--fake-ca=yes'], { error: /^--fake-ca: "yes" is not a boolean \(use true or false\)$/ }],
  ['the camelCase spelling of a boolean is checked too', ['run', '--fakeCa=1'], { error: /^--fake-ca: "1" is not a boolean/ }],
  ['a boolean flag takes a following true or false', ['run', '--fake-ca', 'false', '--tls12-enabled', 'true'], { command: 'run', flags: { 'fake-ca': 'false', 'tls12-enabled': 'true' } }],
  ['a boolean flag does not take a following empty word', ['run', '--fake-ca', ''], { error: /^Unknown argument: ""$/ }],
  ['a boolean flag does not take any other word', ['run', '--fake-ca', 'extra'], { error: /^Unknown argument: extra$/ }],
  ['a boolean flag does not take a word after --', ['run', '--fake-ca', '--', 'false'], { error: /^Unknown argument: false$/ }],

  // --- explain ---
  ['explain with its flags', ['explain', '--src-ip=1.2.3.4', '--dst', '10.0.0.1:80', '--config', 'c.yaml', '--plaintext', '--json=false'],
    { command: 'explain', flags: { 'src-ip': '1.2.3.4', dst: '10.0.0.1:80', config: 'c.yaml', plaintext: 'true', json: 'false' } }],
  ['explain without --dst', ['explain', '--src-ip=1.2.3.4'], { error: /^Missing required argument: dst$/ }],
  ['explain without either required flag names both', ['explain'], { error: /^Missing required arguments: src-ip, dst$/ }],
  ['explain does not know the run flags', ['explain', '--src-ip', '1.2.3.4', '--dst', '10.0.0.1:80', '--fake-ca'], { error: /^Unknown argument: fake-ca$/ }],
  ['explain refuses an extra word', ['explain', '--src-ip', '1.2.3.4', '--dst', '10.0.0.1:80', 'now'], { error: /^Unknown argument: now$/ }],

  // --- help ---
  ['--help alone prints the top-level help', ['--help'], { help: /^Usage: ztunnel <command> \[options\]/ }],
  ['-h alone prints the top-level help', ['-h'], { help: /^Usage: ztunnel <command> \[options\]/ }],
  ['help prints the top-level help', ['help'], { help: /^Usage: ztunnel <command> \[options\]/ }],
  ['run --help prints the run help', ['run', '--help'], { help: /^Usage: ztunnel run \[options\]/ }],
  ['run -h prints the run help', ['run', '-h'], { help: /^Usage: ztunnel run \[options\]/ }],
  ['--help run prints the run help', ['--help', 'run'], { help: /^Usage: ztunnel run \[options\]/ }],
  ['--help wins over an unknown flag', ['run', '--bogus', '--help'], { help: /^Usage: ztunnel run/ }],
  ['--help wins over a flag missing its value', ['run', '--xds-address', '--help'], { help: /^Usage: ztunnel run/ }],
  ['--help wins over missing required flags', ['explain', '--help'], { help: /^Usage: ztunnel explain \[options\]/ }],
  ['proxy --help prints the proxy help', ['proxy', '--help'], { help: /^Usage: ztunnel proxy <component> \[options\][^]*component +one of: ztunnel/ }],

  // --- suggestions ---
  ['a misspelt flag names the closest one', ['run', '--fake-cs'], { error: /^Unknown argument: fake-cs\nDid you mean --fake-ca\?$/ }],
  ['a misspelt flag with a value names the closest one', ['run', '--xds-adress=x'], { error: /^Unknown argument: xds-adress\nDid you mean --xds-address\?$/ }],
  ['a wrong camelCase spelling names the flag', ['run', '--fakeCA'], { error: /^Unknown argument: fakeCA\nDid you mean --fake-ca\?$/ }],
  ['each misspelt flag gets its suggestion', ['run', '--inbound-adr=:1', '--log-levl', 'info'], { error: /^Unknown arguments: inbound-adr, log-levl\nDid you mean --inbound-addr, --log-level\?$/ }],
  ['a flag of another command is suggested only among this command\'s flags', ['explain', '--srcip', '1.2.3.4', '--dst', '10.0.0.1:80'], { error: /^Unknown argument: srcip\nDid you mean --src-ip\?$/ }],
];

function outcome(r: ParsedCommandLine): unknown {
  if (r.kind === 'usage-error') return { error: r.message };
  if (r.kind === 'help') return { help: r.text.slice(0, 200) };
  return { command: r.command, positionals: r.positionals, flags: r.flags };
}

t.test('each command line gives its command and flags, its help, or a usage error', async (t) => {
  for (const [name, argv, want] of rows) {
    const r = await parseCommandLine(argv);
    const got = outcome(r);
    if ('error' in want) {
      t.equal(r.kind, 'usage-error', `${name}: is a usage error (${JSON.stringify(got)})`);
      if (r.kind === 'usage-error') t.match(r.message, want.error, `${name}: message`);
    } else if ('help' in want) {
      t.equal(r.kind, 'help', `${name}: prints help (${JSON.stringify(got)})`);
      if (r.kind === 'help') t.match(r.text, want.help, `${name}: which help`);
    } else {
      t.same(got, { command: want.command, positionals: want.positionals ?? {}, flags: want.flags }, name);
    }
  }
});

/** Help text with the wrapping undone, so a phrase can be found whatever the terminal width. */
const unwrapped = (text: string): string => text.replace(/\s+/g, ' ');

t.test('the top-level help lists run and explain but not the hidden proxy command', async (t) => {
  const r = await parseCommandLine(['--help']);
  if (r.kind !== 'help') return t.fail(`not help: ${JSON.stringify(r)}`);
  t.match(r.text, /^ {2}ztunnel run +run the ztunnel-ts daemon/m);
  t.match(r.text, /^ {2}ztunnel explain +would a connection be allowed/m);
  t.notMatch(r.text, /ztunnel proxy/);
  t.match(r.text, /-h, --help/);
  t.notMatch(r.text, /--version/);
  t.match(unwrapped(r.text), 'Each command lists its options: ztunnel run --help, ztunnel explain --help.', 'says where the options are');
});

t.test('run --help shows every option under its group with its variable, values and default', async (t) => {
  const r = await parseCommandLine(['run', '--help']);
  if (r.kind !== 'help') return t.fail(`not help: ${JSON.stringify(r)}`);
  const sections = new Map<string, string>();
  for (const block of r.text.split('\n\n')) {
    const [title, ...rest] = block.split('\n');
    if (title?.endsWith(':')) sections.set(title, unwrapped(rest.join('\n')));
  }
  const titles: Record<string, string> = {
    mode: 'Mode:', sources: 'Config sources:', certificates: 'Certificates:', identity: 'Identity:', hbone: 'HBONE:',
    sockets: 'Sockets:', lifecycle: 'Lifecycle:', listeners: 'Listeners:', logging: 'Logging:',
  };
  for (const o of OPTION_LIST) {
    const section = sections.get(titles[o.group]!) ?? '';
    const label = `--${o.flag} `;
    t.ok(section.includes(` ${label}`), `--${o.flag} is listed under ${titles[o.group]}`);
    const notes = [`env ${[o.env, ...(o.envAliases ?? [])].join(', ')}`];
    if (o.type === 'bool') notes.push('true|false');
    if (o.choices) notes.push(o.choices.join('|'));
    if (o.defaultText) notes.push(`default: ${o.defaultText}`);
    t.ok(section.includes(`${unwrapped(o.describe)} [${notes.join('; ')}]`), `--${o.flag} has its description and notes`);
  }
  t.match(unwrapped(r.text), '[env FAKE_CA; true|false; default: false]');
  t.match(unwrapped(r.text), '[env PROXY_MODE; shared|dedicated; default: shared (dedicated in the embedded default)]');
  t.match(unwrapped(r.text), '[env ISTIO_META_CLUSTER_ID, CLUSTER_ID; default: Kubernetes]');
  for (const line of r.text.split('\n')) if (line.length > 100) t.fail(`a help line is wider than 100 columns: ${line}`);
});

t.test('explain --help marks the required flags', async (t) => {
  const r = await parseCommandLine(['explain', '--help']);
  if (r.kind !== 'help') return t.fail(`not help: ${JSON.stringify(r)}`);
  const text = unwrapped(r.text);
  t.match(text, '--src-ip source IP of the connection [required]');
  t.match(text, /--dst destination IP:PORT .* \[required\]/);
  t.match(text, '--plaintext no peer identity');
  t.notMatch(text, /--config [^-]*\[required\]/);
});
