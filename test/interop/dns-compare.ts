// Same questions, same answers? Runs Istio's ztunnel and ztunnel-ts side by side, each in its own
// network namespace in dedicated mode with the same local config, each with a test upstream
// resolver on 127.0.0.1:53 of its netns (named by /etc/netns/<ns>/resolv.conf, which `ip netns
// exec` mounts over /etc/resolv.conf), asks both the same list of questions on 127.0.0.1:15053 and
// prints a comparison table. Root only. Not a tap test (it needs Istio's binary).
//
//   npm run build && sudo node dist/test/interop/dns-compare.js [path/to/istio/ztunnel]
//   (default: $ISTIO_ZTUNNEL_BIN, else /tmp/istio-ztunnel/bin/ztunnel)
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as packet from 'dns-packet';
import { loadNativeAddon } from '../../src/platform/native-addon.js';
import { LinuxSocketFactory } from '../../src/platform/linux-socket-factory.js';
import { TestUpstream } from '../helpers/dns-upstream.js';

const ISTIO_BIN = process.argv[2] ?? process.env['ISTIO_ZTUNNEL_BIN'] ?? '/tmp/istio-ztunnel/bin/ztunnel';
const MAIN_JS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'main.js');

const CONFIG = `workloads:
- uid: Kubernetes//Pod/default/client
  name: client
  namespace: default
  serviceAccount: default
  trustDomain: cluster.local
  clusterId: Kubernetes
  workloadName: client
  workloadType: deployment
  canonicalName: client
  canonicalRevision: v1
  workloadIps: ["10.0.0.1"]
  protocol: HBONE
  node: node-a
  network: ""
  services: {}
- uid: Kubernetes//Pod/default/hl-0
  name: hl-0
  namespace: default
  serviceAccount: default
  trustDomain: cluster.local
  clusterId: Kubernetes
  workloadIps: ["10.1.0.1", "fd00::1"]
  protocol: HBONE
  node: node-a
  network: ""
  services: {"default/headless.default.svc.cluster.local": {80: 80}, "default/headless4.default.svc.cluster.local": {80: 80}}
- uid: Kubernetes//Pod/default/hl-1
  name: hl-1
  namespace: default
  serviceAccount: default
  trustDomain: cluster.local
  clusterId: Kubernetes
  workloadIps: ["10.1.0.2"]
  protocol: HBONE
  node: node-a
  network: ""
  services: {"default/headless.default.svc.cluster.local": {80: 80}, "default/headless4.default.svc.cluster.local": {80: 80}}
services:
- {name: web, namespace: default, hostname: web.default.svc.cluster.local, vips: ["/10.96.0.10", "/fd00:96::10"], ports: {80: 8080}}
- {name: web, namespace: other, hostname: web.other.svc.cluster.local, vips: ["/10.96.0.20"], ports: {80: 8080}}
- {name: v4only, namespace: default, hostname: v4only.default.svc.cluster.local, vips: ["/10.96.0.11", "/fd00:96::11"], ports: {80: 8080}, ipFamilies: IPv4}
- {name: headless, namespace: default, hostname: headless.default.svc.cluster.local, vips: [], ports: {80: 80}}
- {name: headless4, namespace: default, hostname: headless4.default.svc.cluster.local, vips: [], ports: {80: 80}, ipFamilies: IPv4}
- {name: api, namespace: default, hostname: api.example.com, vips: ["/240.240.0.1", "/2001:2::1"], ports: {443: 443}}
- {name: novip, namespace: default, hostname: novip.example.com, vips: [], ports: {443: 443}}
- {name: wild, namespace: default, hostname: "*.wild.example.com", vips: ["/240.240.0.2"], ports: {443: 443}}
- {name: private, namespace: other, hostname: private.other.svc.cluster.local, vips: ["/10.96.0.30"], ports: {80: 80}, visibility: Namespace}
`;

const QUESTIONS: Array<[string, packet.RecordType]> = [
  ['web', 'A'],
  ['web', 'AAAA'],
  ['web.default', 'A'],
  ['web.default.svc', 'A'],
  ['web.default.svc.cluster.local', 'A'],
  ['web.default.svc.cluster.local.default.svc.cluster.local', 'A'],
  ['web.other', 'A'],
  ['web.other.svc.cluster.local', 'A'],
  ['WEB.default.svc.cluster.local', 'A'],
  ['v4only', 'A'],
  ['v4only', 'AAAA'],
  ['headless', 'A'],
  ['headless', 'AAAA'],
  ['headless4', 'AAAA'],
  ['hl-0.headless.default.svc.cluster.local', 'A'],
  ['api.example.com', 'A'],
  ['api.example.com', 'AAAA'],
  ['api.example.com.default.svc.cluster.local', 'A'],
  ['x.wild.example.com', 'A'],
  ['novip.example.com', 'A'],
  ['private.other.svc.cluster.local', 'A'],
  ['web.default.svc.cluster.local', 'TXT'],
  ['outside.example.org', 'A'],
  ['missing.example.org', 'A'],
];

interface Side {
  name: string;
  netns: string;
  fd: number;
  sockets: LinuxSocketFactory;
  upstream?: TestUpstream;
  child?: ChildProcess;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (ip netns)');
  if (!existsSync(ISTIO_BIN)) throw new Error(`Istio's ztunnel not found at ${ISTIO_BIN}`);
  const addon = loadNativeAddon();
  if (!addon.ok) throw addon.error;
  const dir = mkdtempSync(join(tmpdir(), 'zt-dns-compare-'));
  writeFileSync(join(dir, 'config.yaml'), CONFIG);
  const sides: Side[] = [];
  const cleanup = () => {
    for (const s of sides) {
      s.child?.kill('SIGKILL');
      try {
        closeSync(s.fd);
      } catch {
        // closed
      }
      try {
        execFileSync('ip', ['netns', 'del', s.netns], { stdio: 'ignore' });
      } catch {
        // gone
      }
      rmSync(`/etc/netns/${s.netns}`, { recursive: true, force: true });
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => (cleanup(), process.exit(130)));
  try {
    for (const name of ['istio', 'ztunnel-ts']) {
      const netns = `ztdnsc${process.pid}${name === 'istio' ? 'i' : 't'}`;
      execFileSync('ip', ['netns', 'add', netns]);
      const fd = openSync(`/run/netns/${netns}`, 'r');
      const side: Side = { name, netns, fd, sockets: new LinuxSocketFactory(addon.value, { netnsFd: fd }) };
      sides.push(side);
      execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
      mkdirSync(`/etc/netns/${netns}`, { recursive: true });
      writeFileSync(`/etc/netns/${netns}/resolv.conf`, 'nameserver 127.0.0.1\nsearch default.svc.cluster.local svc.cluster.local cluster.local\n');
      side.upstream = await TestUpstream.start('127.0.0.1', 53, side.sockets);
      side.upstream.records.set('outside.example.org', ['192.0.2.10']);
      const env: Record<string, string> = {
        PATH: process.env['PATH'] ?? '/usr/bin:/bin',
        FAKE_CA: 'true',
        XDS_ADDRESS: '',
        CA_ADDRESS: '',
        LOCAL_XDS_PATH: join(dir, 'config.yaml'),
        PROXY_MODE: 'dedicated',
        PROXY_WORKLOAD_INFO: 'default/client/default',
        ENABLE_ORIG_SRC: 'false',
        RUST_LOG: 'info',
        ZTUNNEL_STATE_DIR: join(dir, `state-${name}`),
      };
      const argv = name === 'istio' ? [ISTIO_BIN] : [process.execPath, MAIN_JS, 'run'];
      side.child = spawn('ip', ['netns', 'exec', netns, ...argv], { env, stdio: ['ignore', 'ignore', 'ignore'] });
    }
    for (const s of sides) {
      if (!(await waitAnswer(s, 30_000))) throw new Error(`${s.name} did not answer DNS on 127.0.0.1:15053 within 30 s`);
    }
    const rows: string[] = [];
    let differences = 0;
    for (const [name, type] of QUESTIONS) {
      const [a, b] = await Promise.all(sides.map((s) => askSide(s, name, type)));
      const same = a === b;
      if (!same) differences++;
      rows.push(`| \`${name}\` ${type} | ${a} | ${b} | ${same ? 'same' : '**differs**'} |`);
    }
    console.log(`| question | Istio ztunnel | ztunnel-ts | |\n|---|---|---|---|`);
    for (const r of rows) console.log(r);
    console.log(`\n${QUESTIONS.length} questions, ${differences} differences`);
  } finally {
    for (const s of sides) await s.upstream?.stop();
    cleanup();
  }
}

async function askSide(s: Side, name: string, type: packet.RecordType): Promise<string> {
  const sock = await s.sockets.udpSocket({ family: 4 });
  const q = packet.encode({ type: 'query', id: 4242, flags: packet.RECURSION_DESIRED, questions: [{ name, type }] });
  return new Promise((resolve) => {
    const timer = setTimeout(() => done('(no answer in 12 s)'), 12_000);
    const done = (v: string) => {
      clearTimeout(timer);
      sock.close();
      resolve(v);
    };
    sock.on('message', (m: Buffer) => {
      const p = packet.decode(m) as packet.DecodedPacket & { rcode?: string };
      const flags = [p.flag_aa ? 'aa' : '', p.flag_tc ? 'tc' : ''].filter(Boolean).join(',');
      const records = (p.answers ?? []).map((r) => `${r.name} ${r.type} ${r.type === 'OPT' ? '' : typeof r.data === 'string' ? r.data : JSON.stringify(r.data)}`).sort();
      done(`${p.rcode ?? '?'}${flags ? ` (${flags})` : ''}${records.length ? `: ${records.join('; ')}` : ''}`);
    });
    sock.send(q, 15053, '127.0.0.1');
  });
}

async function waitAnswer(s: Side, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const sock = await s.sockets.udpSocket({ family: 4 });
    const ok = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => (sock.close(), resolve(false)), 500);
      sock.on('message', () => (clearTimeout(timer), sock.close(), resolve(true)));
      sock.on('error', () => {});
      sock.send(packet.encode({ type: 'query', id: 1, questions: [{ name: 'web.default.svc.cluster.local', type: 'A' }] }), 15053, '127.0.0.1');
    });
    if (ok) return true;
  }
  return false;
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
