// Runs ztunnel-ts as a real process (from dist/) for integration and netns tests, collects its
// JSON log lines and the bound addresses it reports when ready.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const MAIN_JS = join(REPO_ROOT, 'dist', 'src', 'main.js');

export interface DaemonOptions {
  readonly name: string;
  readonly env: Record<string, string>;
  readonly args?: string[];
  /** Wrap the command, e.g. ['ip', 'netns', 'exec', 'node-a']. */
  readonly wrapper?: string[];
  readonly readyTimeoutMs?: number;
}

export type LogLine = Record<string, unknown> & { msg?: string; level?: string };

export class Daemon {
  readonly logs: LogLine[] = [];
  readonly stderr: string[] = [];
  addresses: Record<string, string> = {};
  readonly exited: Promise<number | null>;
  private waiters: Array<{ pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];

  constructor(readonly name: string, readonly child: ChildProcess) {
    let buf = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (!line.trim()) continue;
        let parsed: LogLine;
        try {
          parsed = JSON.parse(line) as LogLine;
          // The daemon writes Istio's keys (`scope`, `message`); tests read `component` and `msg`
          // as well. `raw` keeps the line exactly as written, for tests of the format itself.
          Object.defineProperty(parsed, 'raw', { value: line, enumerable: false });
          if (parsed['component'] === undefined && typeof parsed['scope'] === 'string') Object.defineProperty(parsed, 'component', { value: parsed['scope'], enumerable: false });
          if (parsed.msg === undefined && typeof parsed['message'] === 'string') Object.defineProperty(parsed, 'msg', { value: parsed['message'], enumerable: false });
        } catch {
          parsed = { msg: line, level: 'raw' };
        }
        this.logs.push(parsed);
        this.waiters = this.waiters.filter((w) => {
          if (!w.pred(parsed)) return true;
          w.resolve(parsed);
          return false;
        });
      }
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => this.stderr.push(d));
    // 'close', not 'exit': it fires after the child's stdout is drained, so every log line it
    // wrote is in `logs` when `exited` resolves.
    this.exited = new Promise((resolve) => child.on('close', (code) => resolve(code)));
  }

  /** Resolves with the first (past or future) log line matching `pred`. */
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
    const found = this.logs.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no matching log line within ${timeoutMs} ms; stderr: ${this.stderr.join('')}; last logs: ${JSON.stringify(this.logs.slice(-5))}`)), timeoutMs);
      this.waiters.push({ pred, resolve: (l) => (clearTimeout(timer), resolve(l)) });
    });
  }

  accessLogs(): LogLine[] {
    return this.logs.filter((l) => l['component'] === 'access' && l.msg === 'connection complete');
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    this.child.kill(signal);
    const t = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }

  /** HTTP GET/POST to the admin/stats/readiness server. */
  async http(which: 'admin' | 'stats' | 'readiness', path: string, init?: RequestInit): Promise<Response> {
    const addr = this.addresses[which];
    if (!addr) throw new Error(`${this.name}: no ${which} address`);
    const host = addr.replace('0.0.0.0', '127.0.0.1').replace('[::]', '127.0.0.1');
    return fetch(`http://${host}${path}`, init);
  }
}

/**
 * The environment every test daemon starts from: PATH, JSON logs, and the data-plane worker count
 * of the test run when one is given (`ZTUNNEL_WORKER_THREADS=1 npm test` runs the whole suite with
 * one worker; .ci/run uses 2, docs/workers.md). A test's own env wins.
 */
export function baseDaemonEnv(): Record<string, string> {
  const workers = process.env['ZTUNNEL_WORKER_THREADS'];
  return { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LOG_FORMAT: 'json', ...(workers ? { ZTUNNEL_WORKER_THREADS: workers } : {}) };
}

export async function startDaemon(o: DaemonOptions): Promise<Daemon> {
  const cmd = [...(o.wrapper ?? []), process.execPath, MAIN_JS, 'run', ...(o.args ?? [])];
  const child = spawn(cmd[0]!, cmd.slice(1), {
    env: { ...baseDaemonEnv(), ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const d = new Daemon(o.name, child);
  const ready = await Promise.race([
    d.waitForLog((l) => l.msg === 'ztunnel-ts ready', o.readyTimeoutMs ?? 20_000),
    d.exited.then((code) => {
      throw new Error(`${o.name} exited with ${code} before ready; stderr: ${d.stderr.join('')}; logs: ${JSON.stringify(d.logs.slice(-5))}`);
    }),
  ]);
  for (const [k, v] of Object.entries(ready)) if (typeof v === 'string' && /:\d+$/.test(v)) d.addresses[k] = v;
  return d;
}

const tempDirs: string[] = [];

/**
 * A fresh directory under the system temp dir, removed when the test process exits: daemons
 * started there write their local CA (root key included), which must not outlive the test.
 */
export function tempDir(prefix = 'zt-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (tempDirs.length === 0) {
    process.once('exit', () => {
      for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
    });
  }
  tempDirs.push(dir);
  return dir;
}

export function writeTemp(dir: string, name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** A random 127.x.y.z address (x in 100..199) so parallel test files do not collide on 15008. */
export function randomLoopback(): string {
  const r = () => 1 + Math.floor(Math.random() * 250);
  return `127.${100 + Math.floor(Math.random() * 100)}.${r()}.${r()}`;
}

/**
 * Environment of a dedicated-mode daemon serving `workloadInfo` (`ns/name/sa`) from a local
 * config file, with a local CA root in `stateDir` shared by every daemon of a test, its HBONE
 * listener on `ip:15008` (peers dial workload IPs on 15008) and every other listener on an
 * ephemeral port.
 */
export function dedicatedEnv(o: { workloadInfo: string; ip: string; config: string; stateDir: string; extra?: Record<string, string> }): Record<string, string> {
  return {
    XDS_ADDRESS: '',
    FAKE_CA: 'true',
    ZTUNNEL_STATE_DIR: o.stateDir,
    LOCAL_XDS_PATH: o.config,
    PROXY_MODE: 'dedicated',
    PROXY_WORKLOAD_INFO: o.workloadInfo,
    UNSTABLE_ENABLE_SOCKS5: 'true',
    ZTUNNEL_INBOUND_ADDR: `${o.ip}:15008`,
    ZTUNNEL_INBOUND_PLAINTEXT_ADDR: `${o.ip}:0`,
    ZTUNNEL_OUTBOUND_ADDR: `${o.ip}:0`,
    ZTUNNEL_SOCKS5_ADDR: '127.0.0.1:0',
    ZTUNNEL_ADMIN_ADDR: '127.0.0.1:0',
    ZTUNNEL_STATS_ADDR: '127.0.0.1:0',
    ZTUNNEL_READINESS_ADDR: '127.0.0.1:0',
    ZTUNNEL_DNS_ADDR: '127.0.0.1:0',
    RUST_LOG: 'info',
    ...o.extra,
  };
}

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `node dist/src/main.js ...args` from the repo root, as a user does (asynchronously, so a
 * server in the test process can answer it). Killed after `timeoutMs`. */
export function runMain(args: readonly string[], timeoutMs = 30_000): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN_JS, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
