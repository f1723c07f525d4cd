// Every process the benchmark starts is tracked here and killed when the orchestrator exits, on
// any path: normal end, error, Ctrl-C, SIGTERM (process.on('exit') + signal handlers).
import { fork, spawn, type ChildProcess } from 'node:child_process';

const alive = new Set<ChildProcess>();
let installed = false;

function killAllNow(): void {
  for (const c of alive) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  alive.clear();
}

/** Installs the exit and signal handlers once. */
export function installExitHandlers(): void {
  if (installed) return;
  installed = true;
  process.on('exit', killAllNow);
  process.on('SIGINT', () => process.exit(130));
  process.on('SIGTERM', () => process.exit(143));
  process.on('uncaughtException', (e) => {
    console.error('bench: uncaught exception:', e);
    process.exit(1);
  });
  process.on('unhandledRejection', (e) => {
    console.error('bench: unhandled rejection:', e);
    process.exit(1);
  });
}

export function track<T extends ChildProcess>(child: T): T {
  alive.add(child);
  child.once('exit', () => alive.delete(child));
  return child;
}

export interface ForkOptions {
  readonly args?: readonly string[];
  readonly env?: Record<string, string>;
  /** Node flags for the child (e.g. --cpu-prof). */
  readonly execArgv?: readonly string[];
  /** Run under a command, e.g. ['ip', 'netns', 'exec', 'pod-a'] (the IPC channel fd is inherited). */
  readonly wrapper?: readonly string[];
}

/** Starts a compiled bench script as a child with an IPC channel; its stdout/stderr are inherited. */
export function forkScript(scriptPath: string, o: ForkOptions = {}): ChildProcess {
  const env = { ...process.env, ...(o.env ?? {}) };
  if (!o.wrapper?.length) {
    return track(fork(scriptPath, [...(o.args ?? [])], { env, execArgv: [...(o.execArgv ?? [])], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  }
  const cmd = [...o.wrapper, process.execPath, ...(o.execArgv ?? []), scriptPath, ...(o.args ?? [])];
  return track(spawn(cmd[0]!, cmd.slice(1), { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
}

/** Resolves with the first IPC message matching `pred`; rejects if the child exits first or on timeout. */
export function waitForMessage<M>(child: ChildProcess, pred: (m: M) => boolean, timeoutMs: number, what: string): Promise<M> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      child.removeListener('message', onMessage);
      child.removeListener('exit', onExit);
    };
    const onMessage = (m: unknown) => {
      if (!pred(m as M)) return;
      cleanup();
      resolve(m as M);
    };
    const onExit = (code: number | null, signal: string | null) => {
      cleanup();
      reject(new Error(`${what}: process exited (code ${code}, signal ${signal}) before answering`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${what}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** Asks politely (SIGTERM), then forcefully after timeoutMs. Resolves when the process is gone. */
export async function stopChild(child: ChildProcess, timeoutMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(t);
}
