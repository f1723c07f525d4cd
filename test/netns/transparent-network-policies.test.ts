// Transparent network policies end to end (issue 5; capture.md §8 and "Beyond", hbone.md
// "Beyond the reference"). The two-node bed runs with the in-pod DSCP rule
// (inpod-redirect.sh --dscp-mark 23) and node-b plays Felix: deploy/node-dscp-stamping.sh stamps
// DSCP 23 on mesh-to-mesh SYNs toward its pods. A filter rule on node-b stands in for a
// NetworkPolicy on b1 that allows only TCP 8080. Root only; CI runs it as root.
//
// Where the "NetworkPolicy" lives: FORWARD in node-b's netns, matching traffic routed toward b1,
// which is where Calico enforces ingress policy (its cali-to-wep chains hang off FORWARD on the
// destination node). The pod's own rules are left exactly as istio-cni writes them, and the port
// the policy sees is the one on the wire before the in-pod REDIRECT — the port this feature is
// about. Denied packets are DROPped (Calico's default action), so a blocked dial times out.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as http2 from 'node:http2';
import { join } from 'node:path';
import * as tls from 'node:tls';
import t from 'tap';
import { LocalCa } from '../../src/identity/local-ca.js';
import type { Daemon, LogLine } from '../helpers/daemon.js';
import { REPO_ROOT } from '../helpers/daemon.js';
import {
  APP_PORT,
  createBed,
  eventually,
  exchange,
  netnsAvailable,
  redirectRuleCount,
  startPodApp,
  type Bed,
  type BedConfig,
  type BedNode,
  type BedPod,
  type PodApp,
} from './bed.js';
import { looksLikeTlsRecord, startCapture } from './pcap.js';

const HBONE = 15008;
const OTHER_PORT = 9090;
const DSCP = 23;
const ZTUNNEL_MARK = 0x539;
const STAMP_SCRIPT = join(REPO_ROOT, 'deploy', 'node-dscp-stamping.sh');
const TRANSPARENT_ENV = { TRANSPARENT_NETWORK_POLICIES: 'true', ZTUNNEL_DSCP_MARK: String(DSCP) };
/** How long a client waits on a dial the "NetworkPolicy" drops. */
const BLOCKED_WAIT_MS = 2000;

// b2 is STRICT; b1 PERMISSIVE with no policy.
const CONFIG: BedConfig = {
  documents: `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: strict-b2
  namespace: shop
spec:
  selector:
    matchLabels: {app: b2}
  mtls:
    mode: STRICT`,
};

const marker = (): string => `zt-marker-${randomBytes(12).toString('hex')}`;

function daemon(node: BedNode): Daemon {
  if (!node.ztunnel) throw new Error(`${node.name}: ztunnel not running`);
  return node.ztunnel;
}

function accessSince(d: Daemon, from: number): LogLine[] {
  return d.logs.slice(from).filter((l) => l['component'] === 'access' && l.msg === 'connection complete');
}

async function waitAccess(d: Daemon, from: number, pred: (l: LogLine) => boolean, what: string): Promise<LogLine> {
  let found: LogLine | undefined;
  await eventually(() => (found = accessSince(d, from).find(pred)) !== undefined, 5000);
  if (!found) throw new Error(`${d.name}: no access log line ${what}; recent: ${JSON.stringify(d.logs.slice(-4))}`);
  return found;
}

/** Sum of the packet counters of every rule in `table`/`chain` of `netns` carrying `comment`. */
function counter(bed: Bed, netns: string, table: 'filter' | 'mangle' | 'nat', chain: string, comment: string): number {
  const out = bed.exec(netns, ['iptables', '-w', '-t', table, '-L', chain, '-v', '-x', '-n']);
  const lines = out.split('\n').filter((l) => l.includes(`/* ${comment} */`));
  if (!lines.length) throw new Error(`no rule with comment ${comment} in ${table}/${chain} of ${netns}:\n${out}`);
  return lines.reduce((n, l) => n + Number(l.trim().split(/\s+/)[0]), 0);
}

/** Established TCP connections in `pod` toward `ip`, as `port` numbers (ss, inside the pod netns). */
function establishedTo(bed: Bed, pod: BedPod, ip: string): number[] {
  const out = bed.exec(pod.netns, ['ss', '-Htn', 'state', 'established', 'dst', ip]);
  return out.split('\n').filter((l) => l.trim()).map((l) => {
    const peer = l.trim().split(/\s+/).at(-1) ?? '';
    return Number(peer.slice(peer.lastIndexOf(':') + 1));
  }).sort((x, y) => x - y);
}

/** DSCP of every IPv4 TCP SYN (without ACK) to `dst:port` in a classic Ethernet pcap. */
function synDscp(raw: Buffer, dst: string, port: number): number[] {
  const out: number[] = [];
  const le = raw.readUInt32LE(0) === 0xa1b2c3d4;
  const u32 = (o: number) => (le ? raw.readUInt32LE(o) : raw.readUInt32BE(o));
  for (let off = 24; off + 16 <= raw.length;) {
    const incl = u32(off + 8);
    const ip = raw.subarray(off + 16 + 14, off + 16 + incl);
    off += 16 + incl;
    if (ip.length < 40 || ip[0]! >> 4 !== 4 || ip[9] !== 6) continue;
    const tcp = ip.subarray((ip[0]! & 0x0f) * 4);
    const flags = tcp[13]!;
    if (`${ip[16]}.${ip[17]}.${ip[18]}.${ip[19]}` === dst && tcp.readUInt16BE(2) === port && (flags & 0x12) === 0x02) out.push(ip[1]! >> 2);
  }
  return out;
}

interface ForgedResult {
  readonly status: number | undefined;
  readonly body: string;
  readonly error?: string;
}

/**
 * A hand-made HBONE client inside `from` (node:tls + node:http2, a valid certificate for `from`'s
 * identity from the bed's shared CA): dials `dst:outerPort` with ztunnel's mark (so `from`'s own
 * capture leaves it alone, as it does ztunnel's dials), sends CONNECT `:authority`, writes `payload`.
 */
async function forgedConnect(ca: LocalCa, from: BedPod, dst: string, outerPort: number, authority: string, payload: string): Promise<ForgedResult> {
  const cert = await ca.issue({ trustDomain: 'cluster.local', namespace: from.namespace, serviceAccount: from.serviceAccount });
  const raw = await from.sockets.connect({ host: dst, port: outerPort, mark: ZTUNNEL_MARK, timeoutMs: 3000 });
  const secure = tls.connect({
    socket: raw,
    cert: cert.chainPem.join('\n'),
    key: cert.keyPem,
    ca: [...cert.rootsPem],
    ALPNProtocols: ['h2'],
    minVersion: 'TLSv1.3',
    // The server presents a SPIFFE URI SAN, no DNS name: the chain is verified, the name is not.
    checkServerIdentity: () => undefined,
  });
  return new Promise<ForgedResult>((resolve) => {
    let settled = false;
    let status: number | undefined;
    let body = '';
    const session = http2.connect(`https://${dst}:${outerPort}`, { createConnection: () => secure });
    const finish = (error?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      raw.destroy();
      resolve({ status, body, ...(error ? { error } : {}) });
    };
    const timer = setTimeout(() => finish('TIMEOUT'), 5000);
    session.on('error', (e) => finish(e.message));
    const stream = session.request({ ':method': 'CONNECT', ':authority': authority }, { endStream: false });
    stream.on('response', (h) => {
      status = Number(h[':status']);
      if (status === 200) stream.end(payload);
    });
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => (body += d));
    stream.on('end', () => finish());
    stream.on('close', () => finish());
    stream.on('error', (e) => finish(e.message));
  });
}

if (netnsAvailable(t)) {
  const started = Date.now();
  const bed = await createBed({ t, start: false, redirectArgs: ['--dscp-mark', String(DSCP)], ...CONFIG });
  const na = bed.nodes['node-a'];
  const nb = bed.nodes['node-b'];
  const pod = (name: string): BedPod => bed.pods[name]!;
  const [a1, a2, a3, b1, b2] = ['a1', 'a2', 'a3', 'b1', 'b2'].map(pod) as [BedPod, BedPod, BedPod, BedPod, BedPod];
  const apps: Record<string, PodApp> = {};
  for (const p of Object.values(bed.pods)) apps[p.name] = await startPodApp(p);
  const apps9090 = { b1: await startPodApp(b1, OTHER_PORT), b2: await startPodApp(b2, OTHER_PORT) };
  t.teardown(async () => {
    for (const app of [...Object.values(apps), ...Object.values(apps9090)]) await app.close();
  });
  const ca = await LocalCa.open({ stateDir: join(bed.dir, 'ca'), ttlMs: 3600_000 });

  // node-b plays Felix: mesh pods (ambient) are the stamping set; the bed's pods hang off br0.
  const meshIps = [a1, a2, b1, b2].flatMap((p) => ['--mesh-ip', p.ip]);
  execFileSync(STAMP_SCRIPT, ['install', nb.netns, '--dscp', String(DSCP), ...meshIps, '--out-iface', 'br0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stamped = () => counter(bed, nb.netns, 'mangle', 'ZTUNNEL_DSCP_SRC', 'ztunnel-dscp-stamp/stamp');
  const dscpRedirects = (p: BedPod) => redirectRuleCount(bed, p, 'nat', 'ISTIO_PRERT', 'dscp-hbone');
  const plaintextRedirects = (p: BedPod) => redirectRuleCount(bed, p, 'nat', 'ISTIO_PRERT', 'inbound-plaintext');

  // The emulated NetworkPolicy on b1: ingress TCP 8080 only (plus replies of allowed flows).
  const np = (args: string[]) => bed.exec(nb.netns, ['iptables', '-w', '-t', 'filter', '-A', 'FORWARD', '-d', b1.ip, ...args]);
  np(['-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-m', 'comment', '--comment', 'np/established', '-j', 'ACCEPT']);
  np(['-p', 'tcp', '--dport', String(APP_PORT), '-m', 'comment', '--comment', 'np/allow-8080', '-j', 'ACCEPT']);
  np(['-m', 'comment', '--comment', 'np/deny', '-j', 'DROP']);
  const denied = () => counter(bed, nb.netns, 'filter', 'FORWARD', 'np/deny');

  const startBoth = async (env: Record<string, string>) => {
    await Promise.all([bed.stopZtunnel(na), bed.stopZtunnel(nb)]);
    await Promise.all([bed.startZtunnel(na, { env }), bed.startZtunnel(nb, { env })]);
  };

  t.test('feature off: a NetworkPolicy that allows only 8080 blocks mesh traffic to 8080 (it travels on 15008)', async (t) => {
    await startBoth({});
    const control = marker();
    const plain = await exchange(a3, b1.ip, APP_PORT, control);
    t.equal(plain.data.toString(), control, 'control: plaintext from the non-mesh pod to 8080 passes the policy');
    const deniedBefore = denied();
    const peersBefore = apps['b1']!.peers.length;
    const r = await exchange(a1, b1.ip, APP_PORT, marker(), { timeoutMs: BLOCKED_WAIT_MS });
    t.equal(r.data.length, 0, 'nothing comes back to the mesh client');
    t.equal(apps['b1']!.peers.length, peersBefore, 'the app on b1 saw no connection');
    t.ok(denied() > deniedBefore, 'the policy dropped packets (the SYN to 15008)');
  });

  t.test('feature off: one pooled HBONE connection per destination pod, whatever the port', async (t) => {
    for (const port of [APP_PORT, OTHER_PORT]) {
      const m = marker();
      t.equal((await exchange(a1, b2.ip, port, m)).data.toString(), m, `a1 → b2:${port} works`);
    }
    // One pool per data-plane worker (docs/workers.md): at most one connection per worker.
    const dump = JSON.parse((await bed.http(na, 'admin', '/config_dump')).body) as { config: { numWorkerThreads: number } };
    const conns = establishedTo(bed, a1, b2.ip);
    t.same([...new Set(conns)], [HBONE], 'a1\'s connections to b2 are all on 15008');
    t.ok(conns.length >= 1 && conns.length <= dump.config.numWorkerThreads, `one pooled connection per worker at most (${conns.length} for ${dump.config.numWorkerThreads} workers)`);
  });

  t.test('feature on: mesh traffic to 8080 passes the policy, as mTLS on port 8080', async (t) => {
    await startBoth(TRANSPARENT_ENV);
    const cap = await startCapture(nb.netns, 'p-b1', join(bed.dir, 'transparent.pcap'), 'tcp');
    const [stampedBefore, dscpBefore, plainBefore] = [stamped(), dscpRedirects(b1), plaintextRedirects(b1)];
    const fromA = daemon(na).logs.length;
    const fromB = daemon(nb).logs.length;
    const m = marker();
    const r = await exchange(a1, b1.ip, APP_PORT, m);
    const { segments, raw } = await cap.stop();
    t.equal(r.data.toString(), m, 'the bytes come back through the mesh');
    t.equal(apps['b1']!.peers.at(-1), a1.ip, 'the app sees the client pod IP');
    const toB = segments.filter((s) => s.src === a1.ip && s.dst === b1.ip);
    t.ok(toB.some((s) => s.syn && s.dstPort === APP_PORT), 'the outer SYN goes to b1:8080');
    t.notOk(segments.some((s) => s.dstPort === HBONE || s.srcPort === HBONE), 'nothing on the wire uses port 15008');
    const data = toB.filter((s) => s.payload.length > 0);
    t.ok(data.length > 0 && data.every((s) => s.dstPort === APP_PORT), 'payload packets to b1 go to port 8080');
    t.ok(data.length > 0 && looksLikeTlsRecord(data[0]!.payload), 'they carry TLS records');
    t.notOk(raw.includes(Buffer.from(m)), 'the application bytes never appear in cleartext');
    t.same(synDscp(raw, b1.ip, APP_PORT), [DSCP], 'the SYN entering b1 carries DSCP 23 (one SYN)');
    t.ok(stamped() > stampedBefore, "node-b's stamping rule matched it");
    t.ok(dscpRedirects(b1) > dscpBefore, 'the in-pod DSCP rule sent it to 15008');
    t.equal(plaintextRedirects(b1), plainBefore, 'not to 15006');
    const out = await waitAccess(daemon(na), fromA, (l) => l['direction'] === 'outbound' && l['src.addr'] === `${a1.ip}:${r.localPort}`, 'outbound a1→b1');
    t.equal(out['dst.addr'], `${b1.ip}:${APP_PORT}`, 'node-a dialled the pod on its application port');
    t.equal(out['dst.hbone_addr'], `${b1.ip}:${APP_PORT}`, 'the CONNECT authority is unchanged');
    const inb = await waitAccess(daemon(nb), fromB, (l) => l['direction'] === 'inbound' && l['bytes_recv'] === m.length, 'inbound at b1');
    t.equal(inb['src.identity'], `spiffe://${a1.principal}`, 'b1 saw the mTLS identity of a1');
  });

  t.test('feature on: the policy still blocks mesh traffic to a port it does not allow (9090)', async (t) => {
    const deniedBefore = denied();
    const peersBefore = apps9090.b1.peers.length;
    const r = await exchange(a1, b1.ip, OTHER_PORT, marker(), { timeoutMs: BLOCKED_WAIT_MS });
    t.equal(r.data.length, 0, 'nothing comes back');
    t.equal(apps9090.b1.peers.length, peersBefore, 'the app on 9090 saw no connection');
    t.ok(denied() > deniedBefore, 'the policy dropped the SYN to b1:9090');
  });

  t.test('feature on: one pooled connection per destination port', async (t) => {
    for (const port of [APP_PORT, OTHER_PORT]) {
      const m = marker();
      t.equal((await exchange(a1, b2.ip, port, m)).data.toString(), m, `a1 → b2:${port} works`);
    }
    t.same(establishedTo(bed, a1, b2.ip), [APP_PORT, OTHER_PORT], 'a1 holds two connections to b2: one to 8080, one to 9090');
  });

  t.test('a forged CONNECT (outer port 8080, authority port 9090) is answered 400 and never reaches the app', async (t) => {
    // Control: the same hand-made client with a matching authority is a valid HBONE client.
    const ok = marker();
    const good = await forgedConnect(ca, a1, b1.ip, APP_PORT, `${b1.ip}:${APP_PORT}`, ok);
    t.equal(good.status, 200, 'control: a matching authority gets 200');
    t.equal(good.body, ok, 'control: and the bytes echo back from the app');

    const fromB = daemon(nb).logs.length;
    const dscpBefore = dscpRedirects(b1);
    const peersBefore = apps9090.b1.peers.length;
    const receivedBefore = apps9090.b1.received();
    const forged = await forgedConnect(ca, a1, b1.ip, APP_PORT, `${b1.ip}:${OTHER_PORT}`, 'sneak');
    t.equal(forged.status, 400, 'the forged CONNECT gets 400');
    t.ok(dscpRedirects(b1) > dscpBefore, 'the forged connection arrived stamped and redirected to 15008');
    t.ok(
      await eventually(() => daemon(nb).logs.slice(fromB).some((l) => String(l['error'] ?? l['err'] ?? '').includes(`port mismatch: ${OTHER_PORT} != ${APP_PORT}`))),
      "node-b logs 'port mismatch: 9090 != 8080'",
    );
    t.equal(apps9090.b1.peers.length, peersBefore, 'the app on 9090 saw no connection');
    t.equal(apps9090.b1.received(), receivedBefore);
  });

  t.test('plaintext from a non-mesh pod is not stamped: it lands on 15006, and STRICT refuses it', async (t) => {
    const fromB = daemon(nb).logs.length;
    const [stampedBefore, dscpBefore, plainBefore] = [stamped(), dscpRedirects(b1), plaintextRedirects(b1)];
    const cap = await startCapture(nb.netns, 'p-b1', join(bed.dir, 'plaintext.pcap'), 'tcp');
    const m = marker();
    const permissive = await exchange(a3, b1.ip, APP_PORT, m);
    const { raw } = await cap.stop();
    t.equal(permissive.data.toString(), m, 'PERMISSIVE b1: plaintext reaches the app');
    t.same(synDscp(raw, b1.ip, APP_PORT), [0], 'the SYN entering b1 carries no DSCP');
    t.equal(stamped(), stampedBefore, 'node-b did not stamp it (the source is not in the mesh)');
    t.equal(dscpRedirects(b1), dscpBefore, 'the in-pod DSCP rule did not match');
    t.ok(plaintextRedirects(b1) > plainBefore, 'it was redirected to 15006');
    const line = await waitAccess(daemon(nb), fromB, (l) => l['src.addr'] === `${a3.ip}:${permissive.localPort}`, 'inbound a3→b1');
    t.equal(line['dst.addr'], `${b1.ip}:${APP_PORT}`);
    t.notOk(line['src.identity'], 'no mTLS identity');

    const peersBefore = apps['b2']!.peers.length;
    const strict = await exchange(a3, b2.ip, APP_PORT, 'let me in');
    t.equal(strict.data.length, 0, 'STRICT b2: nothing comes back');
    t.not(strict.error, 'TIMEOUT', 'STRICT b2: the connection is closed');
    const refused = await waitAccess(daemon(nb), fromB, (l) => l['src.addr'] === `${a3.ip}:${strict.localPort}`, 'inbound a3→b2');
    t.match(String(refused['error']), /policy rejection/, 'the access log shows the STRICT rejection');
    t.equal(apps['b2']!.peers.length, peersBefore, 'the STRICT app never saw a connection');
  });

  t.test('a non-mesh pod forging DSCP 23 on its SYN lands on 15008 and fails the mTLS handshake', async (t) => {
    bed.exec(a3.netns, ['iptables', '-w', '-t', 'mangle', '-A', 'OUTPUT', '-p', 'tcp', '-d', b1.ip, '--dport', String(APP_PORT), '-j', 'DSCP', '--set-dscp', String(DSCP)]);
    t.teardown(() => {
      bed.exec(a3.netns, ['iptables', '-w', '-t', 'mangle', '-D', 'OUTPUT', '-p', 'tcp', '-d', b1.ip, '--dport', String(APP_PORT), '-j', 'DSCP', '--set-dscp', String(DSCP)]);
    });
    const [dscpBefore, plainBefore] = [dscpRedirects(b1), plaintextRedirects(b1)];
    const peersBefore = apps['b1']!.peers.length;
    const receivedBefore = apps['b1']!.received();
    const r = await exchange(a3, b1.ip, APP_PORT, 'GET / HTTP/1.1\r\nHost: b1\r\n\r\n');
    t.ok(dscpRedirects(b1) > dscpBefore, 'the forged DSCP sent the connection to 15008');
    t.equal(plaintextRedirects(b1), plainBefore, 'not to 15006');
    t.ok(r.connected, 'the TCP connection itself is accepted (by the 15008 listener)');
    t.equal(r.data.length, 0, 'nothing comes back');
    t.not(r.error, 'TIMEOUT', 'the connection is closed');
    t.equal(apps['b1']!.peers.length, peersBefore, 'the app saw no connection');
    t.equal(apps['b1']!.received(), receivedBefore, 'no bytes reached the app');
  });

  t.test('the stamping script removes its rules', async (t) => {
    execFileSync(STAMP_SCRIPT, ['remove', nb.netns], { stdio: ['ignore', 'pipe', 'pipe'] });
    const rules = bed.exec(nb.netns, ['iptables', '-w', '-t', 'mangle', '-S']);
    t.notMatch(rules, /ZTUNNEL_DSCP/, 'no chain or jump is left');
  });

  t.test("without the node stamping rule the sender's own mark (ZTUNNEL_DSCP_MARK on the SYN) still lands the dial on 15008", async (t) => {
    // a2 has no pooled connection to b1 yet: this dial is a new SYN to b1:8080, stamped by
    // node-a's ztunnel itself (IP_TOS on the dialled socket), not by node-b.
    const [dscpBefore, plainBefore] = [dscpRedirects(b1), plaintextRedirects(b1)];
    const cap = await startCapture(nb.netns, 'p-b1', join(bed.dir, 'sender-stamped.pcap'), 'tcp');
    const m = marker();
    const r = await exchange(a2, b1.ip, APP_PORT, m);
    const { raw } = await cap.stop();
    t.ok(r.data.includes(Buffer.from(m)), 'the bytes echo through the tunnel');
    t.same(synDscp(raw, b1.ip, APP_PORT), [DSCP], 'the SYN entering b1 carries DSCP 23 with no node rule');
    t.ok(dscpRedirects(b1) > dscpBefore, 'the in-pod DSCP rule sent it to 15008');
    t.equal(plaintextRedirects(b1), plainBefore, 'nothing went to 15006');
  });

  t.teardown(() => {
    t.comment(`suite wall time ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
}
