// Run-time log levels (telemetry.md §5 /logging): one pino child per component, all kept here so a
// level change reaches loggers created earlier (pino children do not follow later parent changes).
import type { Logger } from './logger.js';
import { toPinoLevel } from './logger.js';

/** The bare levels a /logging clause may be (Istio's list). */
const BARE_LEVELS: ReadonlySet<string> = new Set(['off', 'error', 'warn', 'info', 'debug', 'trace']);

export class LogControl {
  private readonly components = new Map<string, Logger>();
  private defaultLevel: string;
  private readonly initial: { level: string; scopes: Map<string, string> };
  private scopes = new Map<string, string>();
  private readonly listeners: Array<(spec: string) => void> = [];

  /** `spec` is RUST_LOG-like: `info` or `info,access=debug,policy=trace` (or `scope:level`). */
  constructor(private readonly root: Logger, spec: string) {
    const parsed = LogControl.parse(spec);
    this.defaultLevel = parsed?.level ?? 'info';
    if (parsed) this.scopes = parsed.scopes;
    this.initial = { level: this.defaultLevel, scopes: new Map(this.scopes) };
    this.root.level = toPinoLevel(this.defaultLevel) ?? 'info';
  }

  static parse(spec: string): { level: string | undefined; scopes: Map<string, string> } | null {
    const scopes = new Map<string, string>();
    let level: string | undefined;
    for (const part of spec.split(',').map((p) => p.trim()).filter(Boolean)) {
      const m = /^([A-Za-z0-9_.:-]+?)[=:]([a-z]+)$/.exec(part);
      if (m) {
        if (!toPinoLevel(m[2]!)) return null;
        scopes.set(m[1]!, m[2]!);
      } else {
        if (!toPinoLevel(part)) return null;
        level = part;
      }
    }
    return { level, scopes };
  }

  private parseRuntime(spec: string): { level: string | undefined; scopes: Map<string, string> } | null {
    const scopes = new Map<string, string>();
    let level: string | undefined;
    for (const clause of spec.split(',')) {
      if (BARE_LEVELS.has(clause)) {
        level = clause;
        continue;
      }
      const eq = clause.indexOf('=');
      if (eq <= 0) return null;
      const scope = clause.slice(0, eq);
      const value = clause.slice(eq + 1);
      if (!toPinoLevel(value) || !(this.components.has(scope) || this.initial.scopes.has(scope))) return null;
      scopes.set(scope, value);
    }
    return { level, scopes };
  }

  component(name: string): Logger {
    let l = this.components.get(name);
    if (!l) {
      l = this.root.child({ component: name });
      l.level = toPinoLevel(this.scopes.get(name) ?? this.defaultLevel) ?? 'info';
      this.components.set(name, l);
    }
    return l;
  }

  /**
   * Applies a /logging level spec; returns false when it is invalid. As Istio's ztunnel: each
   * comma-separated clause is a bare level or `<scope>=<level>` (the `<scope>:<level>` form is
   * refused). Unlike Istio, whose filter keeps any target name, a scope must be one of our
   * components: each accepted scope is kept for good, so unknown names would grow without bound.
   */
  apply(spec: string): boolean {
    const parsed = this.parseRuntime(spec);
    if (!parsed) return false;
    if (parsed.level) this.defaultLevel = parsed.level;
    for (const [k, v] of parsed.scopes) this.scopes.set(k, v);
    this.refresh();
    return true;
  }

  reset(): void {
    this.defaultLevel = this.initial.level;
    this.scopes = new Map(this.initial.scopes);
    this.refresh();
  }

  describe(): string {
    const scoped = [...this.scopes].map(([k, v]) => `${k}=${v}`); // as RUST_LOG / EnvFilter print it
    return [this.defaultLevel, ...scoped].join(',');
  }

  /** Called with describe() after every change (data-plane workers follow the main thread's levels). */
  onChange(cb: (spec: string) => void): void {
    this.listeners.push(cb);
  }

  private refresh(): void {
    for (const cb of this.listeners) cb(this.describe());
    this.root.level = toPinoLevel(this.defaultLevel) ?? 'info';
    for (const [name, l] of this.components) l.level = toPinoLevel(this.scopes.get(name) ?? this.defaultLevel) ?? 'info';
  }
}
