// deploy/inpod-redirect.sh against a real netns (capture.md §1, §8): the rules land in the table
// order the spec gives, install is idempotent, optional rules follow their flags, and remove leaves
// nothing behind. Root only.
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { netnsAvailable } from './bed.js';
import { REDIRECT_SCRIPT } from './cni-stand-in.js';
import { createNetns, type Netns } from './netns-fixture.js';

const script = (...args: string[]) => execFileSync(REDIRECT_SCRIPT, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** Our rules (`-S` form) in one table, without counters. */
function rules(ns: Netns, bin: 'iptables' | 'ip6tables', table: string): string[] {
  return ns.exec(bin, ['-w', '-t', table, '-S']).split('\n').filter((l) => /ISTIO_(PRERT|OUTPUT)/.test(l));
}

/** The comment tags of a chain's rules, in order. */
function tags(ns: Netns, bin: 'iptables' | 'ip6tables', table: string, chain: string): string[] {
  return rules(ns, bin, table)
    .filter((l) => l.startsWith(`-A ${chain} `))
    .map((l) => /ztunnel-inpod\/([a-z0-9-]+)/.exec(l)?.[1] ?? '?');
}

if (netnsAvailable(t)) {
  t.test('install puts the capture.md §1 rules in order, for IPv4 and IPv6, with the policy route', async (t) => {
    const ns = createNetns(t);
    script('install', ns.name);
    for (const bin of ['iptables', 'ip6tables'] as const) {
      t.same(tags(ns, bin, 'mangle', 'ISTIO_PRERT'), ['connmark-ztunnel'], `${bin} mangle ISTIO_PRERT`);
      t.same(tags(ns, bin, 'mangle', 'ISTIO_OUTPUT'), ['restore-mark'], `${bin} mangle ISTIO_OUTPUT`);
      t.same(tags(ns, bin, 'nat', 'ISTIO_PRERT'), ['probe-in', 'inbound-plaintext'], `${bin} nat ISTIO_PRERT`);
      t.same(tags(ns, bin, 'nat', 'ISTIO_OUTPUT'), ['probe-out', 'spoofed-replies', 'self-call', 'outbound'], `${bin} nat ISTIO_OUTPUT`);
      for (const [table, from, to] of [['mangle', 'PREROUTING', 'ISTIO_PRERT'], ['mangle', 'OUTPUT', 'ISTIO_OUTPUT'], ['nat', 'PREROUTING', 'ISTIO_PRERT'], ['nat', 'OUTPUT', 'ISTIO_OUTPUT']]) {
        t.ok(rules(ns, bin, table!).includes(`-A ${from} -j ${to}`), `${bin} ${table} ${from} jumps to ${to}`);
      }
    }
    const nat4 = rules(ns, 'iptables', 'nat').join('\n');
    t.match(nat4, /-A ISTIO_PRERT ! -d 127\.0\.0\.1\/32 -p tcp -m tcp ! --dport 15008 -m mark ! --mark 0x539\/0xfff .*REDIRECT --to-ports 15006/);
    t.match(nat4, /-A ISTIO_OUTPUT ! -d 127\.0\.0\.1\/32 -p tcp -m mark ! --mark 0x539\/0xfff .*REDIRECT --to-ports 15001/);
    t.match(nat4, /-A ISTIO_PRERT -s 169\.254\.7\.127\/32 -p tcp/);
    t.match(rules(ns, 'ip6tables', 'nat').join('\n'), /-A ISTIO_PRERT -s fd16:9254:7127:1337:ffff:ffff:ffff:ffff\/128 -p tcp/);
    t.match(ns.exec('ip', ['rule', 'show']), /32764:\s+from all fwmark 0x111\/0xfff lookup 100/);
    t.match(ns.exec('ip', ['route', 'show', 'table', '100']), /local default dev lo/);
    t.match(ns.exec('ip', ['-6', 'route', 'show', 'table', '100']), /local default dev lo/);
    t.same(rules(ns, 'iptables', 'raw'), [], 'no DNS rules unless asked');
  });

  t.test('install is idempotent; --dscp-mark and --dns add their rules in place; remove deletes everything', async (t) => {
    const ns = createNetns(t);
    const save = () => ['mangle', 'nat', 'raw'].flatMap((table) => rules(ns, 'iptables', table));
    script('install', ns.name);
    const once = save();
    script('install', ns.name);
    t.same(save(), once, 'a second install changes nothing');
    t.equal(ns.exec('ip', ['rule', 'show']).split('\n').filter((l) => l.includes('lookup 100')).length, 1, 'one policy rule');

    script('install', ns.name, '--dscp-mark', '23', '--dns');
    t.same(tags(ns, 'iptables', 'nat', 'ISTIO_PRERT'), ['probe-in', 'dscp-hbone', 'inbound-plaintext'], 'the DSCP rule sits before the 15006 rule');
    t.match(rules(ns, 'iptables', 'nat').join('\n'), /-A ISTIO_PRERT -p tcp -m dscp --dscp 0x17 .*REDIRECT --to-ports 15008/);
    t.same(tags(ns, 'iptables', 'nat', 'ISTIO_OUTPUT'), ['probe-out', 'dns-udp', 'dns-tcp', 'spoofed-replies', 'self-call', 'outbound'], 'DNS rules before the spoofed-replies rule');
    t.same(tags(ns, 'iptables', 'raw', 'ISTIO_OUTPUT'), ['dns-zone-out']);
    t.same(tags(ns, 'iptables', 'raw', 'ISTIO_PRERT'), ['dns-zone-in']);

    script('install', ns.name);
    t.same(save(), once, 'installing without the flags returns to the plain rule set');

    script('remove', ns.name);
    for (const bin of ['iptables', 'ip6tables'] as const) {
      for (const table of ['mangle', 'nat', 'raw']) t.same(rules(ns, bin, table), [], `${bin} ${table}: nothing left`);
    }
    t.notMatch(ns.exec('ip', ['rule', 'show']), /lookup 100/, 'policy rule removed');
    t.equal(ns.exec('ip', ['route', 'show', 'table', '100']).trim(), '', 'table 100 empty');
    script('remove', ns.name); // removing twice is fine
  });

  t.test('an unknown netns is an error, not a silent success', async (t) => {
    t.throws(() => script('install', `zt-missing-${process.pid}`), /no such network namespace/);
  });
}
