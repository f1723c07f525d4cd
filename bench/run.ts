// The benchmark harness (issue 7): runs every scenario in one invocation so the results compare
// as ratios, prints a table, writes bench/results/<date>.json and bench/results/latest.json.
// See bench/README.md for the method. Usage: npm run bench -- [--quick] [options]; --help lists them.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { installExitHandlers, stopChild, track } from './lib/children.js';
import { DAEMON_NODE_FLAGS } from './lib/daemon-flags.js';
import { bulkOnce, connRateOnce, idleConnections, pingPongOnce, rssOfProxies, type BulkRep, type ConnRateRep } from './lib/measure.js';
import { machineFacts } from './lib/proc-stats.js';
import { computeRatios, evaluateTargets, formatReport, type BenchReport, type BulkSummary, type ConfigApplyResult, type ScenarioResult } from './lib/report.js';
import { SCENARIO_TITLES, netnsAvailability, setupDirect, setupH2Pipe, setupNetns, setupTlsPipe, setupZtunnelPair, type Bed, type BedContext, type ScenarioId } from './lib/scenarios.js';
import { median, summarizeLatency } from './lib/stats.js';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url)); // dist/bench
const REPO_ROOT = path.resolve(BENCH_DIR, '..', '..');
const MAIN_JS = path.join(REPO_ROOT, 'dist', 'src', 'main.js');
const ALL_SCENARIOS: ScenarioId[] = ['s1', 's2', 's2h', 's3', 's4'];
const ALL_MEASUREMENTS = ['bulk', 'latency', 'connrate', 'idle', 'config', 'policy'] as const;
type Measurement = (typeof ALL_MEASUREMENTS)[number];

const HELP = `usage: npm run bench -- [options]
  --quick              short run (< 2 min): 1 repetition, 2 s windows, 20k round trips (7 s bound), 500 idle connections
  --scenarios s1,s2,.. scenarios to run (default all: s1 direct, s2 TLS pipe, s2h HTTP/2 CONNECT pipe,
                       s3 ztunnel-ts, s4 netns)
  --only bulk,latency,connrate,idle,config,policy   measurements to run (default all)
  --reps N             repetitions of each throughput / latency / conn-rate measurement
  --idle N             idle tunneled connections to hold (default 5000, quick 1000)
  --log-level SPEC     RUST_LOG of the daemons (default info,access=warn: no access logs)
  --profile-dir DIR    run the proxies with --cpu-prof, profiles written to DIR on exit
  --daemon-node-flags "F"  Node flags of the ztunnel-ts daemons (default: the deployed ones, "${DAEMON_NODE_FLAGS.join(' ')}")
  --out DIR            where result files go (default bench/results)
  --no-save            do not write result files
  --fail-on-error      exit 2 when a selected scenario or measurement failed (CI smoke run)
  --vs-istio           instead of the scenarios above: Istio's ztunnel and ztunnel-ts side by side in one
                       netns bed (root), same load client, ratios ts/Istio (bench/vs-istio.ts); with it:
  --workers 1,2        worker counts to run both implementations at (default 1 and Istio's default here)
  --rounds N           rounds, order rotating (default 3, quick 1)
  --impls direct,h2pipe,istio,ts,ts-istio,istio-ts  which beds to run (default all; h2pipe = the bare Node
                       HTTP/2 pipe of s2h; ts-istio = ztunnel-ts on A with Istio's ztunnel on B, istio-ts
                       the reverse: one ztunnel-ts daemon under load beside a cheap partner, at each --workers)
  --conn-clients N     concurrent clients of the connection-rate load (default 32)
  --conn-warmup-ms N   --vs-istio: load before the connection-rate window (default 6000; --quick 1000)
  --partner-workers N  worker threads of Istio's ztunnel in the mixed beds (default 1: its cheapest)
  --bulk-conns N       --vs-istio: last step of each daemon bed, bulk over N connections at once (default 4;
                       0: not run), 3 s window (2 s with --quick): cores per daemon under load
  --pingpong-warmup-ms N  --vs-istio: ping-pong warm-up, at least 1,000 round trips and N ms (default 2000)
  --pingpong-trace DIR --vs-istio: keep every ping-pong round trip with its start time, and what each
                       ztunnel-ts thread did meanwhile (GC, malloc_trim), in DIR; logs which events
                       the slowest 1% of round trips overlapped (diagnosis: adds a little overhead)`;

interface Settings {
  quick: boolean;
  reps: number;
  bulkWarmupMs: number;
  bulkDurationMs: number;
  pingWarmupRoundTrips: number;
  pingRoundTrips: number;
  pingMaxDurationMs: number;
  connConcurrency: number;
  connWarmupMs: number;
  connDurationMs: number;
  idleConnections: number;
  settleMs: number;
  idleRssSettleMs: number;
  configRuns: number;
  logLevel: string;
  scenarios: ScenarioId[];
  measurements: Measurement[];
  profileDir: string | null;
  daemonNodeFlags: string[];
  failOnError: boolean;
  outDir: string;
  save: boolean;
}

function parseArgs(argv: string[]): Settings {
  const has = (f: string) => argv.includes(f);
  const val = (f: string): string | undefined => {
    const i = argv.indexOf(f);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  if (has('--help') || has('-h')) {
    console.log(HELP);
    process.exit(0);
  }
  const known = new Set(['--quick', '--scenarios', '--only', '--reps', '--idle', '--log-level', '--profile-dir', '--out', '--no-save', '--daemon-node-flags', '--fail-on-error', '--vs-istio', '--workers', '--rounds', '--impls', '--conn-clients', '--partner-workers', '--conn-warmup-ms', '--pingpong-trace', '--bulk-conns', '--pingpong-warmup-ms']);
  const takesValue = new Set(['--scenarios', '--only', '--reps', '--idle', '--log-level', '--profile-dir', '--out', '--daemon-node-flags', '--workers', '--rounds', '--impls', '--conn-clients', '--partner-workers', '--conn-warmup-ms', '--pingpong-trace', '--bulk-conns', '--pingpong-warmup-ms']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--') && !known.has(a)) throw new Error(`unknown option ${a}\n${HELP}`);
    if (takesValue.has(a)) i++; // its value may itself start with "--" (--daemon-node-flags)
  }
  const quick = has('--quick');
  const list = <T extends string>(f: string, all: readonly T[]): T[] => {
    const v = val(f);
    if (!v) return [...all];
    const items = v.split(',').map((s) => s.trim()) as T[];
    for (const i of items) if (!all.includes(i)) throw new Error(`${f}: unknown value ${i} (known: ${all.join(', ')})`);
    return items;
  };
  const num = (f: string, def: number) => {
    const v = val(f);
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${f} needs a positive integer`);
    return n;
  };
  return {
    quick,
    reps: num('--reps', quick ? 1 : 3),
    bulkWarmupMs: quick ? 500 : 1000,
    bulkDurationMs: quick ? 2000 : 5000,
    pingWarmupRoundTrips: quick ? 500 : 2000,
    pingRoundTrips: 20_000,
    pingMaxDurationMs: quick ? 7_000 : 20_000,
    connConcurrency: 32,
    connWarmupMs: quick ? 500 : 1000,
    connDurationMs: quick ? 2000 : 5000,
    idleConnections: num('--idle', quick ? 500 : 5000),
    settleMs: quick ? 1000 : 2000,
    // V8 gives back the young generation it grew during start-up only once its memory reducer has
    // seen the process idle for a while (measured: ~81 MB at 3 and 10 s, ~71 MB from 20 s on), so a
    // full run samples "idle" RSS after 25 s; a quick run cannot wait that long and reads high.
    idleRssSettleMs: quick ? 1000 : 25_000,
    configRuns: quick ? 2 : 6,
    // The ready line (with the bound addresses) is INFO; access logs (INFO, one per connection) would
    // dominate the measurement, so only their component is raised to warn.
    logLevel: val('--log-level') ?? 'info,access=warn',
    scenarios: list('--scenarios', ALL_SCENARIOS),
    measurements: list('--only', ALL_MEASUREMENTS),
    profileDir: val('--profile-dir') ? path.resolve(val('--profile-dir')!) : null,
    // The daemons run with the Node flags they are deployed with (Dockerfile ENTRYPOINT, npm start).
    daemonNodeFlags: (val('--daemon-node-flags') ?? DAEMON_NODE_FLAGS.join(' ')).split(' ').filter(Boolean),
    outDir: path.resolve(val('--out') ?? path.join(REPO_ROOT, 'bench', 'results')),
    save: !has('--no-save'),
    failOnError: has('--fail-on-error'),
  };
}

const errMsg = (e: unknown) => (e instanceof Error ? e.message : String(e));
const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);

/** Runs a compiled bench script with node and returns the last JSON line of its stdout. */
function runJsonScript(script: string, args: string[], timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const child = track(spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => {
      void stopChild(child);
      reject(new Error(`${path.basename(script)} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      const lines = out.trim().split('\n').reverse();
      for (const l of lines) {
        try {
          const v = JSON.parse(l) as unknown;
          if (v && typeof v === 'object') return resolve(v);
        } catch {
          // not JSON
        }
      }
      reject(new Error(`${path.basename(script)} exited with ${code} and printed no JSON line${err ? `; stderr: ${err.trim().slice(-500)}` : ''}`));
    });
  });
}

/** Finds the per-decision time in the policy benchmark's JSON line (its format is its own). */
function decisionMicros(raw: unknown): { decisionUs: number | null; field: string | null } {
  const flat: Array<[string, number]> = [];
  const walk = (o: unknown, prefix: string) => {
    if (!o || typeof o !== 'object') return;
    for (const [k, v] of Object.entries(o as Record<string, unknown>)) {
      if (typeof v === 'number') flat.push([prefix + k, v]);
      else if (v && typeof v === 'object' && !Array.isArray(v)) walk(v, `${prefix}${k}.`);
    }
  };
  walk(raw, '');
  // bench/policy-decision.ts names its headline number policyDecisionNs (worst case: every policy walked).
  const headline = flat.find(([k]) => k === 'policyDecisionNs');
  if (headline) return { decisionUs: headline[1] / 1000, field: headline[0] };
  const pick = (re: RegExp) => flat.find(([k]) => re.test(k));
  const us = pick(/median.*(us|micros)$/i) ?? pick(/p50.*(us|micros)$/i) ?? pick(/(Us|_us|Micros|micros)$/);
  if (us) return { decisionUs: us[1], field: us[0] };
  const ns = pick(/median.*(ns|nanos)$/i) ?? pick(/p50.*(ns|nanos)$/i) ?? pick(/(Ns|_ns|Nanos|nanos)$/);
  if (ns) return { decisionUs: ns[1] / 1000, field: ns[0] };
  return { decisionUs: null, field: null };
}

function summarizeBulk(connections: number, reps: BulkRep[]): BulkSummary {
  const perCpu = reps.map((r) => r.bytesPerProxyCpuSecond).filter((x): x is number => x !== null);
  return {
    connections,
    reps,
    gbitPerSec: median(reps.map((r) => r.gbitPerSec)),
    bytesPerProxyCpuSecond: perCpu.length ? median(perCpu) : null,
  };
}

function summarizeConnRate(concurrency: number, reps: ConnRateRep[]): NonNullable<ScenarioResult['connRate']> {
  const names = Object.keys(reps[0]?.cpuUsPerConnection ?? {});
  const cpu: Record<string, number> = {};
  for (const n of names) cpu[n] = median(reps.map((r) => r.cpuUsPerConnection[n]!));
  return { concurrency, reps, perSec: median(reps.map((r) => r.perSec)), cpuUsPerConnection: cpu };
}

/** Istio's default worker count on this machine (config.rs: max(2, ⌈cores / 4⌉) without CPU limits). */
function istioDefaultWorkers(): number {
  return Math.max(2, Math.ceil(os.cpus().length / 4));
}

async function mainVsIstio(argv: string[]): Promise<number> {
  const val = (f: string): string | undefined => {
    const i = argv.indexOf(f);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const quick = argv.includes('--quick');
  const workers = (val('--workers') ?? `1,${istioDefaultWorkers()}`).split(',').map(Number);
  if (workers.some((w) => !Number.isInteger(w) || w < 1)) throw new Error('--workers takes positive integers, e.g. 1,2');
  const rounds = Number(val('--rounds') ?? (quick ? 1 : 3));
  const { runVsIstio, IMPLS } = await import('./vs-istio.js');
  const impls = (val('--impls') ?? IMPLS.join(',')).split(',') as Array<(typeof IMPLS)[number]>;
  if (impls.some((i) => !IMPLS.includes(i))) throw new Error(`--impls takes ${IMPLS.join(', ')}`);
  const connConcurrency = Number(val('--conn-clients') ?? 32);
  if (!Number.isInteger(connConcurrency) || connConcurrency < 1) throw new Error('--conn-clients takes a positive integer');
  // The mixed beds' Istio side: by default one worker, its cheapest per connection (it stays far below a core).
  const connWarmupMs = Number(val('--conn-warmup-ms') ?? (quick ? 1000 : 6000));
  if (!Number.isInteger(connWarmupMs) || connWarmupMs < 0) throw new Error('--conn-warmup-ms takes a whole number of milliseconds');
  const partnerWorkers = Number(val('--partner-workers') ?? 1);
  const bulkConnections = Number(val('--bulk-conns') ?? 4);
  if (!Number.isInteger(bulkConnections) || bulkConnections < 0) throw new Error('--bulk-conns takes a whole number (0: no parallel bulk)');
  if (!Number.isInteger(partnerWorkers) || partnerWorkers < 1) throw new Error('--partner-workers takes a positive integer');
  return runVsIstio({
    quick,
    impls,
    rounds,
    workers: [...new Set(workers)],
    connConcurrency,
    partnerWorkers,
    durationMs: quick ? 3000 : 10_000,
    warmupMs: 1000,
    // Connections are measured once V8 has compiled the connection path (for ztunnel-ts that takes
    // a few seconds of load; Istio's ztunnel gets the same warm-up), as a long-running DaemonSet is.
    connWarmupMs,
    idleConnections: Number(val('--idle') ?? (quick ? 500 : 2000)),
    // Default logging on both (one access-log line per connection), as users run them.
    logLevel: val('--log-level') ?? 'info',
    save: !argv.includes('--no-save'),
    outDir: path.resolve(val('--out') ?? path.join(REPO_ROOT, 'bench', 'results')),
    failOnError: argv.includes('--fail-on-error'),
    pingWarmupMs: Number(val('--pingpong-warmup-ms') ?? 2000),
    bulkConnections,
    bulkParallelMs: quick ? 2000 : 3000,
    ...(val('--pingpong-trace') ? { pingPongTraceDir: path.resolve(val('--pingpong-trace')!) } : {}),
  });
}

async function main(): Promise<number> {
  const settings = parseArgs(process.argv.slice(2));
  installExitHandlers();
  if (process.argv.includes('--vs-istio')) return mainVsIstio(process.argv.slice(2));
  const t0 = Date.now();
  const date = new Date().toISOString();
  const machine = machineFacts(REPO_ROOT);
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'ztunnel-bench-'));
  process.on('exit', () => rmSync(workDir, { recursive: true, force: true }));
  if (settings.profileDir) mkdirSync(settings.profileDir, { recursive: true });
  const ctx: BedContext = {
    benchDir: BENCH_DIR,
    mainJs: MAIN_JS,
    workDir,
    logLevel: settings.logLevel,
    proxyExecArgv: settings.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${settings.profileDir}`] : [],
    daemonNodeFlags: settings.daemonNodeFlags,
  };
  const want = (m: Measurement) => settings.measurements.includes(m);
  log(`${settings.quick ? 'quick' : 'full'} run; scenarios ${settings.scenarios.join(',')}; measurements ${settings.measurements.join(',')}`);

  const scenarios = {} as Record<ScenarioId, ScenarioResult>;
  for (const id of ALL_SCENARIOS) scenarios[id] = { id, title: SCENARIO_TITLES[id], status: 'not selected', errors: [] };
  const beds: Bed[] = [];
  try {
    // ---- set up every selected bed (each failure is reported, the others go on)
    for (const id of settings.scenarios) {
      const res = scenarios[id];
      const ts = Date.now();
      try {
        let bed: Bed;
        if (id === 's1') bed = await setupDirect(ctx);
        else if (id === 's2') bed = await setupTlsPipe(ctx);
        else if (id === 's2h') bed = await setupH2Pipe(ctx);
        else if (id === 's3') bed = await setupZtunnelPair(ctx);
        else {
          const avail = netnsAvailability(BENCH_DIR);
          if (!avail.ok) {
            res.status = 'skipped';
            res.note = avail.reason;
            log(`s4: ${avail.reason}`);
            continue;
          }
          bed = await setupNetns(ctx, avail.module);
        }
        beds.push(bed);
        res.status = 'ok';
        res.setupSeconds = (Date.now() - ts) / 1000;
        log(`${id} ${res.title}: up in ${res.setupSeconds.toFixed(1)} s`);
      } catch (e) {
        res.status = 'failed';
        res.note = 'setup failed';
        res.errors.push(errMsg(e));
        log(`${id} ${res.title}: setup FAILED: ${errMsg(e).split('\n')[0]}`);
      }
    }

    // ---- idle RSS right after start-up
    await new Promise((r) => setTimeout(r, settings.idleRssSettleMs));
    for (const bed of beds) if (bed.proxies.length) scenarios[bed.id].idleRssBytes = await rssOfProxies(bed);

    const recordFailure = (bed: Bed, what: string, e: unknown) => {
      const logs = bed.recentLogs?.().slice(-10) ?? [];
      scenarios[bed.id].errors.push(`${what}: ${errMsg(e)}${logs.length ? `\nlast daemon log lines:\n${logs.join('\n')}` : ''}`);
      log(`${bed.id} ${what}: FAILED: ${errMsg(e)}`);
    };

    /** Runs `fn` on each bed, `reps` times, interleaved (rep 1 of every bed, then rep 2, ...). */
    const interleaved = async <T>(what: string, fn: (bed: Bed) => Promise<T>, store: (bed: Bed, reps: T[]) => void, reps = settings.reps) => {
      const results = new Map<Bed, T[]>(beds.map((b) => [b, []]));
      const failed = new Set<Bed>();
      for (let rep = 0; rep < reps; rep++) {
        for (const bed of beds) {
          if (failed.has(bed)) continue;
          try {
            results.get(bed)!.push(await fn(bed));
          } catch (e) {
            failed.add(bed);
            recordFailure(bed, what, e);
          }
        }
      }
      for (const bed of beds) if (results.get(bed)!.length) store(bed, results.get(bed)!);
      log(`${what}: done`);
    };

    // Idle connections first, on daemons that have carried no traffic yet: after bulk transfers
    // their heaps hold freed space that new connections would reuse, hiding the per-connection cost.
    if (want('idle')) {
      for (const bed of beds.filter((b) => b.proxies.length)) {
        try {
          scenarios[bed.id].idle = await idleConnections(BENCH_DIR, bed, settings.idleConnections, Math.min(200, Math.ceil(settings.idleConnections / 10)), settings.settleMs);
          const i = scenarios[bed.id].idle!;
          if (i.opened < i.requested) scenarios[bed.id].errors.push(`idle: only ${i.opened} of ${i.requested} connections opened${i.firstError ? ` (first error: ${i.firstError})` : ''}`);
          log(`${bed.id} idle connections: ${i.opened} held`);
        } catch (e) {
          recordFailure(bed, 'idle', e);
        }
      }
    }
    if (want('bulk')) {
      for (const conns of [1, 8]) {
        await interleaved(
          `bulk ${conns} conn`,
          (bed) => bulkOnce(BENCH_DIR, bed, conns, settings.bulkWarmupMs, settings.bulkDurationMs),
          (bed, reps) => (scenarios[bed.id][conns === 1 ? 'bulk1' : 'bulk8'] = summarizeBulk(conns, reps)),
        );
      }
    }
    if (want('latency')) {
      await interleaved(
        'ping-pong',
        (bed) => pingPongOnce(BENCH_DIR, bed, { warmupRoundTrips: settings.pingWarmupRoundTrips, roundTrips: settings.pingRoundTrips, maxDurationMs: settings.pingMaxDurationMs }),
        (bed, reps) => {
          const pooled = Float64Array.from(reps.flatMap((r) => r.samplesUs));
          scenarios[bed.id].latency = {
            requestedRoundTrips: settings.pingRoundTrips * settings.reps,
            pooled: summarizeLatency(pooled),
            reps: reps.map((r) => summarizeLatency(Float64Array.from(r.samplesUs))),
          };
        },
      );
    }
    if (want('connrate')) {
      await interleaved(
        'connection rate',
        (bed) => connRateOnce(BENCH_DIR, bed, settings.connConcurrency, settings.connWarmupMs, settings.connDurationMs),
        (bed, reps) => {
          scenarios[bed.id].connRate = summarizeConnRate(settings.connConcurrency, reps);
          const failedConns = reps.reduce((n, r) => n + r.errors, 0);
          const first = reps.find((r) => r.firstError)?.firstError;
          if (failedConns) scenarios[bed.id].errors.push(`connection rate: ${failedConns} connections failed (first error: ${first})`);
        },
      );
    }
  } finally {
    await Promise.all(beds.map((b) => b.close().catch((e) => log(`closing ${b.id}: ${errMsg(e)}`))));
  }

  // ---- in-process measurements, in their own processes (fresh heaps), after the beds are gone
  let configApply: BenchReport['configApply'] = null;
  if (want('config')) {
    try {
      configApply = (await runJsonScript(path.join(BENCH_DIR, 'config-apply.js'), ['--runs', String(settings.configRuns)], 180_000)) as ConfigApplyResult;
      log('config apply: done');
    } catch (e) {
      configApply = { error: errMsg(e) };
      log(`config apply: FAILED: ${errMsg(e)}`);
    }
  }
  let policyDecision: BenchReport['policyDecision'] = null;
  if (want('policy')) {
    const script = path.join(BENCH_DIR, 'policy-decision.js');
    if (!existsSync(script)) policyDecision = { skipped: 'skipped (dist/bench/policy-decision.js not built yet)' };
    else {
      try {
        // Its only argument is the measuring time in seconds.
        const raw = await runJsonScript(script, [settings.quick ? '1' : '3'], 300_000);
        policyDecision = { raw, ...decisionMicros(raw) };
        log('policy decision: done');
      } catch (e) {
        policyDecision = { error: errMsg(e) };
        log(`policy decision: FAILED: ${errMsg(e)}`);
      }
    }
  }

  const ratios = computeRatios(scenarios);
  const report: BenchReport = {
    date,
    mode: settings.quick ? 'quick' : 'full',
    settings: { ...settings, outDir: undefined },
    machine,
    durationSeconds: (Date.now() - t0) / 1000,
    scenarios,
    configApply,
    policyDecision,
    ratios,
    targets: evaluateTargets(ratios, configApply, policyDecision),
  };
  console.log(formatReport(report));
  if (settings.save) {
    mkdirSync(settings.outDir, { recursive: true });
    const json = JSON.stringify(report, null, 2) + '\n';
    const file = path.join(settings.outDir, `${date.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}.json`);
    writeFileSync(file, json);
    writeFileSync(path.join(settings.outDir, 'latest.json'), json);
    console.log(`\nresults: ${path.relative(process.cwd(), file)} (and latest.json)`);
  }
  if (settings.failOnError) {
    // Skipped (not root, no netns bed) is not a failure; a scenario that failed or any error is.
    const failed = Object.values(scenarios).filter((r) => r.status === 'failed' || r.errors.length > 0);
    const other = [configApply, policyDecision].filter((r) => r !== null && typeof r === 'object' && 'error' in r && r.error);
    if (failed.length || other.length) {
      console.error(`bench: --fail-on-error: ${[...failed.map((r) => `${r.id} ${r.status === 'failed' ? 'failed' : r.errors[0]?.split('\n')[0]}`), ...other.map(() => 'config apply / policy benchmark failed')].join('; ')}`);
      return 2;
    }
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`bench: ${errMsg(e)}`);
    process.exit(1);
  },
);
