// ztunnel-ts and Istio's ztunnel against istiod's real code (real-istiod: xDS server, ambient
// index, CA over a fake Kubernetes API seeded from the shared scenario.yaml), in one network
// namespace (docs/interop.md):
//  - the same /config_dump from both for the same istiod state, field by field (differences only
//    those listed in dump-compare.ts KNOWN_DIFFERENCES, explained in docs/interop.md);
//  - istioctl's own reader (istioctl-dump, Go) on both dumps: same tables, decimal serials;
//  - incremental pushes (a new policy, a deleted pod) and a removal made while ztunnel-ts was cut
//    off from istiod (reconnect with initial_resource_versions);
//  - certificates from istiod's CA: dedicated mode (the pod's own token) and shared mode
//    (ztunnel's token, impersonating the node's HBONE workloads, fetched as they arrive over xDS).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { ChildProcess } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { compareDumps, isKnown } from './dump-compare.js';
import { Netns, PEERS_DIR, REPO, WORK, findPeers, readText, until } from './peers.js';

const peers = findPeers((s) => t.comment(s));
for (const b of peers.built) t.comment(`built ${b}`);

const work = path.join(WORK, 'istiod');
const out = path.join(work, 'out');
const ns = new Netns('ztiod');
const ISTIOD = '127.0.50.1';
const SLEEP_POD = 'sleep-7d9f8c6b5-abcde';
const SLEEP_IP = '127.0.50.11';
const SLEEP_ID = 'spiffe://cluster.local/ns/default/sa/sleep';
const ROOT = () => path.join(out, 'root-cert.pem');
type Dump = Record<string, any>;

t.teardown(() => ns.destroy());

ns.create();
const istiod = ns.start(peers.realIstiod, ['-scenario', path.join(PEERS_DIR, 'real-istiod', 'scenario.yaml'), '-out', out,
  '-xds-tls', `${ISTIOD}:15012`, '-xds-plaintext', `${ISTIOD}:15010`, '-debug', `${ISTIOD}:8080`],
{ PILOT_ENABLE_AMBIENT: 'true', CA_TRUSTED_NODE_ACCOUNTS: 'istio-system/ztunnel' }, path.join(work, 'istiod.log'));
await until('real-istiod READY', () => (readText(path.join(work, 'istiod.log')).includes('READY') ? true : istiod.exitCode !== null ? false : undefined), 120_000)
  .then((ok) => { if (!ok) throw new Error(`real-istiod exited; see ${work}/istiod.log`); });

/** The env both implementations read, for the sleep pod in dedicated mode. */
const sleepEnv = {
  PROXY_MODE: 'dedicated', PROXY_WORKLOAD_INFO: `default/${SLEEP_POD}/sleep`,
  POD_NAME: SLEEP_POD, POD_NAMESPACE: 'default', SERVICE_ACCOUNT: 'sleep', NODE_NAME: 'node1', INSTANCE_IP: SLEEP_IP,
  CLUSTER_ID: 'Kubernetes', CA_ADDRESS: `https://${ISTIOD}:15012`, XDS_ROOT_CA: ROOT(), CA_ROOT_CA: ROOT(),
  AUTH_TOKEN: path.join(out, 'tokens', `default.${SLEEP_POD}.jwt`),
};

/** Istio's ztunnel binds fixed ports (admin 127.0.0.1:15000); ztunnel-ts is given its addresses. */
function tsEnv(ip: string, extra: Record<string, string>): Record<string, string> {
  return {
    IPV6_ENABLED: 'false', ZTUNNEL_STATE_DIR: path.join(work, `state-${ip}`),
    ZTUNNEL_OUTBOUND_ADDR: `${ip}:15001`, ZTUNNEL_INBOUND_PLAINTEXT_ADDR: `${ip}:15006`, ZTUNNEL_INBOUND_ADDR: `${ip}:15008`,
    ZTUNNEL_ADMIN_ADDR: `${ip}:15000`, ZTUNNEL_STATS_ADDR: `${ip}:15020`, ZTUNNEL_READINESS_ADDR: `${ip}:15021`, ZTUNNEL_DNS_ADDR: `${ip}:15053`,
    ...extra,
  };
}

async function ready(admin: string, readiness: string, p: ChildProcess, log: string): Promise<void> {
  await until(`${readiness} ready`, () => (p.exitCode !== null ? 'exited' : ns.get(`http://${readiness}/healthz/ready`, 2) !== undefined ? 'ready' : undefined), 60_000)
    .then((s) => { if (s === 'exited') throw new Error(`exited before ready; see ${log}`); });
  await until(`${admin} admin`, () => ns.get(`http://${admin}/config_dump`, 2));
}

const dumpOf = (admin: string): Dump => JSON.parse(ns.get(`http://${admin}/config_dump`) ?? '{}') as Dump;

/**
 * One connection through the SOCKS5 listener to the httpbin Service: Istio's ztunnel fetches the
 * pod's certificate on first use (ztunnel-ts warms it at start), so both hold it afterwards. The
 * HBONE hop itself fails (no httpbin ztunnel in this bed); only the certificate matters here.
 */
function connectOnce(socks: string): void {
  spawnSync('ip', ['netns', 'exec', ns.name, 'curl', '-s', '-o', '/dev/null', '--max-time', '5', '--socks5', socks, 'http://127.0.50.100:8000/'], { timeout: 15_000 });
}
const holdsCert = (d: Dump) => (d['certificates'] ?? []).some((c: Dump) => c['identity'] === SLEEP_ID && c['state'] === 'Available');

/** Both dumps settle (same workload/service/policy counts twice in a row) before they are compared. */
async function settled(admin: string): Promise<Dump> {
  let last = '';
  return until(`${admin} dump settled`, async () => {
    const d = dumpOf(admin);
    const sig = `${d['workloads']?.length}/${d['services']?.length}/${d['policies']?.length}/${(d['certificates'] ?? []).map((c: Dump) => c['state']).join(',')}`;
    const same = sig === last && !sig.includes('Initializing');
    last = sig;
    return same ? d : undefined;
  }, 30_000);
}

function istioctl(file: string): { summary: string; certificates: string; connections: string; error: string } {
  const r = spawnSync(peers.istioctlDump, [file], { timeout: 30_000 });
  return JSON.parse(String(r.stdout) || '{"error":"no output"}') as never;
}

// ---- 1. Istio's ztunnel, then ztunnel-ts, as the same pod against the same istiod state ----------

const istioLog = path.join(work, 'istio-ztunnel.log');
const istioZt = ns.start(peers.istioZtunnel, [], { ...sleepEnv, XDS_ADDRESS: `https://${ISTIOD}:15012`, RUST_LOG: 'info', ENABLE_ORIG_SRC: 'false', UNSTABLE_ENABLE_SOCKS5: 'true' }, istioLog, work);
await ready('127.0.0.1:15000', '127.0.0.1:15021', istioZt, istioLog);
connectOnce('127.0.0.1:15080');
await until("Istio's ztunnel holding the pod's certificate", () => (holdsCert(dumpOf('127.0.0.1:15000')) ? true : undefined));
const istioDump = await settled('127.0.0.1:15000');
await ns.stop(istioZt);
writeFileSync(path.join(work, 'istio.config_dump.json'), JSON.stringify(istioDump, null, 2));

// ztunnel-ts reaches istiod's xDS port through a relay the test can cut (section 3).
const RELAY = `${ISTIOD}:25012`;
const relayJs = path.join(REPO, 'dist', 'test', 'interop', 'tcp-relay.js');
let relay = ns.start(process.execPath, [relayJs, RELAY, `${ISTIOD}:15012`], {}, path.join(work, 'relay.log'));
const tsLog = path.join(work, 'ztunnel-ts.log');
const tsZt = ns.start(process.execPath, [path.join(REPO, 'dist', 'src', 'main.js'), 'run'],
  tsEnv(SLEEP_IP, { ...sleepEnv, XDS_ADDRESS: `https://${RELAY}`, UNSTABLE_ENABLE_SOCKS5: 'true', ZTUNNEL_SOCKS5_ADDR: `${SLEEP_IP}:15080` }), tsLog, work);
const TS_ADMIN = `${SLEEP_IP}:15000`;
await ready(TS_ADMIN, `${SLEEP_IP}:15021`, tsZt, tsLog);
connectOnce(`${SLEEP_IP}:15080`);
await until("ztunnel-ts holding the pod's certificate", () => (holdsCert(dumpOf(TS_ADMIN)) ? true : undefined));
const tsDump = await settled(TS_ADMIN);
writeFileSync(path.join(work, 'ztunnel-ts.config_dump.json'), JSON.stringify(tsDump, null, 2));

t.test('the same /config_dump from both for the same istiod state, field by field', async (t) => {
  t.ok((istioDump['workloads'] ?? []).length >= 3, `Istio's ztunnel holds the scenario's workloads (${(istioDump['workloads'] ?? []).length})`);
  const diffs = compareDumps(tsDump, istioDump);
  const unexplained = diffs.filter((d) => !isKnown(d));
  for (const d of diffs.filter((x) => isKnown(x))) t.comment(`known: ${d.path} (${isKnown(d)})`);
  t.same(unexplained.map((d) => `${d.path}: ztunnel-ts=${JSON.stringify(d.ts)} istio=${JSON.stringify(d.istio)}`), [], 'no difference outside docs/interop.md');
  const mine = (tsDump['certificates'] as Dump[]).find((c) => c['identity'] === SLEEP_ID);
  t.equal(mine?.['state'], 'Available', 'dedicated mode: the pod\'s certificate from istiod\'s CA (the pod\'s own token)');
  const root = readText(ROOT()).replace(/\s+/g, '');
  t.equal(Buffer.from(String(mine?.['rootCerts']?.[0]?.['pem'] ?? ''), 'base64').toString('utf8').replace(/\s+/g, ''), root, 'its root is istiod\'s');
});

t.test("istioctl's reader gives the same tables for both dumps", async (t) => {
  const a = path.join(work, 'ztunnel-ts.config_dump.json');
  const b = path.join(work, 'istio.config_dump.json');
  const ts = istioctl(a);
  const is = istioctl(b);
  t.equal(ts.error, '', 'istioctl reads the ztunnel-ts dump');
  t.equal(is.error, '', "istioctl reads Istio's dump");
  // The certificate section differs in the leaf's serial and times (each process has its own key):
  // compared row by row below.
  const withoutSecrets = (x: string) => x.replace(/------ SECRET INFO ------[\s\S]*?(?=------ )/, '');
  t.equal(withoutSecrets(ts.summary), withoutSecrets(is.summary), 'workloads, services, policies and connections tables are identical');
  const rows = (s: string) => s.split('\n').filter((l) => l.trim() && !l.startsWith('CERTIFICATE NAME'))
    .map((l) => l.split(/\s{2,}|\t/).slice(0, 4).join(' | ')).sort();
  t.same(rows(ts.certificates), rows(is.certificates), 'certificate rows (name, type, status, valid) are identical');
  t.notMatch(ts.certificates, '<nil>', 'serial numbers parse (decimal)');
  t.match(ts.certificates, /Leaf\s+Available\s+true\s+[0-9a-f]+/, 'a leaf with its serial in hex, as istioctl prints it');
});

// ---- 2. incremental pushes from the fake Kubernetes API --------------------------------------

const policyYaml = (name: string, port: string) => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: ${name}
  namespace: default
spec:
  selector:
    matchLabels:
      app: httpbin
  action: ALLOW
  rules:
  - to:
    - operation:
        ports: ["${port}"]
`;
const podRef = (name: string, namespace: string) => `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\n`;
const hasWorkload = (d: Dump, name: string) => (d['workloads'] as Dump[]).some((w) => w['name'] === name);
const hasPolicy = (d: Dump, name: string) => (d['policies'] as Dump[]).some((p) => p['name'] === name);

t.test('incremental pushes: a new policy arrives, a deleted pod goes away', async (t) => {
  ns.post(`http://${ISTIOD}:8080/apply`, policyYaml('interop-added', '7777'));
  const d1 = await until('the new policy', () => { const d = dumpOf(TS_ADMIN); return hasPolicy(d, 'interop-added') ? d : undefined; });
  t.ok(hasPolicy(d1, 'interop-added'), 'the applied AuthorizationPolicy is in /config_dump');
  ns.post(`http://${ISTIOD}:8080/delete`, podRef('legacy-app-0', 'legacy'));
  const d2 = await until('the pod removal', () => { const d = dumpOf(TS_ADMIN); return hasWorkload(d, 'legacy-app-0') ? undefined : d; });
  t.notOk(hasWorkload(d2, 'legacy-app-0'), 'the deleted pod is gone');
});

// ---- 3. a removal while disconnected --------------------------------------------------------

t.test('a policy deleted while ztunnel-ts is cut off from istiod is removed after the reconnect', async (t) => {
  t.ok(hasPolicy(dumpOf(TS_ADMIN), 'interop-added'), 'held before the cut');
  const before = readText(tsLog).split('\n').length;
  await ns.stop(relay); // the listening relay and with it the xDS connection go away
  await until('the stream to end', () => (readText(tsLog).split('\n').slice(before).some((l) => /xDS (stream|connection)/.test(l)) ? true : undefined));
  ns.post(`http://${ISTIOD}:8080/delete`, `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: interop-added\n  namespace: default\n`);
  t.ok(hasPolicy(dumpOf(TS_ADMIN), 'interop-added'), 'still held while disconnected');
  relay = ns.start(process.execPath, [relayJs, RELAY, `${ISTIOD}:15012`], {}, path.join(work, 'relay.log'));
  const d = await until('the removal after reconnect', () => { const x = dumpOf(TS_ADMIN); return hasPolicy(x, 'interop-added') ? undefined : x; }, 60_000);
  t.notOk(hasPolicy(d, 'interop-added'), 'istiod sent the removal for the name ztunnel-ts reported in initial_resource_versions');
  t.ok(hasWorkload(d, SLEEP_POD), 'the rest of the state is intact');
});

// ---- 4. shared mode: impersonated certificates, fetched as the node's workloads arrive ---------

t.test('shared mode: ztunnel\'s token, certificates of the node\'s HBONE workloads from istiod\'s CA (impersonation)', async (t) => {
  await ns.stop(tsZt);
  const ip = '127.0.50.20'; // ztunnel-node1's pod IP in the scenario
  const log = path.join(work, 'ztunnel-ts-shared.log');
  const shared = ns.start(process.execPath, [path.join(REPO, 'dist', 'src', 'main.js'), 'run'], tsEnv(ip, {
    PROXY_MODE: 'shared', POD_NAME: 'ztunnel-node1', POD_NAMESPACE: 'istio-system', SERVICE_ACCOUNT: 'ztunnel', NODE_NAME: 'node1', INSTANCE_IP: ip,
    CLUSTER_ID: 'Kubernetes', XDS_ADDRESS: `https://${ISTIOD}:15012`, CA_ADDRESS: `https://${ISTIOD}:15012`, XDS_ROOT_CA: ROOT(), CA_ROOT_CA: ROOT(),
    AUTH_TOKEN: path.join(out, 'tokens', 'istio-system.ztunnel-node1.jwt'), INPOD_UDS: path.join(work, 'ztunnel.sock'),
  }), log, work);
  const admin = `${ip}:15000`;
  const cert = await until('the impersonated certificate', () => {
    if (shared.exitCode !== null) return { state: `exited; see ${log}` } as Dump;
    const d = ns.get(`http://${admin}/config_dump`, 2);
    const c = d ? (JSON.parse(d) as Dump)['certificates']?.find((x: Dump) => x['identity'] === SLEEP_ID && x['state'] !== 'Initializing') : undefined;
    return c as Dump | undefined;
  }, 60_000);
  t.equal(cert['state'], 'Available', 'sleep (HBONE, node1) has its certificate before any pod is enrolled');
  t.equal(Buffer.from(String(cert['rootCerts']?.[0]?.['pem'] ?? ''), 'base64').toString('utf8').replace(/\s+/g, ''), readText(ROOT()).replace(/\s+/g, ''), 'issued under istiod\'s root');
  const certs = (JSON.parse(ns.get(`http://${admin}/config_dump`) ?? '{}') as Dump)['certificates'] as Dump[];
  t.notOk(certs.some((c) => String(c['identity']).endsWith('/sa/httpbin')), 'no certificate for httpbin (node2)');
  await ns.stop(shared);
});
