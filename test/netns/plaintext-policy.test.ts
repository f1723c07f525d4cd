// Inbound plaintext (15006) under policy, with a real redirect (policy.md §3, §4, §6; capture.md §3).
// Two network namespaces joined by a veth: "client" (a non-mesh client) and "server", where
// ztunnel-ts runs in dedicated mode (a real process, `ip netns exec`) serving workload B at the
// server IP and an iptables nat PREROUTING rule REDIRECTs TCP to the app ports to 15006. The echo
// apps listen on the server IP. Root only: fails (not skips) without root unless ZTUNNEL_SKIP_NETNS=1.
import { closeSync, openSync, writeFileSync } from 'node:fs';
import type { AddressInfo, Server, Socket } from 'node:net';
import t, { type Test } from 'tap';
import { LocalCa } from '../../src/identity/local-ca.js';
import { loadNativeAddon, type NativeAddon } from '../../src/platform/native-addon.js';
import { LinuxSocketFactory } from '../../src/platform/linux-socket-factory.js';
import { startDaemon, tempDir, type Daemon, type LogLine } from '../helpers/daemon.js';
import { roundTrip } from '../helpers/servers.js';
import { requireRoot, run } from './netns-fixture.js';

const STRICT_KEY = 'istio-system/istio_converted_static_strict';

interface App {
  readonly server: Server;
  readonly port: number;
  readonly accepted: Socket[];
  /** Remote IPs of accepted connections. */
  readonly peers: string[];
}

async function startApp(f: LinuxSocketFactory, host: string): Promise<App> {
  const { server } = await f.listen({ host, port: 0 });
  const accepted: Socket[] = [];
  const peers: string[] = [];
  server.on('connection', (s: Socket) => {
    accepted.push(s);
    peers.push(s.remoteAddress ?? '?');
    s.on('error', () => {});
    s.on('data', (d) => s.write(d));
    s.on('end', () => s.end());
  });
  return { server, port: (server.address() as AddressInfo).port, accepted, peers };
}

const MARK = 1337;

/**
 * One server netns + one client netns + one daemon. `origSrc` is ENABLE_ORIG_SRC: 'true', 'false'
 * or unset. Unset is Istio's best effort: the daemon runs as root, so the listener takes
 * IP_TRANSPARENT and the upstream is spoofed exactly as with 'true'.
 */
async function suite(t: Test, addon: NativeAddon, origSrc: 'true' | 'false' | undefined): Promise<void> {
  const transparent = origSrc !== 'false';
  const pid = process.pid;
  const suffix = origSrc === undefined ? 'u' : transparent ? 't' : 'd';
  const subnet = origSrc === undefined ? 2 : transparent ? 1 : 0;
  const serverNs = `zt-srv-${pid}-${suffix}`;
  const clientNs = `zt-cli-${pid}-${suffix}`;
  // Private addresses that exist only inside the two namespaces.
  const net = `10.${200 + (pid % 50)}.${(Math.floor(pid / 50) * 3 + subnet) % 250}`;
  const SERVER_IP = `${net}.1`;
  const CLIENT_IP = `${net}.2`;
  const dir = tempDir('zt-plaintext-');
  const configPath = `${dir}/b.yaml`;
  const fds: number[] = [];
  let daemon: Daemon | undefined;
  const apps: App[] = [];

  // One teardown, in order: apps, daemon, then the namespaces (even when setup failed half-way).
  t.teardown(async () => {
    for (const a of apps) {
      for (const s of a.accepted) s.destroy();
      a.server.close();
    }
    await daemon?.stop();
    for (const fd of fds) closeSync(fd);
    for (const ns of [serverNs, clientNs]) {
      try {
        run('ip', ['netns', 'del', ns]);
      } catch {
        // never created or already gone
      }
    }
  });

  const nsExec = (ns: string, cmd: string, args: string[]) => run('ip', ['netns', 'exec', ns, cmd, ...args]);
  run('ip', ['netns', 'add', serverNs]);
  run('ip', ['netns', 'add', clientNs]);
  run('ip', ['-n', serverNs, 'link', 'add', 'veth-srv', 'type', 'veth', 'peer', 'name', 'veth-cli', 'netns', clientNs]);
  for (const [ns, dev, ip] of [[serverNs, 'veth-srv', SERVER_IP], [clientNs, 'veth-cli', CLIENT_IP]] as const) {
    run('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', dev]);
    run('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  const nsFd = (ns: string) => {
    const fd = openSync(`/run/netns/${ns}`, 'r');
    fds.push(fd);
    return fd;
  };
  const inServer = new LinuxSocketFactory(addon, { netnsFd: nsFd(serverNs) });
  const inClient = new LinuxSocketFactory(addon, { netnsFd: nsFd(clientNs) });
  if (transparent) {
    // What the in-pod setup does for a transparent ztunnel (capture.md §4): the app's replies to
    // the spoofed client address must come back to ztunnel's socket, not leave by the veth.
    // ztunnel marks its upstream sockets (PACKET_MARK); the mark is saved on the connection,
    // restored on the app's replies, and marked packets are routed locally.
    nsExec(serverNs, 'iptables', ['-t', 'mangle', '-A', 'OUTPUT', '-m', 'mark', '--mark', String(MARK), '-j', 'CONNMARK', '--save-mark']);
    nsExec(serverNs, 'iptables', ['-t', 'mangle', '-A', 'OUTPUT', '-m', 'connmark', '--mark', String(MARK), '-j', 'CONNMARK', '--restore-mark']);
    run('ip', ['-n', serverNs, 'rule', 'add', 'fwmark', String(MARK), 'lookup', '100']);
    run('ip', ['-n', serverNs, 'route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '100']);
  }

  const app = await startApp(inServer, SERVER_IP);
  const guarded = await startApp(inServer, SERVER_IP); // the port a DENY policy names
  apps.push(app, guarded);
  for (const p of [app.port, guarded.port]) {
    nsExec(serverNs, 'iptables', ['-t', 'nat', '-A', 'PREROUTING', '-p', 'tcp', '-d', SERVER_IP, '--dport', String(p), '-j', 'REDIRECT', '--to-ports', '15006']);
  }

  const workload = (listed: string[]) => `workloads:
- uid: Kubernetes//Pod/shop/b
  name: b
  namespace: shop
  serviceAccount: sa-b
  trustDomain: cluster.local
  workloadIps: ["${SERVER_IP}"]
  protocol: HBONE
  labels: {app: b}
  authorizationPolicies: ${JSON.stringify(listed)}
  services: {}
`;
  const DENY_GUARDED = `- name: deny-guarded
  namespace: shop
  scope: Namespace
  action: Deny
  dryRun: false
  rules:
  - - - destinationPorts: [${guarded.port}]
`;
  // policy.md §6: the converted STRICT policy, written in the ztunnel form.
  const ZTUNNEL_STRICT = `- name: istio_converted_static_strict
  namespace: istio-system
  scope: WorkloadSelector
  action: Deny
  dryRun: false
  rules:
  - - - notPrincipals: [{Presence: []}]
`;
  const ISTIO_STRICT = `---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT
`;
  const configs = {
    permissive: `${workload([])}policies:\n${DENY_GUARDED}`,
    istioStrict: `${workload([])}policies:\n${DENY_GUARDED}${ISTIO_STRICT}`,
    ztunnelStrict: `${workload([STRICT_KEY])}policies:\n${DENY_GUARDED}${ZTUNNEL_STRICT}`,
  };
  let current = configs.permissive;

  await LocalCa.open({ stateDir: `${dir}/ca`, ttlMs: 24 * 3600_000 });
  writeFileSync(configPath, current);

  daemon = await startDaemon({
    name: 'B',
    wrapper: ['ip', 'netns', 'exec', serverNs],
    env: {
      XDS_ADDRESS: '',
      FAKE_CA: 'true',
      ZTUNNEL_STATE_DIR: `${dir}/ca`,
      LOCAL_XDS_PATH: configPath,
      PROXY_MODE: 'dedicated',
      PROXY_WORKLOAD_INFO: 'shop/b/sa-b',
      ZTUNNEL_INBOUND_PLAINTEXT_ADDR: '0.0.0.0:15006',
      ZTUNNEL_INBOUND_ADDR: `${SERVER_IP}:15008`,
      ZTUNNEL_OUTBOUND_ADDR: `${SERVER_IP}:15001`,
      ZTUNNEL_ADMIN_ADDR: '127.0.0.1:0',
      ZTUNNEL_STATS_ADDR: '127.0.0.1:0',
      ZTUNNEL_READINESS_ADDR: '127.0.0.1:0',
      ZTUNNEL_DNS_ADDR: '127.0.0.1:0',
      IPV6_ENABLED: 'false',
      ...(origSrc !== undefined ? { ENABLE_ORIG_SRC: origSrc } : {}),
      ...(transparent ? { PACKET_MARK: String(MARK) } : {}),
      RUST_LOG: 'info',
    },
  });

  const logAfter = (from: number, pred: (l: LogLine) => boolean, timeoutMs = 10_000) =>
    daemon!.waitForLog((l) => pred(l) && daemon!.logs.indexOf(l) >= from, timeoutMs);
  const inboundTo = (port: number) => (l: LogLine) =>
    l['component'] === 'access' && l.msg === 'connection complete' && l['direction'] === 'inbound' && l['dst.addr'] === `${SERVER_IP}:${port}`;

  /** Rewrites the file and waits until the daemon applied it. */
  async function use(text: string): Promise<void> {
    if (text === current) return;
    current = text;
    const from = daemon!.logs.length;
    writeFileSync(configPath, text);
    const line = await logAfter(from, (l) => l['component'] === 'local_config' && (l.msg === 'local config reloaded' || l.level === 'error'));
    if (line.msg !== 'local config reloaded') throw new Error(`config rejected: ${JSON.stringify(daemon!.logs.slice(from))}`);
  }

  /** Plaintext from the client netns to SERVER_IP:port: what came back, and the daemon's access log line. */
  async function plaintext(target: App, payload: string) {
    const from = daemon!.logs.length;
    const before = target.accepted.length;
    const s = await inClient.connect({ host: SERVER_IP, port: target.port, timeoutMs: 5000 });
    s.on('error', () => {});
    const r = await roundTrip(s, Buffer.from(payload), 10_000);
    const line = await logAfter(from, inboundTo(target.port));
    await new Promise((res) => setTimeout(res, 100)); // let a stray upstream connect land before counting
    return { data: r.data.toString(), line, newConnections: target.accepted.length - before };
  }

  t.test('PERMISSIVE (no PeerAuthentication): plaintext from a non-mesh client reaches the app through 15006', async (t) => {
    await use(configs.permissive);
    const peersBefore = app.peers.length;
    const r = await plaintext(app, 'hello plaintext');
    t.equal(r.data, 'hello plaintext', 'the bytes echo');
    t.equal(r.newConnections, 1, 'the app accepted one connection');
    t.equal(r.line.level, 'info', 'logged at INFO');
    t.match(String(r.line['src.addr']), new RegExp(`^${CLIENT_IP.replaceAll('.', '\\.')}:\\d+$`), 'ztunnel sees the client address');
    t.equal(r.line['dst.addr'], `${SERVER_IP}:${app.port}`, 'the original destination came from the redirect (SO_ORIGINAL_DST)');
    t.equal(r.line['policy'], 'no allow policies', 'allowed because no ALLOW policy applies');
    t.notOk(r.line['src.identity'], 'plaintext carries no identity');
    if (transparent) {
      t.equal(app.peers[peersBefore], CLIENT_IP, 'the app sees the client IP as source (IP_TRANSPARENT listener, spoofed upstream)');
    } else {
      // ENABLE_ORIG_SRC=false: the listener is not IP_TRANSPARENT, so ztunnel dials the app from
      // its own address: the app sees the server IP, not the client's.
      t.equal(app.peers[peersBefore], SERVER_IP, 'the app sees the server IP as source (non-transparent listener)');
    }
  });

  t.test('a DENY on a port closes plaintext to that port without a byte to the app; other ports still pass', async (t) => {
    await use(configs.permissive);
    const r = await plaintext(guarded, 'let me in');
    t.equal(r.data, '', 'nothing comes back');
    t.equal(r.newConnections, 0, 'the app behind the denied port saw no connection');
    t.equal(r.line.level, 'error', 'logged at ERROR');
    t.equal(r.line['error'], 'connection closed due to policy rejection: explicitly denied by: shop/deny-guarded', 'the DENY is named');
    const ok = await plaintext(app, 'other port');
    t.equal(ok.data, 'other port', 'a port the DENY does not name still passes');
  });

  for (const [name, text] of [
    ['an Istio PeerAuthentication mtls.mode STRICT in the file', configs.istioStrict],
    [`the ztunnel-form ${STRICT_KEY} listed on the workload`, configs.ztunnelStrict],
  ] as const) {
    t.test(`STRICT (${name}): plaintext is closed and the app sees nothing`, async (t) => {
      await use(text);
      const r = await plaintext(app, 'plaintext under STRICT');
      t.equal(r.data, '', 'nothing comes back');
      t.equal(r.newConnections, 0, 'the app saw no connection');
      t.equal(r.line.level, 'error', 'logged at ERROR');
      t.equal(r.line['error'], `connection closed due to policy rejection: explicitly denied by: ${STRICT_KEY}`, 'the converted STRICT policy is named');
    });
  }

  t.test('a plaintext connection open under PERMISSIVE is closed when STRICT arrives', async (t) => {
    await use(configs.permissive);
    const s = await inClient.connect({ host: SERVER_IP, port: app.port, timeoutMs: 5000 });
    s.on('error', () => {});
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    const closed = new Promise<string>((resolve) => {
      s.once('end', () => resolve('FIN'));
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      s.once('close', () => resolve('close'));
    });
    s.write('before;');
    for (let i = 0; i < 200 && got !== 'before;'; i++) await new Promise((r) => setTimeout(r, 10));
    t.equal(got, 'before;', 'the connection echoes under PERMISSIVE');
    const from = daemon!.logs.length;
    await use(configs.istioStrict);
    const how = await Promise.race([closed, new Promise<string>((r) => setTimeout(() => r('still open'), 10_000))]);
    t.not(how, 'still open', `the client saw the close (${how})`);
    const line = await logAfter(from, inboundTo(app.port));
    t.equal(line['error'], `connection closed due to policy change: explicitly denied by: ${STRICT_KEY}`, 'logged as closed by the policy change');
    s.destroy();
    await use(configs.permissive);
  });
}

if (requireRoot(t)) {
  const loaded = loadNativeAddon();
  if (!loaded.ok) {
    t.fail(`native addon unavailable: ${loaded.error.message}`);
  } else {
    const addon = loaded.value;
    t.test('ENABLE_ORIG_SRC=false: listener not transparent', (t) => suite(t, addon, 'false'));
    t.test('ENABLE_ORIG_SRC unset (best effort, privileged): spoofed like true, with reply routing', (t) => suite(t, addon, undefined));
    t.test('transparent listener (ENABLE_ORIG_SRC=true) with reply routing', (t) => suite(t, addon, 'true'));
  }
}
