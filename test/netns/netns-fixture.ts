// Small helpers for root-only network-namespace tests: a uniquely named netns per test, removed in
// t.teardown even when the test fails, and a root check that fails loudly (CI runs as root).
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, statSync } from 'node:fs';

type Tap = {
  teardown(fn: () => void | Promise<void>): void;
  fail(message: string): void;
  plan(n: number, comment?: string): void;
};

let counter = 0;

/**
 * True when the netns tests can run. Not root: a failure, unless ZTUNNEL_SKIP_NETNS=1 makes it an
 * explicit, visible skip (never in CI).
 */
export function requireRoot(t: Tap): boolean {
  if (process.getuid?.() === 0) return true;
  if (process.env['ZTUNNEL_SKIP_NETNS'] === '1') {
    t.plan(0, 'skipped: netns tests need root (ZTUNNEL_SKIP_NETNS=1)');
    return false;
  }
  t.fail('netns tests need root (ip netns, iptables); run as root or set ZTUNNEL_SKIP_NETNS=1 to skip them explicitly');
  return false;
}

export function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export interface Netns {
  readonly name: string;
  /** An fd of /run/netns/<name> (close-on-exec), closed at teardown. */
  readonly fd: number;
  /** The netns identity (nsfs inode). */
  readonly inode: number;
  /** Runs a command inside the netns. */
  exec(cmd: string, args: string[]): string;
}

/** Creates `zt-<pid>-<n>` with lo up; deleted (with every link inside it) at teardown. */
export function createNetns(t: Tap): Netns {
  const name = `zt-${process.pid}-${++counter}`;
  run('ip', ['netns', 'add', name]);
  let fd = -1;
  t.teardown(() => {
    if (fd >= 0) closeSync(fd);
    try {
      run('ip', ['netns', 'del', name]);
    } catch {
      // already gone
    }
  });
  run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  const path = `/run/netns/${name}`;
  fd = openSync(path, 'r');
  return {
    name,
    fd,
    inode: statSync(path).ino,
    exec: (cmd, args) => run('ip', ['netns', 'exec', name, cmd, ...args]),
  };
}

/** Packet counter of the iptables rule carrying `-m comment --comment <tag>` in table/chain. */
export function ruleCounter(ns: Netns, binary: 'iptables' | 'ip6tables', table: string, chain: string, tag: string): number {
  const out = ns.exec(binary, ['-t', table, '-L', chain, '-v', '-x', '-n']);
  const line = out.split('\n').find((l) => l.includes(`/* ${tag} */`));
  if (!line) throw new Error(`no rule tagged ${tag} in ${table}/${chain}:\n${out}`);
  return Number(line.trim().split(/\s+/)[0]);
}
