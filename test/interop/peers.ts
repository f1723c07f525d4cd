// The peers of the interop suite (docs/interop.md): Istio's ztunnel binary, istiod's real code
// (real-istiod) and istioctl's config-dump reader (istioctl-dump/, Go), found through environment
// variables and built with the shared scripts when absent. Every wait is bounded; every process
// started here is ended by PID.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is dist/test/interop/peers.js once built). */
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function firstExisting(...dirs: string[]): string {
  return dirs.find((d) => existsSync(d)) ?? dirs[0]!;
}

/** ISTIO_PEERS_DIR: the shared tools (build-istio-ztunnel.sh, interop-istio.sh, real-istiod/). */
export const PEERS_DIR = process.env['ISTIO_PEERS_DIR'] ?? firstExisting(path.join(REPO, '..', 'shared', 'tools', 'istio-peers'), '/work/shared/tools/istio-peers');
/** INTEROP_WORK: where builds (when needed), logs and dumps go. */
export const WORK = process.env['INTEROP_WORK'] ?? '/tmp/ztunnel-ts-interop';
const GO = process.env['GO'] ?? (existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : 'go');

export interface Peers {
  readonly istioZtunnel: string;
  readonly realIstiod: string;
  readonly istioctlDump: string;
  /** What had to be built, with how long it took. */
  readonly built: string[];
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number; log: string }): void {
  mkdirSync(path.dirname(opts.log), { recursive: true });
  const fd = openSync(opts.log, 'a');
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', fd, fd], timeout: opts.timeoutMs, killSignal: 'SIGTERM' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (status ${r.status}, signal ${r.signal}); see ${opts.log}`);
}

/**
 * Finds (or builds) the three peers. Env: ISTIO_ZTUNNEL_BIN (default $ISTIO_ZT_DIR/bin/ztunnel,
 * ISTIO_ZT_DIR default /tmp/istio-ztunnel), REAL_ISTIOD_BIN (default /tmp/real-istiod-run/real-istiod),
 * ISTIOCTL_DUMP_BIN (default $INTEROP_WORK/istioctl-dump). A missing Istio ztunnel is built with
 * build-istio-ztunnel.sh (~20 min cold on 2 cores), real-istiod with `go build` in a copy of
 * real-istiod/ (~16 min and ~3 GB of Go cache cold), istioctl-dump with `go build` (~1 min once
 * real-istiod's modules are cached).
 */
export function findPeers(say: (s: string) => void): Peers {
  const built: string[] = [];
  const timed = (what: string, estimate: string, fn: () => void) => {
    say(`building ${what} (${estimate}); log in ${WORK}/build-*.log`);
    const t0 = Date.now();
    fn();
    built.push(`${what} in ${Math.round((Date.now() - t0) / 1000)} s`);
  };

  const ztDir = process.env['ISTIO_ZT_DIR'] ?? '/tmp/istio-ztunnel';
  const istioZtunnel = process.env['ISTIO_ZTUNNEL_BIN'] ?? path.join(ztDir, 'bin', 'ztunnel');
  if (!existsSync(istioZtunnel)) {
    timed("Istio's ztunnel", '~20 min the first time', () =>
      run('bash', [path.join(PEERS_DIR, 'build-istio-ztunnel.sh')], { env: { ISTIO_ZT_DIR: ztDir }, timeoutMs: 90 * 60_000, log: path.join(WORK, 'build-istio-ztunnel.log') }));
  }

  const realIstiod = process.env['REAL_ISTIOD_BIN'] ?? '/tmp/real-istiod-run/real-istiod';
  if (!existsSync(realIstiod)) {
    timed('real-istiod', '~16 min the first time', () => {
      // shared/ is read-only and Go may want to update go.sum: build in a copy.
      const src = path.join(WORK, 'real-istiod-src');
      rmSync(src, { recursive: true, force: true });
      cpSync(path.join(PEERS_DIR, 'real-istiod'), src, { recursive: true });
      mkdirSync(path.dirname(realIstiod), { recursive: true });
      run(GO, ['build', '-o', realIstiod, '.'], { cwd: src, env: { GOFLAGS: '-mod=mod' }, timeoutMs: 90 * 60_000, log: path.join(WORK, 'build-real-istiod.log') });
    });
  }

  const istioctlDump = process.env['ISTIOCTL_DUMP_BIN'] ?? path.join(WORK, 'istioctl-dump');
  if (!existsSync(istioctlDump)) {
    timed('istioctl-dump', '~1 min with a warm Go cache', () => {
      const src = path.join(WORK, 'istioctl-dump-src');
      rmSync(src, { recursive: true, force: true });
      cpSync(path.join(REPO, 'test', 'interop', 'istioctl-dump'), src, { recursive: true });
      run(GO, ['build', '-o', istioctlDump, '.'], { cwd: src, env: { GOFLAGS: '-mod=mod' }, timeoutMs: 30 * 60_000, log: path.join(WORK, 'build-istioctl-dump.log') });
    });
  }
  return { istioZtunnel, realIstiod, istioctlDump, built };
}

// ---- processes inside a network namespace ---------------------------------------------------

export class Netns {
  private readonly procs = new Set<ChildProcess>();
  constructor(readonly name: string) {}

  create(): void {
    spawnSync('ip', ['netns', 'del', this.name]);
    const add = spawnSync('ip', ['netns', 'add', this.name]);
    if (add.status !== 0) throw new Error(`ip netns add ${this.name}: ${add.stderr}`);
    this.exec('ip', ['link', 'set', 'lo', 'up']);
  }

  /** Runs a command inside the namespace to completion (bounded); returns stdout. */
  exec(cmd: string, args: string[], timeoutMs = 30_000): string {
    const r = spawnSync('ip', ['netns', 'exec', this.name, cmd, ...args], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} in ${this.name}: status ${r.status}: ${String(r.stderr).slice(0, 500)}`);
    return String(r.stdout);
  }

  /** Starts a long-running process inside the namespace with `env` only (plus PATH/HOME); output to `log`. */
  start(cmd: string, args: string[], env: Record<string, string>, log: string, cwd?: string): ChildProcess {
    mkdirSync(path.dirname(log), { recursive: true });
    const fd = openSync(log, 'a');
    const p = spawn('ip', ['netns', 'exec', this.name, 'env', '-i', `PATH=${process.env['PATH'] ?? ''}`, `HOME=${process.env['HOME'] ?? '/root'}`,
      ...Object.entries(env).map(([k, v]) => `${k}=${v}`), cmd, ...args], { stdio: ['ignore', fd, fd], ...(cwd ? { cwd } : {}) });
    this.procs.add(p);
    p.on('exit', () => this.procs.delete(p));
    return p;
  }

  /** Ends one process (SIGTERM, then SIGKILL after 5 s) and waits for it. */
  async stop(p: ChildProcess): Promise<void> {
    if (p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    p.kill('SIGTERM');
    const timer = setTimeout(() => p.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }

  async destroy(): Promise<void> {
    await Promise.all([...this.procs].map((p) => this.stop(p)));
    spawnSync('ip', ['netns', 'del', this.name]);
  }

  /** GET inside the namespace; undefined when it fails. */
  get(url: string, timeoutS = 5): string | undefined {
    const r = spawnSync('ip', ['netns', 'exec', this.name, 'curl', '-sf', '--max-time', String(timeoutS), url], { timeout: (timeoutS + 5) * 1000, maxBuffer: 64 * 1024 * 1024 });
    return r.status === 0 ? String(r.stdout) : undefined;
  }

  post(url: string, body: string): string {
    const r = spawnSync('ip', ['netns', 'exec', this.name, 'curl', '-sS', '--max-time', '10', '-X', 'POST', '--data-binary', '@-', url], { input: body, timeout: 20_000 });
    if (r.status !== 0) throw new Error(`POST ${url}: ${String(r.stderr)}`);
    return String(r.stdout);
  }
}

/** Polls `fn` every 200 ms until it returns a value (not undefined) or `timeoutMs` passes. */
export async function until<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
