// Shared (in-pod) mode end to end (issue 4; capture.md, ports-and-modes.md): two nodes, each with a
// real ztunnel-ts process in its netns, pods enrolled over ZDS by a CNI stand-in that applies
// deploy/inpod-redirect.sh. Every case asserts bytes through (or not), what the apps saw, the wire
// (tcpdump) or iptables counters, and the access log. Root only; CI runs it as root.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { Daemon, LogLine } from '../helpers/daemon.js';
import {
  APP_PORT,
  PROBE_SOURCE_IP,
  UNLISTED_IP,
  createBed,
  eventually,
  exchange,
  netnsAvailable,
  redirectRuleCount,
  ruleCount,
  startPodApp,
  type Bed,
  type BedConfig,
  type BedNode,
  type BedPod,
  type Exchange,
  type PodApp,
} from './bed.js';
import { looksLikeTlsRecord, startCapture, type TcpSegment } from './pcap.js';

const HBONE = 15008;

// b1 denies one source identity (a2); b2 is STRICT (PeerAuthentication with a selector); everything
// else is PERMISSIVE with no policies.
const CONFIG: BedConfig = {
  policies: `- name: deny-a2
  namespace: shop
  scope: WorkloadSelector
  action: Deny
  dryRun: false
  rules:
  - - - principals: [{Exact: "cluster.local/ns/shop/sa/sa-a2"}]`,
  workloadPolicies: { b1: ['shop/deny-a2'] },
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

function accessSince(d: Daemon, from: number): LogLine[] {
  return d.logs.slice(from).filter((l) => l['component'] === 'access' && l.msg === 'connection complete');
}

/** The first access-log line after index `from` matching `pred` (bounded wait). */
async function waitAccess(d: Daemon, from: number, pred: (l: LogLine) => boolean, what: string): Promise<LogLine> {
  let found: LogLine | undefined;
  await eventually(() => (found = accessSince(d, from).find(pred)) !== undefined, 5000);
  if (!found) throw new Error(`${d.name}: no access log line ${what}; recent: ${JSON.stringify(d.logs.slice(-4))}`);
  return found;
}

/** A WARN `connection failed` line after `from` whose error contains `text` (bounded wait). */
async function waitFailed(d: Daemon, from: number, text: string): Promise<boolean> {
  return eventually(() => d.logs.slice(from).some((l) => l.msg === 'connection failed' && String(l['error'] ?? '').includes(text)), 5000);
}

function daemon(node: BedNode): Daemon {
  if (!node.ztunnel) throw new Error(`${node.name}: ztunnel not running`);
  return node.ztunnel;
}

/** The value of an unlabelled metric on a node's /metrics. */
async function metric(bed: Bed, node: BedNode, name: string): Promise<number> {
  const { body } = await bed.http(node, 'stats', '/metrics');
  const line = body.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`${node.name}: no metric ${name}`);
  return Number(line.split(' ')[1]);
}

async function ready(bed: Bed, node: BedNode): Promise<boolean> {
  return eventually(async () => (await bed.http(node, 'readiness', '/healthz/ready')).status === 200, 10_000);
}

/** The capture shows client→server HBONE on 15008, TLS records only, no cleartext payload. */
function assertHboneOnWire(t: Test, segments: TcpSegment[], raw: Buffer, client: BedPod, server: BedPod, payload: string): void {
  t.ok(segments.some((s) => s.src === client.ip && s.dst === server.ip && s.dstPort === HBONE), `packets ${client.name}→${server.name} go to port 15008`);
  const data = segments.filter((s) => s.payload.length > 0);
  t.ok(data.length > 0, 'payload-carrying packets were captured');
  t.ok(data.every((s) => s.dstPort === HBONE || s.srcPort === HBONE), 'every payload-carrying packet is on port 15008 (none on the app port)');
  t.ok(data.some((s) => looksLikeTlsRecord(s.payload)), 'the 15008 payload is TLS records');
  t.notOk(raw.includes(Buffer.from(payload)), 'the application bytes never appear in cleartext on the wire');
}

/** The connection was accepted and then closed with nothing sent back. */
function assertDropped(t: Test, r: Exchange, what: string): void {
  t.ok(r.connected, `${what}: the TCP connection is accepted`);
  t.equal(r.data.length, 0, `${what}: nothing comes back`);
  t.not(r.error, 'TIMEOUT', `${what}: the connection is closed`);
}

if (netnsAvailable(t)) {
  const bed = await createBed({ t, start: false, ...CONFIG });
  const na = bed.nodes['node-a'];
  const nb = bed.nodes['node-b'];
  const pod = (name: string): BedPod => bed.pods[name]!;
  const [a1, a2, a3, b1, b2, b3] = ['a1', 'a2', 'a3', 'b1', 'b2', 'b3'].map(pod) as [BedPod, BedPod, BedPod, BedPod, BedPod, BedPod];
  const apps: Record<string, PodApp> = {};
  for (const p of Object.values(bed.pods)) apps[p.name] = await startPodApp(p);
  t.teardown(async () => {
    for (const app of Object.values(apps)) await app.close();
  });

  t.test('readiness reports "workload proxy manager" pending until the ZDS snapshot is processed', async (t) => {
    await bed.startZtunnel(na, { snapshot: false });
    const before = await bed.http(na, 'readiness', '/healthz/ready');
    t.equal(before.status, 500, 'not ready while connected but before the snapshot');
    t.equal(before.body, 'not ready, pending: workload proxy manager\n');
    t.equal(await metric(bed, na, 'workload_manager_active_proxy_count'), 0, 'no pod proxy yet');
    const acks = await na.cni.snapshot();
    t.same(acks.map((a) => a.error), ['', '', ''], 'both Adds and SnapshotSent are ACKed');
    t.ok(await ready(bed, na), 'ready once the snapshot is processed');
    t.equal(await metric(bed, na, 'workload_manager_active_proxy_count'), 2, 'one proxy per enrolled pod');
    t.equal(await metric(bed, na, 'workload_manager_proxies_started_total'), 2);
    const dump = JSON.parse((await bed.http(na, 'admin', '/config_dump')).body) as {
      workloadState: Record<string, { state: string; info: { name: string }; connections?: { inbound: unknown[]; outbound: unknown[] } }>;
    };
    t.same(
      Object.fromEntries(Object.entries(dump.workloadState).map(([uid, w]) => [uid, `${w.info.name}:${w.state}`])),
      { [a1.uid]: 'a1:Up', [a2.uid]: 'a2:Up' },
      '/config_dump workloadState lists both pods as Up',
    );
    t.same(dump.workloadState[a1.uid]?.connections, { inbound: [], outbound: [] }, 'an Up pod carries its (empty) connection lists, as istioctl reads them');
    await bed.startZtunnel(nb);
    t.ok(await ready(bed, nb), 'node-b is ready after its snapshot');
  });

  t.test('same-node mesh traffic crosses the bridge as TLS on 15008 and the app sees the client pod IP', async (t) => {
    const cap = await startCapture(na.netns, 'p-a1', join(bed.dir, 'same-node.pcap'), 'tcp');
    const from = daemon(na).logs.length;
    const m = marker();
    const r = await exchange(a1, a2.ip, APP_PORT, m);
    const { segments, raw } = await cap.stop();
    t.equal(r.data.toString(), m, 'the bytes come back through the mesh');
    t.equal(apps['a2']!.peers.at(-1), a1.ip, 'the server app sees the client pod IP as source (transparent connect)');
    assertHboneOnWire(t, segments, raw, a1, a2, m);
    const out = await waitAccess(daemon(na), from, (l) => l['direction'] === 'outbound' && l['src.addr'] === `${a1.ip}:${r.localPort}`, 'outbound a1→a2');
    t.equal(out['dst.addr'], `${a2.ip}:${HBONE}`);
    t.equal(out['dst.hbone_addr'], `${a2.ip}:${APP_PORT}`);
    t.equal(out['bytes_sent'], m.length);
    const inb = await waitAccess(daemon(na), from, (l) => l['direction'] === 'inbound' && l['dst.hbone_addr'] === `${a2.ip}:${APP_PORT}` && l['bytes_recv'] === m.length, 'inbound at a2');
    t.equal(inb['src.identity'], `spiffe://${a1.principal}`, 'a2 saw a1 mTLS identity');
    t.equal(inb['dst.identity'], `spiffe://${a2.principal}`);
  });

  t.test('cross-node mesh traffic goes node to node as TLS on 15008 and the app sees the client pod IP', async (t) => {
    const cap = await startCapture(na.netns, 'to-b', join(bed.dir, 'cross-node.pcap'), 'tcp');
    const fromA = daemon(na).logs.length;
    const fromB = daemon(nb).logs.length;
    const m = marker();
    const r = await exchange(a1, b1.ip, APP_PORT, m);
    const { segments, raw } = await cap.stop();
    t.equal(r.data.toString(), m, 'the bytes come back through the mesh');
    t.equal(apps['b1']!.peers.at(-1), a1.ip, 'the server app on the other node sees the client pod IP');
    assertHboneOnWire(t, segments, raw, a1, b1, m);
    const out = await waitAccess(daemon(na), fromA, (l) => l['direction'] === 'outbound' && l['src.addr'] === `${a1.ip}:${r.localPort}`, 'outbound a1→b1');
    t.equal(out['dst.addr'], `${b1.ip}:${HBONE}`);
    t.equal(out['dst.identity'], `spiffe://${b1.principal}`);
    const inb = await waitAccess(daemon(nb), fromB, (l) => l['direction'] === 'inbound' && l['bytes_recv'] === m.length, 'inbound at b1');
    t.match(inb['src.addr'], new RegExp(`^${a1.ip.replaceAll('.', '\\.')}:`), 'node-b sees the HBONE connection coming from the client pod IP');
    t.equal(inb['src.workload'], 'a1');
    t.equal(inb['src.identity'], `spiffe://${a1.principal}`);
  });

  t.test("ztunnel's own dials carry mark 0x539 and are not captured again: one hop, one log line per side", async (t) => {
    // Counting rules (no target) in a1's mangle OUTPUT: SYNs to 15008 with and without the mark.
    const count = (tag: string) => ruleCount(bed, a1.netns, 'mangle', 'OUTPUT', `zt-test/${tag}`);
    for (const [neg, tag] of [[[], 'marked-hbone-syn'], [['!'], 'unmarked-hbone-syn']] as const) {
      bed.exec(a1.netns, ['iptables', '-w', '-t', 'mangle', '-A', 'OUTPUT', '-p', 'tcp', '--syn', '--dport', String(HBONE), '-m', 'mark', ...neg, '--mark', '0x539/0xfff', '-m', 'comment', '--comment', `zt-test/${tag}`]);
    }
    const redirectsBefore = redirectRuleCount(bed, a1, 'nat', 'ISTIO_OUTPUT', 'outbound');
    const fromA = daemon(na).logs.length;
    const fromB = daemon(nb).logs.length;
    const m = marker();
    // a1 has never talked to b2: the pool must dial a new HBONE connection.
    const r = await exchange(a1, b2.ip, APP_PORT, m);
    t.equal(r.data.toString(), m, 'the connection works');
    t.ok(count('marked-hbone-syn') >= 1, 'the HBONE dial left the pod with mark 0x539');
    t.equal(count('unmarked-hbone-syn'), 0, 'no unmarked SYN to 15008 left the pod');
    t.equal(redirectRuleCount(bed, a1, 'nat', 'ISTIO_OUTPUT', 'outbound') - redirectsBefore, 1, 'only the app connection hit the 15001 REDIRECT');
    await waitAccess(daemon(nb), fromB, (l) => l['direction'] === 'inbound' && l['bytes_recv'] === m.length, 'inbound at b2');
    await waitAccess(daemon(na), fromA, (l) => l['src.addr'] === `${a1.ip}:${r.localPort}`, 'outbound a1→b2');
    t.equal(accessSince(daemon(na), fromA).filter((l) => l['direction'] === 'outbound').length, 1, 'node-a logged exactly one outbound connection');
    t.equal(accessSince(daemon(na), fromA).filter((l) => l['direction'] === 'inbound').length, 0, 'node-a logged no inbound connection (nothing looped back)');
    t.equal(accessSince(daemon(nb), fromB).length, 1, 'node-b logged exactly one inbound connection');
  });

  t.test('kubelet-probe traffic from 169.254.7.127 bypasses capture, other node traffic is captured', async (t) => {
    const probesBefore = redirectRuleCount(bed, a1, 'nat', 'ISTIO_PRERT', 'probe-in');
    const from = daemon(na).logs.length;
    const probe = await exchange(na, a1.ip, APP_PORT, 'probe', { sourceIp: PROBE_SOURCE_IP });
    t.equal(probe.data.toString(), 'probe', 'the probe reaches the app');
    t.equal(apps['a1']!.peers.at(-1), PROBE_SOURCE_IP, 'the app sees the probe address');
    t.ok(redirectRuleCount(bed, a1, 'nat', 'ISTIO_PRERT', 'probe-in') > probesBefore, 'the probe ACCEPT rule matched');
    const control = await exchange(na, a1.ip, APP_PORT, 'from-node');
    t.equal(control.data.toString(), 'from-node');
    const line = await waitAccess(daemon(na), from, (l) => l['direction'] === 'inbound' && String(l['src.addr']).startsWith(`${na.ip}:`), 'inbound from the node IP');
    t.equal(line['dst.addr'], `${a1.ip}:${APP_PORT}`, 'node traffic not from the probe address is captured on 15006');
    t.notOk(line['src.identity'], 'plaintext: no peer identity');
    t.equal(apps['a1']!.peers.at(-1), na.ip, 'captured plaintext keeps the client IP (transparent connect)');
    t.notOk(accessSince(daemon(na), from).some((l) => String(l['src.addr']).startsWith(`${PROBE_SOURCE_IP}:`)), 'ztunnel never saw the probe');
  });

  t.test('mesh pod to non-mesh pod is plain TCP: direct to a TCP workload, passthrough to an unknown IP', async (t) => {
    const cap = await startCapture(na.netns, 'to-b', join(bed.dir, 'plain.pcap'), 'tcp');
    const from = daemon(na).logs.length;
    const m1 = marker();
    const direct = await exchange(a1, b3.ip, APP_PORT, m1);
    const m2 = marker();
    const passthrough = await exchange(a1, UNLISTED_IP, APP_PORT, m2);
    const { segments, raw } = await cap.stop();
    t.equal(direct.data.toString(), m1, 'bytes reach the non-mesh app and back');
    t.equal(passthrough.data.toString(), m2, 'bytes reach the unlisted address and back');
    t.equal(apps['b3']!.peers.at(-1), a1.ip, 'the non-mesh app sees the client pod IP');
    t.notOk(segments.some((s) => s.dstPort === HBONE || s.srcPort === HBONE), 'nothing went to 15008');
    t.ok(raw.includes(Buffer.from(m1)) && raw.includes(Buffer.from(m2)), 'the payload is on the wire in cleartext (the capture sees plaintext when it is there)');
    const d = await waitAccess(daemon(na), from, (l) => l['src.addr'] === `${a1.ip}:${direct.localPort}`, 'a1→b3');
    t.equal(d['dst.addr'], `${b3.ip}:${APP_PORT}`);
    t.equal(d['dst.workload'], 'b3');
    t.notOk(d['dst.hbone_addr'], 'no HBONE authority');
    t.notOk(d['src.identity'], 'no mTLS identity');
    const p = await waitAccess(daemon(na), from, (l) => l['src.addr'] === `${a1.ip}:${passthrough.localPort}`, 'a1→unlisted');
    t.equal(p['dst.addr'], `${UNLISTED_IP}:${APP_PORT}`);
    t.notOk(p['dst.workload'], 'passthrough: no destination workload');
    t.notOk(p['dst.hbone_addr']);
  });

  t.test('non-mesh pod to mesh pod arrives on 15006: allowed when PERMISSIVE, refused when STRICT', async (t) => {
    const from = daemon(nb).logs.length;
    const m = marker();
    const permissive = await exchange(a3, b1.ip, APP_PORT, m);
    t.equal(permissive.data.toString(), m, 'PERMISSIVE: plaintext reaches the app');
    t.equal(apps['b1']!.peers.at(-1), a3.ip, 'the app sees the non-mesh client IP');
    const line = await waitAccess(daemon(nb), from, (l) => l['src.addr'] === `${a3.ip}:${permissive.localPort}`, 'inbound a3→b1');
    t.equal(line['direction'], 'inbound');
    t.equal(line['dst.addr'], `${b1.ip}:${APP_PORT}`, 'inbound plaintext keeps the original destination');
    t.notOk(line['src.identity']);

    const receivedBefore = apps['b2']!.received();
    const peersBefore = apps['b2']!.peers.length;
    const strict = await exchange(a3, b2.ip, APP_PORT, 'let me in');
    t.equal(strict.data.length, 0, 'STRICT: nothing comes back');
    t.not(strict.error, 'TIMEOUT', 'STRICT: the connection is closed');
    const denied = await waitAccess(daemon(nb), from, (l) => l['src.addr'] === `${a3.ip}:${strict.localPort}`, 'inbound a3→b2');
    t.match(String(denied['error']), /policy rejection/, 'the access log shows the policy rejection');
    t.equal(apps['b2']!.peers.length, peersBefore, 'the STRICT app never saw a connection');
    t.equal(apps['b2']!.received(), receivedBefore);
  });

  t.test('a policy denying one source pod: 401, the app sees nothing, other sources still pass', async (t) => {
    const fromA = daemon(na).logs.length;
    const fromB = daemon(nb).logs.length;
    const peersBefore = apps['b1']!.peers.length;
    const denied = await exchange(a2, b1.ip, APP_PORT, 'from a2');
    t.equal(denied.data.length, 0, 'nothing comes back to the denied client');
    t.not(denied.error, 'TIMEOUT', 'the denied connection is closed');
    const inb = await waitAccess(daemon(nb), fromB, (l) => l['src.identity'] === `spiffe://${a2.principal}`, 'denied inbound');
    t.match(String(inb['error']), /policy rejection/, 'node-b logs the policy rejection for a2');
    const out = await waitAccess(daemon(na), fromA, (l) => l['src.addr'] === `${a2.ip}:${denied.localPort}`, 'outbound a2→b1');
    t.match(String(out['error']), /401/, 'node-a logs the 401 answer');
    t.equal(apps['b1']!.peers.length, peersBefore, 'the app never saw the denied connection');
    const allowed = await exchange(a1, b1.ip, APP_PORT, 'from a1');
    t.equal(allowed.data.toString(), 'from a1', 'another source pod is still allowed');
  });

  t.test('a policy change closes a live mesh connection it now denies (re-authorization across pods)', async (t) => {
    const from = daemon(nb).logs.length;
    const live = await a1.sockets.connect({ host: b1.ip, port: APP_PORT, timeoutMs: 5000 });
    // Ended (FIN) or reset: either way the tunnel is gone (the app socket is half-open capable).
    const closed = new Promise<void>((resolve) => {
      for (const ev of ['end', 'close', 'error']) live.on(ev, () => resolve());
    });
    const echoed = new Promise<string>((resolve) => live.once('data', (d: Buffer) => resolve(d.toString())));
    live.write('still here');
    t.equal(await echoed, 'still here', 'the connection is up');
    const denyA1 = `- name: deny-a1
  namespace: shop
  scope: WorkloadSelector
  action: Deny
  dryRun: false
  rules:
  - - - principals: [{Exact: "${a1.principal}"}]`;
    bed.writeConfig({ ...CONFIG, policies: `${CONFIG.policies}\n${denyA1}`, workloadPolicies: { b1: ['shop/deny-a2', 'shop/deny-a1'] } });
    try {
      const outcome = await Promise.race([closed.then(() => 'closed'), new Promise<string>((r) => setTimeout(() => r('still open'), 8000))]);
      t.equal(outcome, 'closed', 'the live connection is closed by the new policy');
      t.ok(await eventually(() => daemon(nb).logs.slice(from).some((l) => l.msg === 'connections closed due to policy change')), 'node-b logs the re-authorization');
    } finally {
      live.destroy();
      bed.writeConfig(CONFIG);
    }
    t.ok(await eventually(async () => (await exchange(a1, b1.ip, APP_PORT, 'allowed again', { timeoutMs: 1000 })).data.toString() === 'allowed again'), 'a1 is allowed again once the policy is gone');
  });

  t.test('hostile calls into the pod netns on 15001/15006/15008 are refused as the spec says', async (t) => {
    const from = daemon(na).logs.length;
    const receivedBefore = apps['a1']!.received();
    // From inside captured a1 (istio/ztunnel tests/namespaced.rs malicious_calls_inpod).
    for (const [host, label] of [['127.0.0.1', 'localhost'], [a1.ip, 'its own pod IP']] as const) {
      for (const port of [15001, 15006, 15008]) {
        assertDropped(t, await exchange(a1, host, port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'), `a1 → ${label}:${port}`);
      }
    }
    for (const port of [15080, 15000, 15020, 15021]) {
      const r = await exchange(a1, '127.0.0.1', port, 'x');
      t.equal(r.error, 'ECONNREFUSED', `a1 → localhost:${port}: nothing listens there in the pod`);
    }
    // From the non-mesh pod: 15001/15006 are redirected to 15006 and dropped; 15008 wants TLS.
    for (const port of [15001, 15006, 15008]) {
      assertDropped(t, await exchange(a3, a1.ip, port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'), `a3 → a1:${port}`);
    }
    t.ok(await waitFailed(daemon(na), from, 'attempted recursive call to ourselves'), 'outbound to localhost:15001 is logged as a recursive call');
    t.ok(await waitFailed(daemon(na), from, 'illegal destination port 15006'), 'plaintext to an illegal port is logged and dropped');
    t.ok(await waitFailed(daemon(na), from, 'illegal upstream port 15001'), 'HBONE to an illegal upstream port is refused');
    t.equal(apps['a1']!.received(), receivedBefore, 'the app received none of it');
  });

  t.test('Del drains only that pod: its listeners are gone, the other pods keep working', async (t) => {
    const ack = await na.cni.del(a2.uid);
    t.equal(ack.error, '', 'Del is ACKed');
    const refused = async (p: BedPod, host: string, port: number) => (await exchange(p, host, port, 'x', { timeoutMs: 1000 })).error === 'ECONNREFUSED';
    t.ok(await eventually(() => refused(a2, '127.0.0.1', HBONE)), "a2's 15008 is closed");
    t.ok(await refused(a2, '127.0.0.1', 15001), "a2's 15001 is closed");
    t.ok(await refused(a2, '127.0.0.1', 15006), "a2's 15006 is closed");
    const still = await exchange(a1, '127.0.0.1', HBONE, '');
    t.ok(still.connected, "a1's 15008 still listens");
    const r = await exchange(a1, b1.ip, APP_PORT, 'after del');
    t.equal(r.data.toString(), 'after del', 'a1 still reaches b1 through the mesh');
    t.ok(await eventually(async () => (await metric(bed, na, 'workload_manager_active_proxy_count')) === 1), 'one active proxy left');
    t.ok(await eventually(async () => (await metric(bed, na, 'workload_manager_proxies_stopped_total')) === 1), 'one proxy stopped');
    const dump = JSON.parse((await bed.http(na, 'admin', '/config_dump')).body) as { workloadState: Record<string, unknown> };
    t.same(Object.keys(dump.workloadState), [a1.uid], 'workloadState no longer lists a2');
  });

  t.test('an Add waits for its workload to appear in the config, then starts the pod proxy', async (t) => {
    const from = daemon(na).logs.length;
    bed.writeConfig({ ...CONFIG, omitWorkloads: ['a2'] });
    const reloaded = (n: number) => eventually(() => daemon(na).logs.slice(from).some((l) => l['component'] === 'local_config' && l['workloads'] === n));
    t.ok(await reloaded(5), 'node-a reloaded the config without a2');
    const added = na.cni.add({ uid: a2.uid, info: { name: 'a2', namespace: a2.namespace, serviceAccount: a2.serviceAccount }, netnsFd: a2.netnsFd, netns: a2.netns });
    await new Promise((r) => setTimeout(r, 1000));
    t.equal(na.ztunnel?.logs.slice(from).some((l) => l.msg === 'pod enrolled; in-pod listeners started'), false, 'no proxy starts while the workload is unknown');
    bed.writeConfig(CONFIG);
    t.equal((await added).error, '', 'the Add is ACKed once the workload shows up');
    t.ok(await eventually(() => daemon(na).logs.slice(from).some((l) => l.msg === 'pod enrolled; in-pod listeners started' && l['uid'] === a2.uid)), 'the proxy started after the wait');
    const r = await exchange(a2, a1.ip, APP_PORT, 'a2 is back');
    t.equal(r.data.toString(), 'a2 is back', 'a2 traffic flows again');
    t.equal(apps['a1']!.peers.at(-1), a2.ip);
  });

  t.test('a pod whose listeners cannot bind is NACKed, kept pending (not ready) and retried until it starts', async (t) => {
    t.equal((await na.cni.del(a2.uid)).error, '');
    t.ok(await eventually(async () => (await exchange(a2, '127.0.0.1', HBONE, '', { timeoutMs: 1000 })).error === 'ECONNREFUSED'), 'a2 drained');
    // Something else holds 15008 in the pod (no SO_REUSEPORT): ztunnel's bind fails.
    const blocker = await a2.sockets.listen({ host: '0.0.0.0', port: HBONE });
    let closed = false;
    const unblock = () => {
      if (closed) return Promise.resolve();
      closed = true;
      return new Promise<void>((r) => blocker.server.close(() => r()));
    };
    t.teardown(unblock);
    const ack = await na.cni.add({ uid: a2.uid, info: { name: 'a2', namespace: a2.namespace, serviceAccount: a2.serviceAccount }, netnsFd: a2.netnsFd, netns: a2.netns });
    t.match(ack.error, /address in use|EADDRINUSE/, 'NACK names the bind failure');
    const notReady = await bed.http(na, 'readiness', '/healthz/ready');
    t.equal(notReady.body, 'not ready, pending: workload proxy manager\n', 'readiness is pending while a pod is pending');
    t.equal(await metric(bed, na, 'workload_manager_pending_proxy_count'), 1);
    const dump = JSON.parse((await bed.http(na, 'admin', '/config_dump')).body) as { workloadState: Record<string, { state: string }> };
    t.equal(dump.workloadState[a2.uid]?.state, 'Pending');
    await unblock();
    t.ok(await ready(bed, na), 'the 5 s retry starts the proxy and readiness completes');
    t.equal(await metric(bed, na, 'workload_manager_pending_proxy_count'), 0);
    const r = await exchange(a2, a1.ip, APP_PORT, 'retried');
    t.equal(r.data.toString(), 'retried', 'the retried pod carries traffic');
  });

  t.test('after a ztunnel restart the pods are re-enrolled from the snapshot and traffic works again', async (t) => {
    t.equal(await bed.stopZtunnel(na).then(() => daemon(na).child.exitCode), 0, 'SIGTERM drains and exits 0');
    const down = await exchange(a1, b1.ip, APP_PORT, 'while down', { timeoutMs: 2000 });
    t.equal(down.error, 'ECONNREFUSED', 'with ztunnel gone, captured traffic has nowhere to go (no bypass)');
    await bed.startZtunnel(na);
    t.ok(await ready(bed, na), 'ready after the new snapshot');
    const m = marker();
    const r = await exchange(a1, b1.ip, APP_PORT, m);
    t.equal(r.data.toString(), m, 'traffic works again');
    t.equal(apps['b1']!.peers.at(-1), a1.ip);
    const dump = JSON.parse((await bed.http(na, 'admin', '/config_dump')).body) as { workloadState: Record<string, { state: string }> };
    t.same(Object.fromEntries(Object.entries(dump.workloadState).map(([k, v]) => [k, v.state])), { [a1.uid]: 'Up', [a2.uid]: 'Up' });
  });

  t.test('a ZDS protocol violation (a second SnapshotSent) makes ztunnel exit with status 1', async (t) => {
    const ack = await na.cni.connection.request({ kind: 'snapshotSent' });
    t.not(ack.error, '', 'the violation is NACKed first');
    const code = await Promise.race([daemon(na).exited, new Promise<string>((r) => setTimeout(() => r('still running'), 10_000))]);
    t.equal(code, 1, 'the process exits with status 1');
  });
}
