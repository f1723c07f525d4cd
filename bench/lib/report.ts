// The shape of a benchmark result, the targets of issue 7 evaluated on it, and the stdout table.
import type { MachineFacts } from './proc-stats.js';
import type { BulkRep, ConnRateRep, IdleMeasurement } from './measure.js';
import type { ScenarioId } from './scenarios.js';
import type { LatencySummary } from './stats.js';

export interface BulkSummary {
  connections: number;
  reps: BulkRep[];
  /** Medians over the repetitions. */
  gbitPerSec: number;
  bytesPerProxyCpuSecond: number | null;
}

export interface ScenarioResult {
  id: ScenarioId;
  title: string;
  status: 'ok' | 'failed' | 'skipped' | 'not selected';
  /** Why it failed or was skipped. */
  note?: string;
  setupSeconds?: number;
  /** RSS of each proxy right after start-up (settled), before any traffic. */
  idleRssBytes?: Record<string, number>;
  bulk1?: BulkSummary;
  bulk8?: BulkSummary;
  /** Percentiles over the round trips of all repetitions pooled; per-repetition summaries too. */
  latency?: { requestedRoundTrips: number; pooled: LatencySummary; reps: LatencySummary[] };
  connRate?: { concurrency: number; reps: ConnRateRep[]; perSec: number; cpuUsPerConnection: Record<string, number> };
  idle?: IdleMeasurement;
  /** Measurements that failed (the others still ran). */
  errors: string[];
}

export interface ConfigApplyResult {
  workloads: number;
  services: number;
  yamlBytes: number;
  runs: number;
  coldParseMs: number | null;
  coldApplyMs: number | null;
  parseMs: number;
  applyMs: number;
  totalMs: number;
  error?: string;
}

export interface TargetRow {
  name: string;
  target: string;
  measured: string;
  status: 'PASS' | 'MISS' | 'n/a';
}

export interface BenchReport {
  date: string;
  mode: 'quick' | 'full';
  settings: Record<string, unknown>;
  machine: MachineFacts;
  durationSeconds: number;
  scenarios: Record<ScenarioId, ScenarioResult>;
  configApply: ConfigApplyResult | { error: string } | null;
  policyDecision: { raw: unknown; decisionUs: number | null; field: string | null } | { skipped: string } | { error: string } | null;
  ratios: Record<string, number | null>;
  targets: TargetRow[];
}

// ------------------------------------------------------------------------------- formatting

const fin = (x: number | null | undefined): x is number => typeof x === 'number' && Number.isFinite(x);
export const fmt = (x: number | null | undefined, digits = 2): string => (fin(x) ? x.toFixed(digits) : 'n/a');
const fmtInt = (x: number | null | undefined): string => (fin(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
const perProxy = (r: Record<string, number> | undefined, f: (x: number) => string): string =>
  r && Object.keys(r).length ? Object.entries(r).map(([k, v]) => `${k} ${f(v)}`).join(' / ') : 'n/a';

// ------------------------------------------------------------------------------- ratios + targets

export function computeRatios(s: Record<ScenarioId, ScenarioResult>): Record<string, number | null> {
  const div = (a: number | null | undefined, b: number | null | undefined) => (fin(a) && fin(b) && b !== 0 ? a / b : null);
  const sub = (a: number | null | undefined, b: number | null | undefined) => (fin(a) && fin(b) ? a - b : null);
  const maxOf = (r: Record<string, number> | undefined) => (r && Object.keys(r).length ? Math.max(...Object.values(r)) : null);
  return {
    throughput1VsTlsPipe: div(s.s3.bulk1?.gbitPerSec, s.s2.bulk1?.gbitPerSec),
    throughput8VsTlsPipe: div(s.s3.bulk8?.gbitPerSec, s.s2.bulk8?.gbitPerSec),
    throughput1VsH2Pipe: div(s.s3.bulk1?.gbitPerSec, s.s2h.bulk1?.gbitPerSec),
    throughput8VsH2Pipe: div(s.s3.bulk8?.gbitPerSec, s.s2h.bulk8?.gbitPerSec),
    throughput1VsDirect: div(s.s3.bulk1?.gbitPerSec, s.s1.bulk1?.gbitPerSec),
    gbPerProxyCpuSecond1: div(s.s3.bulk1?.bytesPerProxyCpuSecond, 1e9),
    gbPerProxyCpuSecond8: div(s.s3.bulk8?.bytesPerProxyCpuSecond, 1e9),
    tlsPipeGbPerProxyCpuSecond1: div(s.s2.bulk1?.bytesPerProxyCpuSecond, 1e9),
    h2PipeGbPerProxyCpuSecond1: div(s.s2h.bulk1?.bytesPerProxyCpuSecond, 1e9),
    h2PipeGbPerProxyCpuSecond8: div(s.s2h.bulk8?.bytesPerProxyCpuSecond, 1e9),
    addedLatencyP50Us: sub(s.s3.latency?.pooled.p50Us, s.s1.latency?.pooled.p50Us),
    addedLatencyP99Us: sub(s.s3.latency?.pooled.p99Us, s.s1.latency?.pooled.p99Us),
    addedLatencyP999Us: sub(s.s3.latency?.pooled.p999Us, s.s1.latency?.pooled.p999Us),
    tlsPipeAddedLatencyP50Us: sub(s.s2.latency?.pooled.p50Us, s.s1.latency?.pooled.p50Us),
    tlsPipeAddedLatencyP99Us: sub(s.s2.latency?.pooled.p99Us, s.s1.latency?.pooled.p99Us),
    h2PipeAddedLatencyP50Us: sub(s.s2h.latency?.pooled.p50Us, s.s1.latency?.pooled.p50Us),
    h2PipeAddedLatencyP99Us: sub(s.s2h.latency?.pooled.p99Us, s.s1.latency?.pooled.p99Us),
    connPerSec: s.s3.connRate?.perSec ?? null,
    connPerSecVsDirect: div(s.s3.connRate?.perSec, s.s1.connRate?.perSec),
    kbPerIdleConnectionMax: div(maxOf(s.s3.idle?.bytesPerConnection), 1000),
    idleRssMbMax: div(maxOf(s.s3.idleRssBytes), 1e6),
    // The H2 pipe (s2h) alone: what Node's HTTP/2 + TLS cost without anything of ztunnel-ts.
    h2PipeConnPerSec: s.s2h.connRate?.perSec ?? null,
    h2PipeCpuUsPerConnectionMax: maxOf(s.s2h.connRate?.cpuUsPerConnection),
    h2PipeKbPerIdleConnectionMax: div(maxOf(s.s2h.idle?.bytesPerConnection), 1000),
    h2PipeIdleRssMbMax: div(maxOf(s.s2h.idleRssBytes), 1e6),
  };
}

export function evaluateTargets(r: Record<string, number | null>, config: BenchReport['configApply'], policy: BenchReport['policyDecision']): TargetRow[] {
  const row = (name: string, target: string, value: number | null | undefined, ok: (v: number) => boolean, show: (v: number) => string): TargetRow => ({
    name,
    target,
    measured: fin(value) ? show(value) : 'not measured',
    status: fin(value) ? (ok(value) ? 'PASS' : 'MISS') : 'n/a',
  });
  const configMs = config && 'totalMs' in config && !config.error ? config.totalMs : null;
  const policyUs = policy && 'decisionUs' in policy ? policy.decisionUs : null;
  return [
    row('throughput 1 conn vs TLS pipe', '≥ 0.95×', r['throughput1VsTlsPipe'], (v) => v >= 0.95, (v) => `${v.toFixed(2)}×`),
    row('throughput 1 conn per proxy CPU', '≥ 0.55 GB/cpu-s', r['gbPerProxyCpuSecond1'], (v) => v >= 0.55, (v) => `${v.toFixed(2)} GB/cpu-s`),
    row('added latency p50 (vs direct)', '≤ 60 µs', r['addedLatencyP50Us'], (v) => v <= 60, (v) => `+${v.toFixed(0)} µs`),
    row('added latency p99 (vs direct)', '≤ 200 µs', r['addedLatencyP99Us'], (v) => v <= 200, (v) => `+${v.toFixed(0)} µs`),
    row('new tunneled connections', '≥ 6,000/s', r['connPerSec'], (v) => v >= 6000, (v) => `${fmtInt(v)}/s`),
    row('memory per idle connection (worst daemon)', '≤ 10 KB', r['kbPerIdleConnectionMax'], (v) => v <= 10, (v) => `${v.toFixed(1)} KB`),
    row('idle RSS (worst daemon)', '≤ 60 MB', r['idleRssMbMax'], (v) => v <= 60, (v) => `${v.toFixed(1)} MB`),
    row('policy decision, 1,000 policies', '≤ 5 µs', policyUs, (v) => v <= 5, (v) => `${v.toFixed(2)} µs`),
    row('apply 10,000-workload config (parse + apply)', '≤ 250 ms', configMs, (v) => v <= 250, (v) => `${v.toFixed(0)} ms`),
  ];
}

// ----------------------------------------------------------------------------------- table

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function formatReport(rep: BenchReport): string {
  const ids = (Object.keys(rep.scenarios) as ScenarioId[]).filter((id) => rep.scenarios[id].status === 'ok');
  const sc = ids.map((id) => rep.scenarios[id]);
  const out: string[] = [];
  const m = rep.machine;
  out.push(`ztunnel-ts bench — ${rep.mode} run, ${rep.date}, ${rep.durationSeconds.toFixed(0)} s`);
  if (rep.mode === 'quick') {
    const st = rep.settings as { reps?: number; bulkDurationMs?: number; idleConnections?: number; pingMaxDurationMs?: number };
    out.push(`quick: ${st.reps} repetition(s), ${(st.bulkDurationMs ?? 0) / 1000} s windows, ${st.idleConnections} idle connections, ping-pong bounded at ${(st.pingMaxDurationMs ?? 0) / 1000} s (full run: 3, 5 s, 5,000, 20 s) — smoke numbers`);
  }
  out.push(`machine: ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.kernel}, Node ${m.node}, OpenSSL ${m.openssl}, commit ${m.gitCommit}${m.gitDirty ? '+dirty' : ''}`);
  out.push('');
  for (const id of Object.keys(rep.scenarios) as ScenarioId[]) {
    const s = rep.scenarios[id];
    const status = s.status === 'skipped' && s.note ? s.note : `${s.status}${s.note ? ` — ${s.note}` : ''}`;
    out.push(`  ${id} ${s.title}: ${status}`);
    for (const e of s.errors) {
      const lines = e.split('\n');
      out.push(`      error: ${lines[0]}`, ...lines.slice(1, 9).map((l) => `        ${l}`));
      if (lines.length > 9) out.push(`        … ${lines.length - 9} more lines in the JSON file`);
    }
  }
  out.push('');
  if (sc.length) {
    const bulk = (b: BulkSummary | undefined) => fmt(b?.gbitPerSec);
    const perCpu = (b: BulkSummary | undefined) => (b && b.bytesPerProxyCpuSecond !== null ? fmt(b.bytesPerProxyCpuSecond / 1e9) : 'n/a');
    const rows: string[][] = [
      ['bulk, 1 connection (Gbit/s)', ...sc.map((s) => bulk(s.bulk1))],
      ['  GB per proxy CPU-second', ...sc.map((s) => perCpu(s.bulk1))],
      ['bulk, 8 connections (Gbit/s)', ...sc.map((s) => bulk(s.bulk8))],
      ['  GB per proxy CPU-second', ...sc.map((s) => perCpu(s.bulk8))],
      ['ping-pong 100 B, p50 (µs)', ...sc.map((s) => fmt(s.latency?.pooled.p50Us, 0))],
      ['  p99 (µs)', ...sc.map((s) => fmt(s.latency?.pooled.p99Us, 0))],
      ['  p99.9 (µs)', ...sc.map((s) => fmt(s.latency?.pooled.p999Us, 0))],
      ['  round trips measured', ...sc.map((s) => (s.latency && s.latency.pooled.count < s.latency.requestedRoundTrips ? `${fmtInt(s.latency.pooled.count)} (time bound)` : fmtInt(s.latency?.pooled.count)))],
      [`new connections/s (${sc[0]?.connRate?.concurrency ?? 32} clients)`, ...sc.map((s) => fmtInt(s.connRate?.perSec))],
      ['  proxy CPU per connection (µs)', ...sc.map((s) => perProxy(s.connRate?.cpuUsPerConnection, (v) => v.toFixed(0)))],
      ['idle RSS after start (MB)', ...sc.map((s) => perProxy(s.idleRssBytes, (v) => (v / 1e6).toFixed(1)))],
      [`RSS with idle connections (MB)`, ...sc.map((s) => perProxy(s.idle?.rssWithBytes, (v) => (v / 1e6).toFixed(1)))],
      ['  idle connections held', ...sc.map((s) => (s.idle ? `${s.idle.opened}/${s.idle.requested}` : 'n/a'))],
      ['  KB per idle connection', ...sc.map((s) => perProxy(s.idle?.bytesPerConnection, (v) => (v / 1000).toFixed(1)))],
    ];
    out.push(table(['measurement', ...ids.map((id) => `${id} ${shortTitle(id)}`)], rows));
    out.push('');
  }
  const r = rep.ratios;
  out.push('ratios (scenario 3 against the others, same run):');
  out.push(`  throughput 1 conn vs TLS pipe ${fmt(r['throughput1VsTlsPipe'])}×, 8 conns ${fmt(r['throughput8VsTlsPipe'])}×; vs H2 pipe ${fmt(r['throughput1VsH2Pipe'])}×, 8 conns ${fmt(r['throughput8VsH2Pipe'])}×; 1 conn vs direct ${fmt(r['throughput1VsDirect'])}×`);
  out.push(`  added latency vs direct: p50 +${fmt(r['addedLatencyP50Us'], 0)} µs, p99 +${fmt(r['addedLatencyP99Us'], 0)} µs, p99.9 +${fmt(r['addedLatencyP999Us'], 0)} µs (TLS pipe: +${fmt(r['tlsPipeAddedLatencyP50Us'], 0)} / +${fmt(r['tlsPipeAddedLatencyP99Us'], 0)} µs; H2 pipe: +${fmt(r['h2PipeAddedLatencyP50Us'], 0)} / +${fmt(r['h2PipeAddedLatencyP99Us'], 0)} µs)`);
  out.push(`  new connections ${fmtInt(r['connPerSec'])}/s (${fmt(r['connPerSecVsDirect'])}× direct); ${fmt(r['kbPerIdleConnectionMax'], 1)} KB per idle connection (worst daemon)`);
  out.push(`  H2 pipe alone: ${fmt(r['h2PipeGbPerProxyCpuSecond1'])} GB per proxy CPU-second (1 conn), ${fmt(r['h2PipeGbPerProxyCpuSecond8'])} (8 conns); ${fmtInt(r['h2PipeConnPerSec'])} new connections/s at ${fmt(r['h2PipeCpuUsPerConnectionMax'], 0)} µs CPU each (worst proxy); ${fmt(r['h2PipeKbPerIdleConnectionMax'], 1)} KB per idle connection, ${fmt(r['h2PipeIdleRssMbMax'], 1)} MB idle RSS (worst proxy)`);
  out.push('');
  const c = rep.configApply;
  if (c && 'totalMs' in c) {
    out.push(`config apply: ${c.workloads.toLocaleString('en-US')} workloads + ${c.services.toLocaleString('en-US')} services (${(c.yamlBytes / 1e6).toFixed(1)} MB YAML): parse ${fmt(c.parseMs, 0)} ms + State.apply ${fmt(c.applyMs, 0)} ms = ${fmt(c.totalMs, 0)} ms (median of ${c.runs - 1} warm runs; cold first run: ${fmt(c.coldParseMs, 0)} + ${fmt(c.coldApplyMs, 0)} ms)${c.error ? ` — ERROR: ${c.error}` : ''}`);
  } else if (c) out.push(`config apply: error: ${c.error}`);
  const p = rep.policyDecision;
  if (p && 'skipped' in p) out.push(`policy decision: ${p.skipped}`);
  else if (p && 'error' in p) out.push(`policy decision: error: ${p.error}`);
  else if (p) out.push(`policy decision: ${p.decisionUs !== null ? `${fmt(p.decisionUs, 3)} µs (field ${p.field})` : 'no µs field found'}; raw ${JSON.stringify(p.raw)}`);
  out.push('');
  out.push(table(['target (issue 7)', 'target', 'measured', 'status'], rep.targets.map((t) => [t.name, t.target, t.measured, t.status])));
  if (rep.scenarios.s2h.status === 'ok') out.push("reference: the H2 pipe (s2h, 'H2 pipe alone' above) is the same tunnel without ztunnel-ts's code; s3's distance from it is ztunnel-ts's own cost.");
  return out.join('\n');
}

function shortTitle(id: ScenarioId): string {
  return { s1: 'direct', s2: 'TLS pipe', s2h: 'H2 pipe', s3: 'ztunnel', s4: 'netns' }[id];
}
