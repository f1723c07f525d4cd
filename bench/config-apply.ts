// "Time to apply a config of 10,000 workloads": builds a local config file (config.md §2) with
// 10,000 workloads and 1,000 services in memory, then measures, in this process, parsing it with
// parseLocalConfig and applying the result to a fresh State in one batch (State.apply). The first
// run is reported on its own (cold: nothing compiled yet); the following runs give the medians.
// parseCpuMs is the CPU time of the parse (less sensitive than wall time to a busy machine).
// offThreadParseMs times what the daemon does: the same parse on a fresh worker thread
// (xds/local-parse.ts), start-up and the copy of the result back included.
// Prints one JSON line. Usage: node config-apply.js [--workloads N] [--services N] [--runs N]
import { median } from './lib/stats.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

const workloads = arg('workloads', 10_000);
const services = arg('services', 1_000);
const runs = Math.max(2, arg('runs', 5));

/** Addresses inside 10.0.0.0/8 for config data only (nothing connects to them). */
function ip(base: number, i: number): string {
  const n = base + i;
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}

export function buildConfigYaml(workloadCount: number, serviceCount: number): string {
  const out: string[] = ['workloads:'];
  const namespaces = Math.max(1, Math.ceil(serviceCount / 10));
  for (let i = 0; i < workloadCount; i++) {
    const svc = i % serviceCount;
    const ns = `ns-${svc % namespaces}`;
    const app = `app-${svc}`;
    out.push(
      `- uid: Kubernetes//Pod/${ns}/${app}-${i}`,
      `  name: ${app}-${i}`,
      `  namespace: ${ns}`,
      `  serviceAccount: ${app}`,
      `  trustDomain: cluster.local`,
      `  clusterId: Kubernetes`,
      `  workloadIps: ["${ip(1 << 16, i)}"]`,
      `  protocol: HBONE`,
      `  node: node-${i % 50}`,
      `  workloadName: ${app}`,
      `  canonicalName: ${app}`,
      `  canonicalRevision: v1`,
      `  services:`,
      `    "${ns}/${app}.${ns}.svc.cluster.local": {80: 8080}`,
    );
  }
  out.push('services:');
  for (let s = 0; s < serviceCount; s++) {
    const ns = `ns-${s % namespaces}`;
    const app = `app-${s}`;
    out.push(
      `- name: ${app}`,
      `  namespace: ${ns}`,
      `  hostname: ${app}.${ns}.svc.cluster.local`,
      `  vips: ["/${ip(96 << 16, s)}"]`,
      `  ports: {80: 8080}`,
    );
  }
  return out.join('\n') + '\n';
}

const { parseLocalConfig } = await import('../src/xds/local-file.js');
const { State } = await import('../src/state/state.js');
const { parseLocalConfigOffThread } = await import('../src/xds/local-parse.js');

const text = buildConfigYaml(workloads, services);
const parseMs: number[] = [];
const parseCpuMs: number[] = [];
const offThreadMs: number[] = [];
const applyMs: number[] = [];
let problem: string | undefined;
for (let r = 0; r < runs && !problem; r++) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const parsed = parseLocalConfig(text, 'bench-10k.yaml');
  const t1 = performance.now();
  const c1 = process.cpuUsage(c0);
  parseCpuMs.push((c1.user + c1.system) / 1000);
  if (!parsed.ok) {
    problem = `parse failed: ${parsed.errors.slice(0, 3).map((e) => `${e.line} ${e.path}: ${e.message}`).join('; ')}`;
    break;
  }
  const snap = parsed.value;
  if (snap.workloads.length !== workloads || snap.services.length !== services) {
    problem = `parsed ${snap.workloads.length} workloads / ${snap.services.length} services, expected ${workloads} / ${services}`;
  }
  const state = new State();
  const t2 = performance.now();
  const result = state.apply({
    workloads: { upsert: snap.workloads, remove: [] },
    services: { upsert: snap.services, remove: [] },
    policies: { upsert: snap.policies, remove: [] },
  }) as unknown as { rejected?: readonly unknown[] } | undefined;
  const t3 = performance.now();
  if (result?.rejected?.length) problem = `State.apply rejected ${result.rejected.length} resources`;
  parseMs.push(t1 - t0);
  applyMs.push(t3 - t2);
  const t4 = performance.now();
  const off = await parseLocalConfigOffThread(text, 'bench-10k.yaml');
  offThreadMs.push(performance.now() - t4);
  if (!off.ok) problem = `off-thread parse failed: ${off.errors[0]?.message}`;
}

const warmParse = parseMs.slice(1);
const warmApply = applyMs.slice(1);
console.log(
  JSON.stringify({
    workloads,
    services,
    yamlBytes: Buffer.byteLength(text),
    runs: parseMs.length,
    coldParseMs: parseMs[0] ?? null,
    coldApplyMs: applyMs[0] ?? null,
    parseMs: median(warmParse),
    parseCpuMs: median(parseCpuMs.slice(1)),
    offThreadParseMs: median(offThreadMs.slice(1)),
    applyMs: median(warmApply),
    totalMs: median(warmParse.map((p, i) => p + warmApply[i]!)),
    ...(problem ? { error: problem } : {}),
  }),
);
