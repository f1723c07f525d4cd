// CPU time and resident memory of a process, read from /proc (Linux only), and the facts about
// the machine that a result file records.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

let clockTicks: number | undefined;

/** Kernel clock ticks per second (`getconf CLK_TCK`), the unit of utime/stime in /proc/<pid>/stat. */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100; // the value on every mainstream Linux build
    }
  }
  return clockTicks;
}

/** User + system CPU seconds the process has used so far (threads included). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return parseStat(stat).cpuSeconds;
}

/** One thread of a process: its id, its name (the kernel's `comm`) and its user + system CPU seconds. */
export interface ThreadCpu {
  tid: number;
  name: string;
  cpuSeconds: number;
  /** Seconds the thread was runnable but waited for a CPU (/proc/<pid>/task/<tid>/schedstat; 0 without schedstats). */
  waitSeconds: number;
}

// The command name (field 2) may contain spaces and parentheses: count fields after the last ')'.
// rest[0] is field 3 (state); utime and stime are fields 14 and 15.
function parseStat(stat: string): { name: string; cpuSeconds: number } {
  const open = stat.indexOf('(');
  const close = stat.lastIndexOf(')');
  const rest = stat.slice(close + 2).split(' ');
  return { name: stat.slice(open + 1, close), cpuSeconds: (Number(rest[11]) + Number(rest[12])) / clockTicksPerSecond() };
}

/** Every live thread of `pid` (/proc/<pid>/task/<tid>/stat); a thread that ends while read is left out. */
export function threadCpuSeconds(pid: number): ThreadCpu[] {
  const out: ThreadCpu[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.push({ tid: Number(tid), ...parseStat(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')), waitSeconds: runQueueWait(pid, tid) });
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}

function runQueueWait(pid: number, tid: string): number {
  try {
    // "<ns on a CPU> <ns runnable, waiting on a run queue> <time slices>"
    return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[1]) / 1e9 || 0;
  } catch {
    return 0;
  }
}

/** Seconds all threads of the process waited for a CPU between two readings (threads alive at the second). */
export function waitDelta(before: readonly ThreadCpu[], after: readonly ThreadCpu[]): number {
  const was = new Map(before.map((t) => [t.tid, t.waitSeconds]));
  return after.reduce((sum, t) => sum + t.waitSeconds - (was.get(t.tid) ?? 0), 0);
}

/**
 * CPU seconds per thread name between two readings: threads sharing a name (V8's helper threads,
 * libuv's pool) are summed under `name×n`; a thread that started in between counts from zero.
 */
export function threadCpuDelta(before: readonly ThreadCpu[], after: readonly ThreadCpu[]): Record<string, number> {
  const was = new Map(before.map((t) => [t.tid, t.cpuSeconds]));
  const byName = new Map<string, { n: number; s: number }>();
  for (const t of after) {
    const e = byName.get(t.name) ?? { n: 0, s: 0 };
    e.n++;
    e.s += t.cpuSeconds - (was.get(t.tid) ?? 0);
    byName.set(t.name, e);
  }
  const out: Record<string, number> = {};
  for (const [name, e] of byName) out[e.n > 1 ? `${name}×${e.n}` : name] = e.s;
  return out;
}

/** Busy CPU seconds of the whole machine so far (all cores; /proc/stat: everything but idle and iowait). */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return (total - f[3]! - f[4]!) / clockTicksPerSecond();
}

/** Sum of cpuSeconds over several processes. */
export function cpuSecondsOf(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
}

/** Resident set size in bytes (VmRSS of /proc/<pid>/status). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/**
 * Anonymous resident bytes (`Anonymous` of /proc/<pid>/smaps_rollup): RSS without the pages of
 * mapped files (the executable's code and read-only data, shared and reclaimable by the kernel).
 */
export function anonymousBytes(pid: number): number {
  const m = /^Anonymous:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  if (!m) throw new Error(`no Anonymous in smaps_rollup for pid ${pid}`);
  return Number(m[1]) * 1024;
}

export interface MachineFacts {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  openssl: string;
  gitCommit: string;
  /** Uncommitted changes in the work tree when the run started. */
  gitDirty: boolean;
  user: string;
}

function git(args: string[], cwd: string): string {
  try {
    return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

export function machineFacts(repoRoot: string): MachineFacts {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpuModel = m[1]!.trim();
  } catch {
    // keep os.cpus()
  }
  return {
    cpuModel,
    cores: os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    openssl: process.versions.openssl ?? '',
    gitCommit: git(['rev-parse', '--short', 'HEAD'], repoRoot) || 'unknown',
    gitDirty: git(['status', '--porcelain', '--untracked-files=no'], repoRoot) !== '',
    user: process.getuid?.() === 0 ? 'root' : 'non-root',
  };
}
