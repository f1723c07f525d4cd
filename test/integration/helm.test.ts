// deploy/helm/ztunnel-ts-values.yaml against Istio's own ztunnel chart (docs/helm.md). For several
// sets of user values (defaults; a revision on GKE with CPU limits, image pull secrets, the trust
// bundle API and CRLs; OpenShift with another cluster name and network) the chart is rendered
// twice with `helm template` — Istio's chart alone, and with our values file — and:
//   - the same objects come out, and every object but the DaemonSet is identical;
//   - the DaemonSet is compared field by field: the only differences are the image, the
//     ISTIO_META_ISTIO_VERSION env var and our two pod labels;
//   - the rendered container env, given the values Kubernetes fills in (downward API, CPU
//     resources), loads into a valid ztunnel-ts Config with Istio's meaning: shared mode, the
//     revision's istiod, the drain deadline from the grace period, worker threads from the CPU
//     resources, the version dashboards show; and every file the daemon reads is on a mounted volume.
// helm comes from $HELM, else `helm` on PATH, else it is built once from the Go module proxy
// (helm.sh/helm/v4, HELM_VERSION below) into ~/.cache/ztunnel-ts/. Istio's chart comes from
// $ISTIO_ZTUNNEL_CHART, else the istio.io/istio Go module (ISTIO_MODULE below) via `go mod download`.
// Without helm and without Go the test fails and says so; it never skips.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseAllDocuments, stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { REPO_ROOT } from '../helpers/daemon.js';

const HELM_VERSION = 'v4.3.2';
const ISTIO_MODULE = 'istio.io/istio@v0.0.0-20260827124520-eed52ebb66ad';
const OUR_VALUES = join(REPO_ROOT, 'deploy', 'helm', 'ztunnel-ts-values.yaml');
const OUR_IMAGE = 'docker.io/library/ztunnel-ts:0.1.0';
const OUR_VERSION = 'ztunnel-ts-0.1.0';
const OUR_POD_LABELS = { 'ztunnel-ts.io/version': '0.1.0', 'ztunnel-ts.io/git-revision': 'unknown' };

// Building helm on a busy 2-core machine takes minutes; a cached or given helm takes seconds.
t.setTimeout(30 * 60_000);

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const obj = (v: unknown): Obj => (isObj(v) ? v : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 120_000): { ok: boolean; out: string; err: string } {
  const r = spawnSync(cmd, args, { env, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  return { ok: r.status === 0, out: r.stdout ?? '', err: r.error ? String(r.error) : (r.stderr ?? '') };
}

/** A helm binary, or why there is none. */
function findHelm(): { helm?: string; why?: string } {
  const given = process.env['HELM'];
  if (given) return run(given, ['version', '--short']).ok ? { helm: given } : { why: `HELM=${given} does not run` };
  if (run('helm', ['version', '--short']).ok) return { helm: 'helm' };
  const dir = join(homedir(), '.cache', 'ztunnel-ts', `helm-${HELM_VERSION}`);
  const cached = join(dir, 'helm');
  if (existsSync(cached) && run(cached, ['version', '--short']).ok) return { helm: cached };
  if (!run('go', ['version']).ok) return { why: 'helm is not installed (nor $HELM) and Go is missing to build it: install Go, or helm, or set HELM' };
  mkdirSync(dir, { recursive: true });
  const built = run('go', ['install', `helm.sh/helm/v4/cmd/helm@${HELM_VERSION}`], { ...process.env, GOBIN: dir }, 25 * 60_000);
  if (!built.ok) return { why: `building helm ${HELM_VERSION} with Go failed: ${built.err.slice(-2000)}` };
  return { helm: cached };
}

/** Istio's ztunnel chart directory, or why there is none. */
function findIstioChart(): { dir?: string; why?: string } {
  const given = process.env['ISTIO_ZTUNNEL_CHART'];
  if (given) return existsSync(join(given, 'Chart.yaml')) ? { dir: given } : { why: `ISTIO_ZTUNNEL_CHART=${given} has no Chart.yaml` };
  const r = run('go', ['mod', 'download', '-json', ISTIO_MODULE], { ...process.env, GOFLAGS: '-mod=mod' }, 10 * 60_000);
  if (!r.ok) return { why: `go mod download ${ISTIO_MODULE} failed: ${(r.err || r.out).slice(-2000)}` };
  const info = JSON.parse(r.out) as { Dir?: string; Error?: string };
  if (!info.Dir) return { why: `go mod download ${ISTIO_MODULE}: ${info.Error ?? 'no Dir'}` };
  const dir = join(info.Dir, 'manifests', 'charts', 'ztunnel');
  return existsSync(join(dir, 'Chart.yaml')) ? { dir } : { why: `${dir} has no Chart.yaml` };
}

interface Rendered {
  readonly byKey: Map<string, Obj>;
}

function render(helm: string, chart: string, valueFiles: string[]): Rendered {
  const args = ['template', 'ztunnel', chart, '--namespace', 'istio-system', ...valueFiles.flatMap((f) => ['-f', f])];
  const r = run(helm, args);
  if (!r.ok) throw new Error(`helm ${args.join(' ')}: ${r.err}`);
  const byKey = new Map<string, Obj>();
  for (const d of parseAllDocuments(r.out)) {
    if (d.errors.length) throw new Error(`helm output does not parse: ${d.errors[0]!.message}`);
    const v: unknown = d.toJS();
    if (!isObj(v)) continue;
    const md = obj(v['metadata']);
    byKey.set(`${String(v['kind'])}/${String(md['namespace'] ?? '')}/${String(md['name'])}`, v);
  }
  return { byKey };
}

/** Every path where a and b differ; arrays of objects with a `name` are matched by name. */
function diff(a: unknown, b: unknown, path = ''): string[] {
  if (isObj(a) && isObj(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => diff(a[k], b[k], `${path}.${k}`));
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    const named = [...a, ...b].every((e) => isObj(e) && typeof e['name'] === 'string');
    if (named) {
      const names = [...new Set([...a, ...b].map((e) => String(obj(e)['name'])))];
      const order = (xs: unknown[]) => xs.map((e) => String(obj(e)['name'])).join(',');
      const out = names.flatMap((n) => diff(a.find((e) => obj(e)['name'] === n), b.find((e) => obj(e)['name'] === n), `${path}[${n}]`));
      // Order matters for env (later entries may refer to earlier ones).
      const common = (xs: unknown[], ys: unknown[]) => xs.filter((e) => ys.some((f) => obj(f)['name'] === obj(e)['name']));
      if (order(common(a, b)) !== order(common(b, a))) out.push(`${path} (order)`);
      return out;
    }
    if (a.length !== b.length) return [`${path} (length ${a.length} vs ${b.length})`];
    return a.flatMap((e, i) => diff(e, b[i], `${path}[${i}]`));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [path];
}

interface Scenario {
  readonly name: string;
  readonly values: Obj;
  /** CPU cores Kubernetes reports for limits.cpu when the container has no limit (node allocatable). */
  readonly nodeCores: number;
  readonly expect: { istiod: string; drainDeadlineMs: number; workerThreads: number; clusterId: string; network: string; logFormat: 'plain' | 'json' };
}

const SCENARIOS: Scenario[] = [
  {
    name: "the chart's defaults (profile ambient)",
    values: { profile: 'ambient' },
    nodeCores: 8,
    // grace 30 s → 25 s; workers max(ceil(8 × 0.25), request 200m → 1, 2) = 2
    expect: { istiod: 'https://istiod.istio-system.svc:15012', drainDeadlineMs: 25_000, workerThreads: 2, clusterId: 'Kubernetes', network: '', logFormat: 'plain' },
  },
  {
    name: 'a revision on GKE with CPU limits, pull secrets, trust-bundle API and CRLs',
    values: {
      profile: 'ambient',
      platform: 'gke',
      revision: 'canary',
      resources: { requests: { cpu: '500m', memory: '512Mi' }, limits: { cpu: '3', memory: '1Gi' } },
      imagePullSecrets: ['regcred'],
      env: { ENABLE_CLUSTER_TRUST_BUNDLE_API: true },
      trustBundleName: 'mesh-root',
      peerCaCrl: { enabled: true },
      terminationGracePeriodSeconds: 60,
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'mesh', effect: 'NoSchedule' }],
      logAsJson: true,
    },
    nodeCores: 16,
    // grace 60 s → 55 s; workers = the limit 3 (raised to the request 1)
    expect: { istiod: 'https://istiod-canary.istio-system.svc:15012', drainDeadlineMs: 55_000, workerThreads: 3, clusterId: 'Kubernetes', network: '', logFormat: 'json' },
  },
  {
    name: 'OpenShift, another cluster name and network, network policy',
    values: {
      profile: 'ambient',
      platform: 'openshift',
      multiCluster: { clusterName: 'east' },
      network: 'net-east',
      global: { networkPolicy: { enabled: true } },
      terminationGracePeriodSeconds: 8,
    },
    nodeCores: 2,
    // grace 8 s → 7 s; workers max(ceil(2 × 0.25), 1, 2) = 2
    expect: { istiod: 'https://istiod.istio-system.svc:15012', drainDeadlineMs: 7_000, workerThreads: 2, clusterId: 'east', network: 'net-east', logFormat: 'plain' },
  },
];

/** The container env as Kubernetes would hand it over (downward API and CPU resources filled in). */
function containerEnv(pod: Obj, container: Obj, nodeCores: number): Record<string, string> {
  const res = obj(container['resources']);
  const cores = (q: unknown): number | undefined => {
    if (q === undefined) return undefined;
    const s = String(q);
    return Math.ceil(s.endsWith('m') ? Number(s.slice(0, -1)) / 1000 : Number(s));
  };
  const field: Record<string, string> = {
    'metadata.name': 'ztunnel-x7k2p',
    'metadata.namespace': 'istio-system',
    'spec.nodeName': 'node-a',
    'status.podIP': '10.244.1.5',
    'spec.serviceAccountName': String(pod['serviceAccountName']),
  };
  const env: Record<string, string> = { KUBERNETES_SERVICE_HOST: '10.96.0.1' };
  for (const e of arr(container['env']).map(obj)) {
    const name = String(e['name']);
    if (e['value'] !== undefined) {
      env[name] = String(e['value']);
      continue;
    }
    const from = obj(e['valueFrom']);
    const fr = obj(from['fieldRef'])['fieldPath'];
    const rr = obj(from['resourceFieldRef'])['resource'];
    if (typeof fr === 'string') env[name] = field[fr] ?? `unknown fieldRef ${fr}`;
    else if (rr === 'limits.cpu') env[name] = String(cores(obj(res['limits'])['cpu']) ?? nodeCores);
    else if (rr === 'requests.cpu') env[name] = String(cores(obj(res['requests'])['cpu']) ?? 0);
    else env[name] = `unsupported valueFrom ${JSON.stringify(from)}`;
  }
  return env;
}

t.test('Istio ztunnel chart with deploy/helm/ztunnel-ts-values.yaml', async (t) => {
  const { helm, why: noHelm } = findHelm();
  if (!helm) return t.fail(noHelm!);
  const { dir: chart, why: noChart } = findIstioChart();
  if (!chart) return t.fail(noChart!);

  const tmp = mkdtempSync(join(tmpdir(), 'ztunnel-ts-helm-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

  for (const [i, sc] of SCENARIOS.entries()) {
    await t.test(sc.name, async (t) => {
      const userValues = join(tmp, `values-${i}.yaml`);
      writeFileSync(userValues, stringify(sc.values));
      const istio = render(helm, chart, [userValues]);
      // Ours first, the user's values last: what the user sets wins, as with any -f.
      const ours = render(helm, chart, [OUR_VALUES, userValues]);

      t.same([...ours.byKey.keys()].sort(), [...istio.byKey.keys()].sort(), 'the same objects, with the same kinds, namespaces and names');
      const dsKey = [...istio.byKey.keys()].find((k) => k.startsWith('DaemonSet/'));
      if (!dsKey) return t.fail("Istio's chart rendered no DaemonSet");
      for (const [key, value] of istio.byKey) {
        if (key === dsKey) continue;
        t.same(diff(value, ours.byKey.get(key)), [], `${key} is identical`);
      }

      const a = istio.byKey.get(dsKey)!;
      const b = ours.byKey.get(dsKey)!;
      const differences = diff(a, b);
      t.same(differences.sort(), [
        '.spec.template.metadata.labels.ztunnel-ts.io/git-revision',
        '.spec.template.metadata.labels.ztunnel-ts.io/version',
        '.spec.template.spec.containers[istio-proxy].env[ISTIO_META_ISTIO_VERSION]',
        '.spec.template.spec.containers[istio-proxy].image',
      ], `${dsKey}: field by field, only the image, the version env var and our pod labels differ`);

      const pod = obj(obj(obj(b['spec'])['template'])['spec']);
      const podLabels = obj(obj(obj(obj(b['spec'])['template'])['metadata'])['labels']);
      const container = obj(arr(pod['containers']).map(obj).find((c) => c['name'] === 'istio-proxy'));
      t.equal(container['image'], OUR_IMAGE, 'the image is ztunnel-ts');
      t.same(container['args'], ['proxy', 'ztunnel'], "the container keeps Istio's arguments (ztunnel-ts accepts `proxy ztunnel`)");
      for (const [k, v] of Object.entries(OUR_POD_LABELS)) t.equal(podLabels[k], v, `pod label ${k}`);

      // The env as the kubelet would pass it loads into a Config with Istio's meaning.
      const env = containerEnv(pod, container, sc.nodeCores);
      const loaded = loadConfig({ env, flags: {}, cpuCount: sc.nodeCores, readFile: () => undefined });
      if (!loaded.ok) return t.fail(`the rendered env does not load: ${loaded.error.join('; ')}`);
      const c = loaded.value;
      t.equal(c.proxyMode, 'shared', 'shared (in-pod) mode');
      t.equal(c.xdsAddress, sc.expect.istiod, 'xDS from the revision’s istiod');
      t.equal(c.caAddress, sc.expect.istiod, 'certificates from the revision’s istiod');
      t.equal(c.drainDeadlineMs, sc.expect.drainDeadlineMs, 'drain deadline from TERMINATION_GRACE_PERIOD_SECONDS');
      t.equal(c.workerThreads, sc.expect.workerThreads, 'worker threads from the CPU resources, with Istio’s rules');
      t.equal(c.clusterId, sc.expect.clusterId, 'cluster id');
      t.equal(c.network, sc.expect.network, 'network');
      t.equal(c.logFormat, sc.expect.logFormat, 'log format');
      t.equal(c.istioVersion, OUR_VERSION, 'istio_build{tag} / config_dump istioVersion');
      t.equal(c.inpodUds, '/var/run/ztunnel/ztunnel.sock', 'ZDS socket');

      // Every file the daemon reads sits on a volume (the root filesystem is read-only and empty).
      const mounts = arr(container['volumeMounts']).map(obj).map((m) => String(m['mountPath']));
      const onVolume = (p: string) => mounts.some((m) => p.replace(/^\.\//, '/').startsWith(`${m}/`));
      const read = [c.xdsRootCa, c.authToken ?? './var/run/secrets/tokens/istio-token', c.inpodUds, ...(c.crlPath ? [c.crlPath] : [])];
      for (const p of read) t.ok(onVolume(p), `${p} is on a mounted volume`);
    });
  }
});

t.test('the values file is what docs/helm.md shows', async (t) => {
  const doc = readFileSync(join(REPO_ROOT, 'docs', 'helm.md'), 'utf8');
  for (const line of ['hub: docker.io/library', 'image: ztunnel-ts', 'ISTIO_META_ISTIO_VERSION']) {
    t.ok(readFileSync(OUR_VALUES, 'utf8').includes(line) && doc.includes(line), `both say ${line}`);
  }
});
