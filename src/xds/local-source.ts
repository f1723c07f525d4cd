// The local config source: LOCAL_XDS_PATH (a file, watched) or LOCAL_XDS (inline YAML, loaded once),
// config.md §1 and "Beyond" (a). Each load is validated completely (parse + optional transform)
// before anything is applied; an invalid reload keeps the last good config in force. What is
// applied is diffed against what was applied last, so resources removed from the file are removed.
import { constants, realpathSync, watch, type FSWatcher, type Stats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { ZtunnelError } from '../core/errors.js';
import { policyKey } from '../policy/model.js';
import type { StateBatch, StateSink } from '../state/batch.js';
import { serviceKey } from '../state/model.js';
import type { Logger } from '../telemetry/logger.js';
import type { LocalConfigSnapshot } from './local-file.js';
import { DEFAULT_PARSE_BOUNDS, parseLocalConfigOffThread, type ParseBounds } from './local-parse.js';
import { fileProblem, formatProblem, type LocalConfigProblem } from './local-problem.js';

/** Runs after parsing, before applying (the Istio-YAML translator plugs in here). */
export type LocalConfigTransform = (
  snap: LocalConfigSnapshot,
) => { ok: true; value: LocalConfigSnapshot; warnings: LocalConfigProblem[] } | { ok: false; errors: LocalConfigProblem[] };

export interface LocalConfigSourceOptions {
  /** LOCAL_XDS_PATH: loaded, then watched. Exactly one of `path` and `inline`. */
  readonly path?: string;
  /** LOCAL_XDS: inline YAML, loaded once; problems name the file `LOCAL_XDS`. */
  readonly inline?: string;
  readonly sink: StateSink;
  readonly logger: Logger;
  /** Quiet period after the last file-system event before reloading. Default 100 ms. */
  readonly debounceMs?: number;
  /** Watch the file for changes (default true; ignored for inline config). */
  readonly watch?: boolean;
  readonly transform?: LocalConfigTransform;
  /** Called after every successful apply, including the first load. */
  readonly onApplied?: (snapshot: LocalConfigSnapshot) => void;
  /** Called when a reload is rejected (the lead counts ztunnel_ts_local_config_reload_failures_total). */
  readonly onReloadFailure?: (problems: readonly LocalConfigProblem[]) => void;
  /** Bounds of one read and parse (issue 16 items 8–10); defaults in DEFAULT_FILE_LIMITS. */
  readonly limits?: Partial<FileLimits>;
}

export interface FileLimits extends ParseBounds {
  /** Larger files are refused without being read. */
  readonly maxBytes: number;
  /** Deadline for reading the file. */
  readonly readTimeoutMs: number;
  /** Before a reload, the file's size and mtime must stay the same for this long... */
  readonly settleMs: number;
  /** ...waiting at most this long (then it is read as it is). */
  readonly settleMaxWaitMs: number;
}

/**
 * 16 MiB holds ~40,000 workloads in the ztunnel form (10,000 are 3.8 MB). A writer's partial
 * writes are usually milliseconds apart; 50 ms of no change (after the 100 ms debounce) and a 2 s
 * bound keep a reload prompt while a slow writer is waited for.
 */
export const DEFAULT_FILE_LIMITS: FileLimits = {
  ...DEFAULT_PARSE_BOUNDS,
  maxBytes: 16 * 1024 * 1024,
  readTimeoutMs: 5_000,
  settleMs: 50,
  settleMaxWaitMs: 2_000,
};

const DEFAULT_DEBOUNCE_MS = 100;
export const INLINE_CONFIG_NAME = 'LOCAL_XDS';

type Validated = { ok: true; value: LocalConfigSnapshot } | { ok: false; errors: LocalConfigProblem[] };

/** What was last applied, per resource type: key → fingerprint. */
interface AppliedIndex {
  readonly workloads: Map<string, string>;
  readonly services: Map<string, string>;
  readonly policies: Map<string, string>;
}

export class LocalConfigSource {
  private readonly opts: LocalConfigSourceOptions;
  private readonly fileName: string;
  private readonly debounceMs: number;
  private readonly limits: FileLimits;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private rerun = false;
  private closed = false;
  private started = false;

  private applied: LocalConfigSnapshot | undefined;
  private appliedText: string | undefined;
  private appliedIndex: AppliedIndex = { workloads: new Map(), services: new Map(), policies: new Map() };
  /** Text of the last load attempt, so repeated events for an unchanged file are no-ops. */
  private attemptedText: string | undefined;
  private errors: LocalConfigProblem[] = [];

  constructor(opts: LocalConfigSourceOptions) {
    if ((opts.path === undefined) === (opts.inline === undefined)) {
      throw new ZtunnelError('CONFIG_INVALID', 'exactly one of LOCAL_XDS_PATH and LOCAL_XDS must be given');
    }
    this.opts = opts;
    this.fileName = opts.path ?? INLINE_CONFIG_NAME;
    this.debounceMs = opts.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    this.limits = { ...DEFAULT_FILE_LIMITS, ...opts.limits };
  }

  /** First load. Rejects with CONFIG_INVALID (listing every problem) if the config is invalid. */
  async start(): Promise<void> {
    if (this.started) throw new Error('LocalConfigSource already started');
    this.started = true;
    // Watch before the first read so that a change made during the read is not missed.
    if (this.opts.path !== undefined && this.opts.watch !== false) this.startWatching(this.opts.path);
    const problems = await this.loadOnce(true);
    if (problems) {
      this.stopWatching();
      this.closed = true;
      const list = problems.map((p) => `  ${formatProblem(p)}`).join('\n');
      throw new ZtunnelError('CONFIG_INVALID', `invalid local config ${this.fileName}:\n${list}`);
    }
  }

  /** Stops watching; an in-flight reload finishes without applying. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopWatching();
    await this.inFlight;
  }

  /** The snapshot in force (after transform), or undefined before the first successful load. */
  current(): LocalConfigSnapshot | undefined {
    return this.applied;
  }

  /** Problems of the last rejected load; empty once a load succeeds. */
  lastErrors(): LocalConfigProblem[] {
    return [...this.errors];
  }

  /** The text of the config in force (echoed as `staticConfig` in /config_dump, config.md §1). */
  rawText(): string | undefined {
    return this.appliedText;
  }

  private startWatching(path: string): void {
    // Watch the directory, not the file: editors and ConfigMap updates replace the file by
    // rename, which would leave a file watch on the old inode. Every rename in the directory
    // schedules a check (a ConfigMap swaps its `..data` link), and so does a change of the file
    // itself or of the file it links to in the same directory; an unchanged text is a no-op.
    // Changes of other files are not looked at: a log file written next to the config would
    // otherwise wake this thread for every write (issue 12).
    const dir = dirname(resolve(path));
    let names = watchedNames(path, dir);
    try {
      this.watcher = watch(dir, { persistent: false }, (event, file) => {
        if (event === 'rename') names = watchedNames(path, dir); // a link may point elsewhere now
        else if (typeof file === 'string' && !names.has(file)) return;
        this.schedule();
      });
      this.watcher.on('error', (e) => this.opts.logger.warn({ file: this.fileName, err: e }, 'local config watch failed; changes are no longer picked up'));
    } catch (e) {
      this.opts.logger.warn({ file: this.fileName, err: e }, 'cannot watch local config; changes will not be picked up');
    }
  }

  private stopWatching(): void {
    this.watcher?.close();
    this.watcher = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.runReload();
    }, this.debounceMs);
  }

  /** One reload at a time; events during a reload cause exactly one more. */
  private runReload(): void {
    if (this.closed) return;
    if (this.inFlight) {
      this.rerun = true;
      return;
    }
    this.inFlight = (async () => {
      do {
        this.rerun = false;
        await this.loadOnce(false);
      } while (this.rerun && !this.closed);
    })()
      .catch((e: unknown) => this.opts.logger.error({ file: this.fileName, err: e }, 'local config reload failed unexpectedly'))
      .finally(() => {
        this.inFlight = undefined;
      });
  }

  /** Reads, validates and applies. Returns the problems when the load was rejected. */
  private async loadOnce(initial: boolean): Promise<LocalConfigProblem[] | undefined> {
    let text: string;
    if (this.opts.inline !== undefined) {
      text = this.opts.inline;
    } else {
      // A writer (`generator > local.yaml`) truncates, then writes: wait until it is done.
      if (!initial) await settle(this.opts.path!, this.limits);
      const read = await readRegularFile(this.opts.path!, this.limits);
      if (typeof read !== 'string') {
        this.attemptedText = undefined; // the file's return must trigger a load even if unchanged
        return this.reject([fileProblem(this.fileName, read.problem)], initial);
      }
      text = read;
    }
    if (this.closed && !initial) return undefined;
    if (!initial && text === this.attemptedText) return undefined;
    this.attemptedText = text;

    const result = await this.validate(text, initial);
    if (!result.ok) return this.reject(result.errors, initial);
    if (this.closed && !initial) return undefined;
    this.apply(result.value, text, initial);
    return undefined;
  }

  private async validate(text: string, initial: boolean): Promise<Validated> {
    const { logger } = this.opts;
    const parsed = await parseLocalConfigOffThread(text, this.fileName, this.limits);
    for (const w of parsed.warnings) logger.warn({ file: w.file, line: w.line, path: w.path }, formatProblem(w));
    if (!parsed.ok) return parsed;
    // An empty file is what a reader sees in the middle of `generator > local.yaml`: on a reload
    // it is refused like a missing file and the config in force stays (issue 16 item 8). A first
    // load may be empty (no workloads yet).
    if (parsed.documents === 0 && !initial) {
      return { ok: false, errors: [fileProblem(this.fileName, 'the file is empty (no YAML document, or only comments); treated like a missing file')] };
    }
    if (!this.opts.transform) return parsed;
    try {
      const t = this.opts.transform(parsed.value);
      if (!t.ok) return t;
      for (const w of t.warnings) logger.warn({ file: w.file, line: w.line, path: w.path }, formatProblem(w));
      return t;
    } catch (e) {
      const message = `translating the file failed: ${e instanceof Error ? e.message : String(e)}`;
      return { ok: false, errors: [{ file: this.fileName, line: 0, path: '', message, severity: 'error' }] };
    }
  }

  private reject(problems: LocalConfigProblem[], initial: boolean): LocalConfigProblem[] {
    this.errors = problems;
    if (initial) return problems; // start() reports them in its rejection
    const { logger } = this.opts;
    for (const p of problems) logger.error({ file: p.file, line: p.line, path: p.path }, formatProblem(p));
    logger.error({ file: this.fileName, errors: problems.length }, 'local config reload rejected; the last good config stays in force');
    this.opts.onReloadFailure?.(problems);
    return problems;
  }

  private apply(snapshot: LocalConfigSnapshot, text: string, initial: boolean): void {
    const next: AppliedIndex = { workloads: new Map(), services: new Map(), policies: new Map() };
    const batch: StateBatch = {
      workloads: diff(this.appliedIndex.workloads, next.workloads, snapshot.workloads, (w) => w.uid),
      services: diff(this.appliedIndex.services, next.services, snapshot.services, serviceKey),
      policies: diff(this.appliedIndex.policies, next.policies, snapshot.policies, policyKey),
    };
    const changed = [batch.workloads, batch.services, batch.policies].some((b) => b!.upsert.length > 0 || b!.remove.length > 0);
    // The first load is always applied (even when empty) so the sink sees the local source arrive.
    if (initial || changed) this.opts.sink.apply(batch);
    this.appliedIndex = next;
    this.applied = snapshot;
    this.appliedText = text;
    this.errors = [];
    this.opts.logger.info(
      {
        file: this.fileName,
        workloads: snapshot.workloads.length,
        services: snapshot.services.length,
        policies: snapshot.policies.length,
        upserts: batch.workloads!.upsert.length + batch.services!.upsert.length + batch.policies!.upsert.length,
        removals: batch.workloads!.remove.length + batch.services!.remove.length + batch.policies!.remove.length,
      },
      initial ? 'local config loaded' : 'local config reloaded',
    );
    this.opts.onApplied?.(snapshot);
  }
}

/** Upserts what is new or changed, removes what is gone; fills `next` with the new fingerprints. */
function diff<T>(prev: ReadonlyMap<string, string>, next: Map<string, string>, items: readonly T[], keyOf: (v: T) => string): { upsert: T[]; remove: string[] } {
  const upsert: T[] = [];
  for (const item of items) {
    const key = keyOf(item);
    const fp = fingerprint(item);
    next.set(key, fp);
    if (prev.get(key) !== fp) upsert.push(item);
  }
  const remove = [...prev.keys()].filter((k) => !next.has(k));
  return { upsert, remove };
}

/** Stable text form of a model value (Maps and byte arrays included) for change detection. */
function fingerprint(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v instanceof Map) return { $map: [...v.entries()].sort(([a], [b]) => (String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0)) };
    if (v instanceof Uint8Array) return { $bytes: [...v] };
    return v;
  });
}

/** What a Stats is, for a message ("a FIFO"). */
function fileKind(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * Reads the config file: a regular file only (a FIFO would block a read forever, /dev/zero never
 * ends), at most `maxBytes`, within `readTimeoutMs`. Opened non-blocking so that opening a FIFO
 * returns at once; the kind is checked on the opened descriptor, after symlinks are followed.
 * Returns the text or a problem to report.
 */
export async function readRegularFile(path: string, limits: Pick<FileLimits, 'maxBytes' | 'readTimeoutMs'>): Promise<string | { problem: string }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<{ problem: string }>((res) => {
    timer = setTimeout(() => res({ problem: `reading the file took longer than ${limits.readTimeoutMs / 1000} s` }), limits.readTimeoutMs);
  });
  const read = (async (): Promise<string | { problem: string }> => {
    let fh;
    try {
      fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
    } catch (e) {
      return { problem: `cannot read the file (${(e as NodeJS.ErrnoException).code ?? String(e)})` };
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) return { problem: `the path is ${fileKind(st)}; only a regular file is read` };
      if (st.size > limits.maxBytes) return { problem: `the file is ${st.size} bytes, more than the limit of ${limits.maxBytes}` };
      // Read to the end, not just st.size: the file may grow while it is read.
      const chunks: Buffer[] = [];
      let total = 0;
      for (;;) {
        const size = chunks.length === 0 ? Math.min(st.size, limits.maxBytes) + 1 : 64 * 1024;
        const { bytesRead, buffer } = await fh.read({ buffer: Buffer.allocUnsafe(size) });
        if (bytesRead === 0) break;
        total += bytesRead;
        if (total > limits.maxBytes) return { problem: `the file grew past the limit of ${limits.maxBytes} bytes while it was read` };
        chunks.push(buffer.subarray(0, bytesRead));
      }
      return Buffer.concat(chunks, total).toString('utf8');
    } catch (e) {
      return { problem: `cannot read the file (${(e as NodeJS.ErrnoException).code ?? String(e)})` };
    } finally {
      await fh.close().catch(() => undefined);
    }
  })();
  try {
    return await Promise.race([read, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Size, mtime and inode, or null when the path cannot be stat'ed. */
async function fileState(path: string): Promise<string | null> {
  try {
    const st = await stat(path, { bigint: true });
    return `${st.ino}:${st.size}:${st.mtimeNs}`;
  } catch {
    return null;
  }
}

/** The names in `dir` whose change can change the config: its own, and the file it links to there. */
function watchedNames(path: string, dir: string): Set<string> {
  const names = new Set([basename(path)]);
  try {
    const real = realpathSync(path);
    // The directory's own path may hold a link too (e.g. /tmp → /private/tmp): compare real paths.
    if (dirname(real) === dir || dirname(real) === realpathSync(dir)) names.add(basename(real));
  } catch {
    // not there (yet): its own name is what a later event carries
  }
  return names;
}

/** Waits until the file has not changed for `settleMs` (at most `settleMaxWaitMs`). */
async function settle(path: string, limits: Pick<FileLimits, 'settleMs' | 'settleMaxWaitMs'>): Promise<void> {
  const until = Date.now() + limits.settleMaxWaitMs;
  let before = await fileState(path);
  while (Date.now() < until) {
    await delay(limits.settleMs);
    const now = await fileState(path);
    if (now === before) return;
    before = now;
  }
}
