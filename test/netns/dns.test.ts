// The DNS proxy in shared mode end to end (docs/dns.md): pods with istio-cni's DNS capture rules
// (deploy/inpod-redirect.sh --dns) ask their nameserver; ztunnel-ts answers on 15053 inside the pod
// netns. A mesh Service resolves (libc resolver with the pod's search list: short name and FQDN)
// to its VIP and is then reached through HBONE; other names go to a test resolver in the bed,
// queried from the pod's netns; a dead upstream gives SERVFAIL; with DNS capture off there is no
// listener. Root only; CI runs it as root.
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import * as packet from 'dns-packet';
import t from 'tap';
import { TestUpstream } from '../helpers/dns-upstream.js';
import { APP_PORT, createBed, eventually, exchange, netnsAvailable, startPodApp, type BedPod } from './bed.js';

const execFileAsync = promisify(execFile);
const VIP = '10.96.0.50';
const OUTSIDE = 'outside.example.org';

if (netnsAvailable(t)) {
  t.test('shared mode: pods resolve mesh names and outside names through ztunnel-ts on 15053', async (t) => {
    const bed = await createBed({
      t,
      start: false,
      redirectArgs: ['--dns'],
      services: `- name: web
  namespace: shop
  hostname: web.shop.svc.cluster.local
  vips: ["/${VIP}"]
  ports: {80: ${APP_PORT}}
  subjectAltNames: []
  canonical: true`,
      workloadServices: { b1: `{"shop/web.shop.svc.cluster.local": {80: ${APP_PORT}}}` },
    });
    const [nodeA, nodeB] = [bed.nodes['node-a'], bed.nodes['node-b']];
    const [a1, b1] = [bed.pods['a1']!, bed.pods['b1']!];

    // The test upstream resolver runs in node-a's netns on its bridge address (the pods' gateway).
    const upstream = await TestUpstream.start(nodeA.ip, 53, nodeA.sockets);
    t.teardown(() => upstream.stop());
    upstream.records.set(OUTSIDE, ['192.0.2.10']);
    const upstreamConf = `${bed.dir}/upstream-resolv.conf`;
    writeFileSync(upstreamConf, `nameserver ${nodeA.ip}\nsearch cluster.local\n`);

    // Node-a: DNS proxy on (Istio's default); node-b: ISTIO_META_DNS_CAPTURE=false.
    await bed.startZtunnel(nodeA, { env: { ZTUNNEL_TS_DNS_RESOLV_CONF: upstreamConf, RUST_LOG: 'info,dns=debug' } });
    await bed.startZtunnel(nodeB, { env: { ZTUNNEL_TS_DNS_RESOLV_CONF: upstreamConf, ISTIO_META_DNS_CAPTURE: 'false' } });

    // The pod's resolv.conf as Kubernetes writes it (ip netns exec mounts /etc/netns/<ns>/resolv.conf).
    for (const pod of [a1, b1]) {
      const dir = `/etc/netns/${pod.netns}`;
      mkdirSync(dir, { recursive: true });
      t.teardown(() => rmSync(dir, { recursive: true, force: true }));
      writeFileSync(`${dir}/resolv.conf`, `nameserver ${pod.node.ip}\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5 timeout:2 attempts:2\n`);
    }
    // Asynchronous: the test upstream answers from this process while getent waits.
    const getent = async (pod: BedPod, name: string) => {
      try {
        const { stdout } = await execFileAsync('ip', ['netns', 'exec', pod.netns, 'getent', 'ahostsv4', name], { timeout: 20_000 });
        return stdout.split('\n')[0]?.split(/\s+/)[0] ?? '';
      } catch {
        return '';
      }
    };

    t.test('a mesh Service by short name and by FQDN resolves to its VIP, and the VIP is reached through HBONE', async (t) => {
      t.equal(await getent(a1, 'web'), VIP, 'short name through the search list');
      t.equal(await getent(a1, 'web.shop.svc.cluster.local'), VIP, 'FQDN');
      t.equal(await getent(a1, 'web.shop'), VIP, '<svc>.<ns>');
      t.equal(upstream.queries.filter((q) => q.name.startsWith('web')).length, 0, 'the upstream never saw the mesh name');
      const app = await startPodApp(b1);
      t.teardown(() => app.close());
      const r = await exchange(a1, VIP, 80, 'hello-dns');
      t.equal(r.data.toString(), 'hello-dns', 'echo through the VIP');
      t.same(app.peers, [a1.ip], 'the app saw the client pod (HBONE keeps the source)');
    });

    t.test('a name outside the mesh is answered by the upstream resolver, asked from the pod netns with the ztunnel mark', async (t) => {
      t.equal(await getent(a1, OUTSIDE), '192.0.2.10');
      const seen = upstream.queries.filter((q) => q.name === OUTSIDE && q.type === 'A');
      t.ok(seen.length > 0, 'the upstream saw the query');
      t.ok(seen.every((q) => q.sourceIp === a1.ip), `the query left from the pod's address (${seen.map((q) => q.sourceIp).join(',')})`);
      // The pod's own DNS rule would have captured an unmarked query again: the mark kept it out.
      const stats = await bed.http(nodeA, 'stats', '/metrics');
      t.match(stats.body, /istio_dns_upstream_requests_total\{request_query_type="a",request_protocol="udp",source_canonical_service="a1",source_canonical_revision="v1"\} [1-9]/);
      t.match(stats.body, /istio_dns_requests_total\{request_query_type="a",request_protocol="udp",source_canonical_service="a1",source_canonical_revision="v1"\} [1-9]/);
    });

    t.test('TCP queries are captured and answered too', async (t) => {
      const r = await podAsk(a1, 'tcp', nodeA.ip, 'web.shop.svc.cluster.local', 5000);
      t.same(r?.answers?.map((a) => (a.type === 'A' ? a.data : a.type)), [VIP]);
    });

    t.test('upstream down: SERVFAIL within the resolver timeout (5 s × 2 attempts)', async (t) => {
      upstream.silent = true;
      t.teardown(() => {
        upstream.silent = false;
      });
      const r = await podAsk(a1, 'udp', nodeA.ip, 'down.example.org', 15_000);
      t.ok(r, 'answered');
      t.equal((r as { rcode?: string } | null)?.rcode, 'SERVFAIL');
    });

    t.test('the access log (dns=debug) records each answer', async (t) => {
      const d = nodeA.ztunnel!;
      t.ok(await eventually(() => d.logs.some((l) => l['component'] === 'dns' && l['domain'] === 'web.shop.svc.cluster.local.' && l['result'] === 'success')), 'mesh answer logged');
      const fwd = d.logs.find((l) => l['component'] === 'dns' && l['domain'] === `${OUTSIDE}.`);
      t.equal(fwd?.['result'], 'forwarded');
      t.equal(fwd?.['src.workload'], 'a1');
      t.equal(fwd?.['src.namespace'], 'shop');
    });

    t.test('DNS capture off: no listener on 15053; the captured query gets no answer', async (t) => {
      const listeners = bed.exec(b1.netns, ['ss', '-Hlnu', 'sport = :15053']) + bed.exec(b1.netns, ['ss', '-Hlnt', 'sport = :15053']);
      t.equal(listeners.trim(), '', 'nothing listens on 15053 in the pod');
      t.equal(await podAsk(b1, 'udp', nodeB.ip, 'web.shop.svc.cluster.local', 2000), null, 'no answer: the rules still send it to 15053');
      const dump = JSON.parse((await bed.http(nodeB, 'admin', '/config_dump')).body) as { dns: { enabled: boolean }; config: { dnsProxy: boolean } };
      t.equal(dump.config.dnsProxy, false, '/config_dump config.dnsProxy');
      t.equal(dump.dns.enabled, false, '/config_dump dns.enabled');
      const dumpA = JSON.parse((await bed.http(nodeA, 'admin', '/config_dump')).body) as { dns: { enabled: boolean; listeners: Record<string, string[]> } };
      t.equal(dumpA.dns.enabled, true);
      t.match(dumpA.dns.listeners[a1.uid], ['127.0.0.1:15053'], 'node-a lists the pod listener');
    });
  });
}

/** One query from inside `pod` (an app socket: captured by the pod's rules). */
async function podAsk(pod: BedPod, protocol: 'udp' | 'tcp', server: string, name: string, timeoutMs: number): Promise<packet.DecodedPacket | null> {
  if (protocol === 'tcp') {
    // TCP from inside the pod: connect through the pod's factory, then frame by hand.
    const socket = await pod.sockets.connect({ host: server, port: 53, timeoutMs });
    const q = packet.encode({ type: 'query', id: 99, flags: packet.RECURSION_DESIRED, questions: [{ name, type: 'A' }] });
    return new Promise((resolve) => {
      let buf: Buffer = Buffer.alloc(0);
      const timer = setTimeout(() => done(null), timeoutMs);
      const done = (p: packet.DecodedPacket | null) => {
        clearTimeout(timer);
        socket.destroy();
        resolve(p);
      };
      socket.on('error', () => done(null));
      socket.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) done(packet.decode(buf.subarray(2, 2 + buf.readUInt16BE(0))));
      });
      const framed = Buffer.alloc(2 + q.length);
      framed.writeUInt16BE(q.length, 0);
      q.copy(framed, 2);
      socket.write(framed);
    });
  }
  const socket = await pod.sockets.udpSocket({ family: 4 });
  const q = packet.encode({ type: 'query', id: 98, flags: packet.RECURSION_DESIRED, questions: [{ name, type: 'A' }] });
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(null), timeoutMs);
    const done = (p: packet.DecodedPacket | null) => {
      clearTimeout(timer);
      socket.close();
      resolve(p);
    };
    socket.on('message', (m) => done(packet.decode(m)));
    socket.on('error', () => {});
    socket.send(q, 53, server);
  });
}


