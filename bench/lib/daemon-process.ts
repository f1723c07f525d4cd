// One ztunnel-ts daemon (`node dist/src/main.js run`) as a child process: env-configured, JSON logs
// on stdout, ready when it logs `ztunnel-ts ready` with its bound addresses (the same contract as
// test/helpers/daemon.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { stopChild, track } from './children.js';

export interface DaemonProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Bound addresses from the ready line, e.g. { socks5: '127.0.0.1:40123', inbound: ... }. */
  readonly addresses: Record<string, string>;
  /** The last log lines (for error reports). */
  recentLogs(): string[];
  stop(): Promise<void>;
}

export interface StartDaemonOptions {
  readonly name: string;
  readonly mainJs: string;
  readonly env: Record<string, string>;
  readonly execArgv?: readonly string[];
  /** Run under a command that execs the rest, e.g. ['ip', 'netns', 'exec', 'ns'] (the pid stays node's). */
  readonly wrapper?: readonly string[];
  readonly readyTimeoutMs?: number;
  /**
   * Log to this file in the daemon's default format (as Istio's ztunnel is run beside it) instead
   * of JSON on a pipe this process reads: the promise then resolves once the process runs, and the
   * caller waits for readiness itself (its readiness endpoint).
   */
  readonly logFile?: string;
}

const KEEP_LINES = 40;

export function startDaemonProcess(o: StartDaemonOptions): Promise<DaemonProcess> {
  const cmd = [...(o.wrapper ?? []), process.execPath, ...(o.execArgv ?? []), o.mainJs, 'run'];
  if (o.logFile) return startLoggingToFile(o, cmd, o.logFile);
  const child = track(
    spawn(cmd[0]!, cmd.slice(1), {
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LOG_FORMAT: 'json', ...o.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const lines: string[] = [];
  const keep = (l: string) => {
    lines.push(l);
    if (lines.length > KEEP_LINES) lines.shift();
  };
  return new Promise((resolve, reject) => {
    let ready = false;
    let buf = '';
    const timer = setTimeout(() => {
      void stopChild(child);
      reject(new Error(`${o.name}: not ready within ${o.readyTimeoutMs ?? 20_000} ms; last logs:\n${lines.join('\n')}`));
    }, o.readyTimeoutMs ?? 20_000);
    child.stdout!.setEncoding('utf8');
    // Always drained: a full pipe would block the daemon.
    child.stdout!.on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (!line.trim()) continue;
        keep(line);
        if (ready) continue;
        let parsed: Record<string, unknown>;
        try {
          parsed = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        // Istio's JSON log layout names the text 'message' (older builds: 'msg').
        if ((parsed['message'] ?? parsed['msg']) !== 'ztunnel-ts ready') continue;
        ready = true;
        clearTimeout(timer);
        const addresses: Record<string, string> = {};
        for (const [k, v] of Object.entries(parsed)) if (typeof v === 'string' && /:\d+$/.test(v)) addresses[k] = v;
        resolve({
          name: o.name,
          child,
          pid: child.pid!,
          addresses,
          recentLogs: () => [...lines],
          stop: () => stopChild(child, 10_000),
        });
      }
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      for (const l of d.split('\n')) if (l.trim()) keep(`stderr: ${l}`);
    });
    child.once('exit', (code, signal) => {
      if (ready) return;
      clearTimeout(timer);
      reject(new Error(`${o.name} exited (code ${code}, signal ${signal}) before ready; last logs:\n${lines.join('\n')}`));
    });
  });
}

function startLoggingToFile(o: StartDaemonOptions, cmd: string[], logFile: string): Promise<DaemonProcess> {
  const fd = openSync(logFile, 'w');
  let child: ChildProcess;
  try {
    child = track(spawn(cmd[0]!, cmd.slice(1), { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...o.env }, stdio: ['ignore', fd, fd] }));
  } finally {
    closeSync(fd);
  }
  const recentLogs = () => {
    try {
      return readFileSync(logFile, 'utf8').split('\n').filter((l) => l.trim()).slice(-KEEP_LINES);
    } catch {
      return [];
    }
  };
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('spawn', () =>
      resolve({ name: o.name, child, pid: child.pid!, addresses: {}, recentLogs, stop: () => stopChild(child, 10_000) }),
    );
  });
}
