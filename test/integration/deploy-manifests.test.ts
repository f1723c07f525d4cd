// The Kubernetes manifests under deploy/ and the Dockerfile, checked against what the daemon
// actually reads: every YAML document parses and has apiVersion/kind/metadata.name; workload
// controllers select their own pods, declare valid ports and a readiness probe on a declared port;
// every env var a manifest sets is one the daemon reads (config/options.ts: OPTION_LIST names and
// aliases, ENV_PREFIXES families, and the few names read directly), so a typo fails here; the
// literal env of each container loads into a valid Config. The ztunnel DaemonSet is then held to
// what an Istio ambient install expects (spec/xds.md §1 §7, spec/config.md §5,
// spec/ports-and-modes.md §1 §4 §5).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import t, { type Test } from 'tap';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { ENV_PREFIXES, OPTION_LIST } from '../../src/config/options.js';
import { DAEMON_NODE_FLAGS } from '../../bench/lib/daemon-flags.js';
import { REPO_ROOT } from '../helpers/daemon.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const obj = (v: unknown): Obj => (isObj(v) ? v : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

// ---- what the daemon reads ---------------------------------------------------------------------

/** Read directly, outside the option table (src/config/load.ts). */
const DIRECT_ENV = ['KUBERNETES_SERVICE_HOST'];
const KNOWN_ENV = new Set([...OPTION_LIST.flatMap((o) => [o.env, ...(o.envAliases ?? [])]), ...DIRECT_ENV]);

/** Undefined when `name` is an env var the daemon reads, else why not. */
function unknownEnvReason(name: string): string | undefined {
  if (KNOWN_ENV.has(name)) return undefined;
  const family = ENV_PREFIXES.find((p) => name.startsWith(p.prefix));
  if (family) return name.length > family.prefix.length ? undefined : `${name}: the ${family.prefix}<NAME> family needs a name after the prefix`;
  return `${name}: not an env var ztunnel-ts reads (typo?)`;
}

t.test('the env-name check accepts what the daemon reads and rejects typos', async (t) => {
  const rows: [string, boolean][] = [
    ['XDS_ADDRESS', true],
    ['CLUSTER_ID', true], // alias of ISTIO_META_CLUSTER_ID
    ['ISTIO_META_CLUSTER_ID', true],
    ['ISTIO_META_DNS_CAPTURE', true],
    ['XDS_HEADER_X_TENANT', true],
    ['KUBERNETES_SERVICE_HOST', true],
    ['XDS_ADRESS', false],
    ['CA_ROOT_CERT', false],
    ['AUTH_TOKEN_PATH', false],
    ['ISTIO_META_', false],
    ['INPOD_ENABLED', false], // Istio's chart sets it; ztunnel-ts does not read it
  ];
  for (const [name, ok] of rows) t.equal(unknownEnvReason(name) === undefined, ok, `${name} is ${ok ? 'accepted' : 'rejected'}`);
});

// ---- the manifests -----------------------------------------------------------------------------

interface Doc {
  readonly file: string;
  readonly index: number;
  readonly value: Obj;
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).sort().flatMap((n) => {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) return yamlFiles(p);
    return /\.ya?ml$/.test(n) ? [p] : [];
  });
}

const DEPLOY = join(REPO_ROOT, 'deploy');
// deploy/helm/ holds values for Istio's Helm chart, not manifests: helm.test.ts renders them.
const files = yamlFiles(DEPLOY).filter((f) => !relative(DEPLOY, f).startsWith('helm/'));
const docs: Doc[] = [];
const parseErrors: string[] = [];
for (const file of files) {
  const name = relative(REPO_ROOT, file);
  parseAllDocuments(readFileSync(file, 'utf8')).forEach((d, index) => {
    for (const e of d.errors) parseErrors.push(`${name} document ${index + 1}: ${e.message}`);
    const value: unknown = d.toJS();
    if (value === null || value === undefined) return; // an empty document (e.g. after a trailing ---)
    docs.push({ file: name, index, value: obj(value) });
  });
}
const where = (d: Doc) => `${d.file}#${d.index + 1} ${str(d.value['kind']) ?? '?'}/${str(obj(d.value['metadata'])['name']) ?? '?'}`;

t.test('every YAML document under deploy/ parses and names its apiVersion, kind and metadata.name', async (t) => {
  t.ok(files.some((f) => f.includes(join('deploy', 'kubernetes'))), 'deploy/kubernetes/ has manifests');
  t.same(parseErrors, [], 'no YAML errors');
  t.ok(docs.length >= 4, `${docs.length} documents`);
  for (const d of docs) {
    t.match(d.value['apiVersion'], /^([a-z0-9.-]+\/)?v\d+((alpha|beta)\d+)?$/, `${where(d)}: apiVersion`);
    t.match(d.value['kind'], /^[A-Z][A-Za-z]+$/, `${where(d)}: kind`);
    t.match(obj(d.value['metadata'])['name'], /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, `${where(d)}: metadata.name`);
  }
});

const WORKLOAD_KINDS = new Set(['DaemonSet', 'Deployment', 'StatefulSet']);
const workloads = docs.filter((d) => WORKLOAD_KINDS.has(str(d.value['kind']) ?? ''));
const podSpecOf = (d: Doc) => obj(obj(obj(d.value['spec'])['template'])['spec']);
const containersOf = (d: Doc) => [...arr(podSpecOf(d)['initContainers']), ...arr(podSpecOf(d)['containers'])].map(obj);

t.test('each controller selects its own pods and its containers declare valid ports and a readiness probe', async (t) => {
  t.ok(workloads.length >= 2, 'the dedicated Deployment and the ztunnel DaemonSet');
  for (const d of workloads) {
    const selector = obj(obj(obj(d.value['spec'])['selector'])['matchLabels']);
    const labels = obj(obj(obj(obj(d.value['spec'])['template'])['metadata'])['labels']);
    t.ok(Object.keys(selector).length > 0, `${where(d)}: a non-empty selector`);
    for (const [k, v] of Object.entries(selector)) t.equal(labels[k], v, `${where(d)}: the pod template carries selector label ${k}`);
    for (const c of arr(podSpecOf(d)['containers']).map(obj)) {
      const cname = `${where(d)} container ${str(c['name'])}`;
      t.match(c['name'], /^[a-z0-9-]+$/, `${cname}: name`);
      t.match(c['image'], /^[^\s:]+:[^\s:]+$/, `${cname}: image with a tag`);
      const ports = arr(c['ports']).map(obj);
      const numbers = ports.map((p) => p['containerPort']);
      for (const p of ports) t.ok(Number.isInteger(p['containerPort']) && (p['containerPort'] as number) > 0 && (p['containerPort'] as number) < 65536, `${cname}: port ${String(p['containerPort'])} is a valid port`);
      t.equal(new Set(numbers).size, numbers.length, `${cname}: no port declared twice`);
      t.ok(numbers.includes(15020), `${cname}: declares the metrics port 15020`);
      const probe = obj(obj(c['readinessProbe'])['httpGet']);
      t.equal(probe['path'], '/healthz/ready', `${cname}: readiness probe path`);
      t.equal(probe['port'], 15021, `${cname}: readiness probe on 15021`);
      t.ok(numbers.includes(15021), `${cname}: the probed port is declared`);
    }
  }
});

t.test('every env var set in deploy/ is one the daemon reads', async (t) => {
  let count = 0;
  for (const d of workloads) {
    for (const c of containersOf(d)) {
      for (const e of arr(c['env']).map(obj)) {
        count++;
        const name = str(e['name']) ?? '';
        t.equal(unknownEnvReason(name), undefined, `${where(d)} container ${str(c['name'])}: ${name}`);
      }
    }
  }
  t.ok(count >= 10, `${count} env entries checked`);
});

/** Downward-API values a kubelet would fill in, so a container's env can be loaded. */
const DOWNWARD: Record<string, string> = {
  'metadata.name': 'ztunnel-x7k2p',
  'metadata.namespace': 'istio-system',
  'spec.nodeName': 'node-1',
  'status.podIP': '10.244.1.7',
  'status.hostIP': '172.18.0.3',
  'spec.serviceAccountName': 'ztunnel',
};

function containerEnv(t: Test, d: Doc, c: Obj): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of arr(c['env']).map(obj)) {
    const name = str(e['name']) ?? '';
    const from = obj(e['valueFrom']);
    if (e['value'] !== undefined) {
      t.type(e['value'], 'string', `${where(d)}: ${name} is a quoted string (Kubernetes rejects numbers and booleans)`);
      env[name] = String(e['value']);
    } else if (from['fieldRef']) {
      const path = str(obj(from['fieldRef'])['fieldPath']) ?? '';
      t.ok(path in DOWNWARD, `${where(d)}: ${name} uses downward-API field ${path}`);
      env[name] = DOWNWARD[path] ?? '';
    } else if (from['resourceFieldRef']) {
      env[name] = '4'; // whole cores (divisor 1)
    } else {
      t.fail(`${where(d)}: ${name} has neither value nor a supported valueFrom`);
    }
  }
  return env;
}

t.test('each container\'s env loads into a valid daemon configuration', async (t) => {
  for (const d of workloads) {
    for (const c of arr(podSpecOf(d)['containers']).map(obj)) {
      const env = { KUBERNETES_SERVICE_HOST: '10.96.0.1', ...containerEnv(t, d, c) };
      const r = loadConfig({ flags: {}, env, cpuCount: 8, readFile: () => undefined });
      t.ok(r.ok, `${where(d)}: config is valid${r.ok ? '' : `: ${r.error.join('; ')}`}`);
    }
  }
});

// ---- the ztunnel DaemonSet ----------------------------------------------------------------------

const ds = docs.find((d) => d.value['kind'] === 'DaemonSet' && obj(d.value['metadata'])['name'] === 'ztunnel');
const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

t.test('the ztunnel DaemonSet replaces Istio\'s: namespace, name, selector, service account, image', async (t) => {
  if (!ds) return t.fail('deploy/kubernetes has a DaemonSet istio-system/ztunnel');
  t.equal(obj(ds.value['metadata'])['namespace'], 'istio-system');
  t.same(obj(obj(ds.value['spec'])['selector'])['matchLabels'], { app: 'ztunnel' }, 'Istio\'s selector (immutable on apply)');
  const pod = podSpecOf(ds);
  t.equal(pod['serviceAccountName'], 'ztunnel');
  const sa = docs.find((d) => d.value['kind'] === 'ServiceAccount' && obj(d.value['metadata'])['name'] === 'ztunnel');
  t.equal(sa && obj(sa.value['metadata'])['namespace'], 'istio-system', 'the ServiceAccount istio-system/ztunnel is defined (istiod trusts it via CA_TRUSTED_NODE_ACCOUNTS)');
  t.notOk(pod['hostNetwork'], 'hostNetwork is off');
  const c = obj(arr(pod['containers'])[0]);
  t.equal(c['image'], `ztunnel-ts:${version}`, 'image tag = package.json version');
  const labels = obj(obj(obj(ds.value['spec'])['template'])['metadata'])['labels'];
  t.match(labels, { 'istio.io/dataplane-mode': 'none', 'sidecar.istio.io/inject': 'false' }, 'ztunnel is never captured or injected');
});

t.test('the DaemonSet grants exactly the capabilities shared mode needs, without privileged mode', async (t) => {
  if (!ds) return t.fail('no DaemonSet');
  const sc = obj(obj(arr(podSpecOf(ds)['containers'])[0])['securityContext']);
  t.equal(sc['privileged'], false);
  t.equal(sc['readOnlyRootFilesystem'], true);
  const caps = obj(sc['capabilities']);
  t.same([...arr(caps['add'])].sort(), ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN'], 'NET_ADMIN, NET_RAW, SYS_ADMIN (setns)');
  t.same(caps['drop'], ['ALL'], 'everything else dropped');
  t.equal(sc['runAsUser'], 0, 'root: Kubernetes adds capabilities to the effective set of uid 0 only');
});

t.test('the DaemonSet wires istiod, its root certificate, the istio-ca token and the istio-cni socket', async (t) => {
  if (!ds) return t.fail('no DaemonSet');
  const pod = podSpecOf(ds);
  const c = obj(arr(pod['containers'])[0]);
  const env = { KUBERNETES_SERVICE_HOST: '10.96.0.1', ...containerEnv(t, ds, c) };
  const r = loadConfig({ flags: {}, env, cpuCount: 8, readFile: () => undefined });
  if (!r.ok) return t.fail(r.error.join('; '));
  const cfg = r.value;
  t.equal(cfg.proxyMode, 'shared');
  t.equal(cfg.xdsAddress, 'https://istiod.istio-system.svc:15012', 'xDS: istiod:15012 over TLS');
  t.equal(cfg.caAddress, 'https://istiod.istio-system.svc:15012', 'CA: istiod:15012 over TLS');
  t.equal(cfg.fakeCa, false);
  t.equal(cfg.clusterId, 'Kubernetes');
  t.equal(cfg.nodeName, DOWNWARD['spec.nodeName']);
  t.equal(cfg.instanceIp, DOWNWARD['status.podIP']);
  t.equal(cfg.podName, DOWNWARD['metadata.name']);
  t.equal(cfg.podNamespace, 'istio-system');
  t.equal(cfg.serviceAccount, 'ztunnel');

  // Each file the daemon reads lies in the volume that provides it.
  const mounts = arr(c['volumeMounts']).map(obj);
  const volumes = new Map(arr(pod['volumes']).map(obj).map((v) => [str(v['name']) ?? '', v]));
  for (const m of mounts) t.ok(volumes.has(str(m['name']) ?? ''), `mount ${str(m['name'])} has a volume`);
  const volumeFor = (file: string) => {
    const m = mounts.find((x) => file.startsWith(`${str(x['mountPath'])}/`));
    return m ? { sub: file.slice((str(m['mountPath']) ?? '').length + 1), volume: volumes.get(str(m['name']) ?? '') ?? {} } : undefined;
  };
  for (const file of [cfg.xdsRootCa, cfg.caRootCa]) {
    const v = volumeFor(file);
    t.equal(v?.sub, 'root-cert.pem', `${file}: the root-cert.pem key`);
    t.equal(obj(v?.volume['configMap'])['name'], 'istio-ca-root-cert', `${file}: from ConfigMap istio-ca-root-cert`);
  }
  const token = volumeFor(cfg.authToken ?? '');
  const sat = arr(obj(token?.volume['projected'])['sources']).map((s) => obj(obj(s)['serviceAccountToken'])).find((s) => s['path'] === token?.sub);
  t.ok(sat, `${cfg.authToken}: a projected service-account token`);
  t.equal(sat?.['audience'], 'istio-ca', 'token audience istio-ca');
  const uds = volumeFor(cfg.inpodUds);
  t.equal(uds?.sub, 'ztunnel.sock');
  t.equal(obj(uds?.volume['hostPath'])['path'], '/var/run/ztunnel', 'ZDS socket directory shared with istio-cni on the host');
  const writable = mounts.filter((m) => m['readOnly'] !== true).map((m) => str(m['mountPath']));
  t.same(writable.sort(), ['/tmp', '/var/run/ztunnel'], 'only the socket directory and /tmp are writable');
});

t.test('the DaemonSet is probed, scraped and drained as Istio\'s ztunnel is', async (t) => {
  if (!ds) return t.fail('no DaemonSet');
  const meta = obj(obj(obj(ds.value['spec'])['template'])['metadata']);
  t.match(obj(meta['annotations']), { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '15020', 'prometheus.io/path': '/stats/prometheus' });
  const pod = podSpecOf(ds);
  const c = obj(arr(pod['containers'])[0]);
  t.same(obj(c['readinessProbe'])['httpGet'], { path: '/healthz/ready', port: 15021 });
  t.equal(pod['terminationGracePeriodSeconds'], 30);
  const env = containerEnv(t, ds, c);
  t.equal(env['TERMINATION_GRACE_PERIOD_SECONDS'], String(pod['terminationGracePeriodSeconds']), 'the daemon knows the grace period');
  const r = loadConfig({ flags: {}, env: { KUBERNETES_SERVICE_HOST: '10.96.0.1', ...env }, cpuCount: 8, readFile: () => undefined });
  t.equal(r.ok && r.value.drainDeadlineMs, 25_000, 'drain deadline 25 s: ztunnel closes what is left before the kubelet kills it');
});

t.test('the image carries what the daemon reads at run time and runs from / like Istio\'s image', async (t) => {
  const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
  const stages = dockerfile.split(/^FROM /m).slice(1);
  t.equal(stages.length, 2, 'multi-stage: build, then runtime');
  const runtime = stages[1]!;
  for (const path of ['/proto', '/examples', '/dist/src', '/node_modules', 'ztunnel_native.node', '/package.json']) {
    t.match(runtime, new RegExp(`COPY --from=build \\S*${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`), `the runtime stage copies ${path}`);
  }
  t.match(runtime, /npm prune --omit=dev|COPY --from=build \S*node_modules/, 'production dependencies');
  t.match(stages[0]!, /npm prune --omit=dev/, 'dev dependencies pruned before the copy');
  t.match(runtime, /^WORKDIR \/\s*$/m, 'working directory / (relative Istio defaults resolve to the mounted paths)');
  t.match(runtime, /^USER 1337:1337\s*$/m, 'non-root by default');
});

t.test('the image, npm start and the benchmark run the daemon with the same Node flags', async (t) => {
  // bench/lib/daemon-flags.ts is the list; a flag changed in one place only would make the
  // benchmark measure something other than what users run (issue 7).
  const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
  const entry = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(dockerfile);
  t.ok(entry, 'the Dockerfile has an exec-form ENTRYPOINT');
  const argv = JSON.parse(entry![1]!) as string[];
  const imageFlags = argv.slice(argv.indexOf('node') + 1, argv.indexOf('/app/dist/src/main.js'));
  t.same(imageFlags, DAEMON_NODE_FLAGS, 'Dockerfile ENTRYPOINT: node <flags> /app/dist/src/main.js');

  const start = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts['start']!.split(/\s+/);
  t.same(start.slice(start.indexOf('node') + 1, start.indexOf('dist/src/main.js')), DAEMON_NODE_FLAGS, 'npm start: node <flags> dist/src/main.js run');
});
