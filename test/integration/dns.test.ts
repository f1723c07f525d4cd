// The DNS proxy over real UDP and TCP sockets on 127.0.0.1: mesh answers, forwarding to a test
// upstream (TCP retry on truncation, stray replies dropped, random ids and ports), SERVFAIL when the
// upstream is down, truncation for clients without EDNS, hostile input, and the metric values.
import t, { type Test } from 'tap';
import { createSocket } from 'node:dgram';
import { Socket } from 'node:net';
import * as packet from 'dns-packet';
import { Registry } from 'prom-client';
import pino from 'pino';
import { createDnsMetrics } from '../../src/dns/dns-metrics.js';
import { startDnsProxy, type DnsProxyDeps } from '../../src/dns/dns-proxy.js';
import type { DnsServer } from '../../src/dns/dns-server.js';
import { parseResolvConf } from '../../src/dns/resolv-conf.js';
import { PlainSocketFactory } from '../../src/platform/plain-socket-factory.js';
import { State } from '../../src/state/state.js';
import { ports, service, workload } from '../../src/state/test-builders.js';
import { ask, rawAsk, TestUpstream } from '../helpers/dns-upstream.js';

const client = workload({ uid: 'c//Pod/shop/client', name: 'client', namespace: 'shop', workloadIps: ['10.0.0.1'], canonicalName: 'client-app', canonicalRevision: 'v7' });
const manyVips = Array.from({ length: 60 }, (_, i) => ({ network: '', ip: `10.97.0.${i + 1}` }));

function meshState(): State {
  const s = new State();
  s.apply({
    workloads: { upsert: [client], remove: [] },
    services: {
      upsert: [
        service({ hostname: 'cart.shop.svc.cluster.local', name: 'cart', namespace: 'shop', vips: [{ network: '', ip: '10.96.0.7' }], ports: ports({ 80: 8080 }) }),
        service({ hostname: 'big.shop.svc.cluster.local', name: 'big', namespace: 'shop', vips: manyVips }),
      ],
      remove: [],
    },
  });
  return s;
}

interface Bed {
  upstream: TestUpstream;
  server: DnsServer;
  port: number;
  registry: Registry;
}

async function bed(t: Test, resolv: (upstreamPort: number) => string = (p) => `nameserver 127.0.0.1:${p}\noptions timeout:1 attempts:1\n`): Promise<Bed> {
  const upstream = await TestUpstream.start();
  // The OpenMetrics encoding, as the app's registry (counters end in _total).
  const registry = new (Registry as unknown as new (t: string) => Registry)(Registry.OPENMETRICS_CONTENT_TYPE);
  const deps: DnsProxyDeps = {
    clusterDomain: 'cluster.local',
    ipv6Enabled: true,
    resolvConf: parseResolvConf(resolv(upstream.port)),
    state: meshState(),
    metrics: createDnsMetrics(registry),
    logger: pino({ level: 'silent' }),
  };
  const server = await startDnsProxy({ deps, sockets: new PlainSocketFactory(), addresses: [{ host: '127.0.0.1', port: 0 }], client: () => client, perPodSearch: true });
  t.teardown(async () => {
    server.close();
    await upstream.stop();
  });
  const port = Number(server.addresses()[0]!.split(':').pop());
  return { upstream, server, port, registry };
}


const ips = (r: packet.DecodedPacket) => (r.answers ?? []).flatMap((a) => (a.type === 'A' ? [a.data] : [])).sort();

t.test('a mesh Service is answered from the state over UDP and TCP, authoritative, by short name and FQDN', async (t) => {
  const b = await bed(t);
  for (const protocol of ['udp', 'tcp'] as const) {
    for (const name of ['cart', 'cart.shop', 'cart.shop.svc.cluster.local']) {
      const r = await ask(protocol, '127.0.0.1', b.port, name);
      t.ok(r, `${protocol} ${name}: answered`);
      t.equal(r!.reply.rcode, 'NOERROR');
      t.ok(r!.reply.flag_aa, 'authoritative');
      t.same(ips(r!.reply), ['10.96.0.7']);
    }
  }
  t.equal(b.upstream.queries.length, 0, 'mesh names never reach the upstream');
});

t.test('an unknown name is forwarded; the upstream sees a fresh id and random source ports; stray replies are dropped', async (t) => {
  const b = await bed(t);
  b.upstream.records.set('www.example.org', ['93.184.216.34']);
  b.upstream.strayFirst = true;
  const seenPorts = new Set<number>();
  for (let i = 0; i < 5; i++) {
    const r = await ask('udp', '127.0.0.1', b.port, 'www.example.org');
    t.ok(r, 'answered');
    t.equal(r!.reply.rcode, 'NOERROR');
    t.notOk(r!.reply.flag_aa, 'not authoritative');
    t.same(ips(r!.reply), ['93.184.216.34'], 'the stray replies (wrong id, wrong question) were not taken');
  }
  for (const q of b.upstream.queries) seenPorts.add(q.sourcePort);
  t.ok(seenPorts.size >= 4, `source ports vary per query (${[...seenPorts].join(',')})`);
  const nx = await ask('udp', '127.0.0.1', b.port, 'nope.example.org');
  t.equal(nx!.reply.rcode, 'NXDOMAIN', 'NXDOMAIN passed through');
});

t.test('a truncated upstream answer is asked again over TCP; a client without EDNS gets at most 512 bytes with TC set', async (t) => {
  const b = await bed(t);
  const many = Array.from({ length: 60 }, (_, i) => `192.0.2.${i + 1}`);
  b.upstream.records.set('many.example.org', many);
  const tcp = await ask('tcp', '127.0.0.1', b.port, 'many.example.org');
  t.equal(ips(tcp!.reply).length, 60, 'all records over TCP');
  t.ok(b.upstream.queries.some((q) => q.protocol === 'tcp' && q.name === 'many.example.org'), 'the proxy retried upstream over TCP');
  const udp = await ask('udp', '127.0.0.1', b.port, 'many.example.org');
  t.ok(udp!.bytes <= 512, `UDP reply ${udp!.bytes} bytes`);
  t.ok(udp!.reply.flag_tc, 'TC set');
  const edns = await ask('udp', '127.0.0.1', b.port, 'many.example.org', 'A', { edns: 4096 });
  t.equal(ips(edns!.reply).length, 60, 'with EDNS 4096 everything fits');
  t.notOk(edns!.reply.flag_tc);
  const mesh = await ask('udp', '127.0.0.1', b.port, 'big');
  t.ok(mesh!.bytes <= 512 && mesh!.reply.flag_tc, 'a large mesh answer is truncated too');
});

t.test('upstream down: SERVFAIL after the resolv.conf timeout; counted as an upstream failure', async (t) => {
  const b = await bed(t);
  b.upstream.silent = true;
  const r = await ask('udp', '127.0.0.1', b.port, 'down.example.org', 'A', { timeoutMs: 4000 });
  t.ok(r, 'answered before the client gave up');
  t.equal(r!.reply.rcode, 'SERVFAIL');
  const text = await b.registry.metrics();
  t.match(text, /istio_dns_upstream_failures_total\{request_query_type="a",request_protocol="udp",source_canonical_service="client-app",source_canonical_revision="v7"\} 1/);
});

t.test('malformed and oversized packets are dropped and counted; answers continue', async (t) => {
  const b = await bed(t);
  const garbage = [Buffer.from([1, 2, 3]), Buffer.alloc(5000, 7), packet.encode({ type: 'response', id: 1, questions: [{ name: 'cart', type: 'A' }] })];
  for (const g of garbage) t.equal(await rawAsk('udp', '127.0.0.1', b.port, g, 300), null, 'no answer');
  // TCP: a zero-length frame and a frame announcing more than the limit close the connection.
  for (const frame of [Buffer.from([0, 0]), Buffer.from([0xff, 0xff, 1, 2])]) {
    const s = new Socket();
    await new Promise<void>((r) => s.connect(b.port, '127.0.0.1', r));
    s.write(frame);
    await new Promise<void>((r) => s.on('close', () => r()).on('error', () => {}));
  }
  const ok = await ask('udp', '127.0.0.1', b.port, 'cart');
  t.same(ips(ok!.reply), ['10.96.0.7'], 'still answering');
  const text = await b.registry.metrics();
  t.match(text, /ztunnel_ts_dns_dropped_packets_total\{reason="malformed",request_protocol="udp"\} 2/);
  t.match(text, /ztunnel_ts_dns_dropped_packets_total\{reason="oversized",request_protocol="udp"\} 1/);
  t.match(text, /ztunnel_ts_dns_dropped_packets_total\{reason="malformed",request_protocol="tcp"\} 1/);
  t.match(text, /ztunnel_ts_dns_dropped_packets_total\{reason="oversized",request_protocol="tcp"\} 1/);
});

t.test('1,000 idle TCP connections do not stop answers to others', async (t) => {
  const b = await bed(t);
  const idle: Socket[] = [];
  t.teardown(() => idle.forEach((s) => s.destroy()));
  for (let i = 0; i < 1000; i++) {
    const s = new Socket();
    s.on('error', () => {});
    idle.push(s);
    await new Promise<void>((r) => {
      s.connect(b.port, '127.0.0.1', r);
      s.once('error', () => r());
    });
  }
  const tcp = await ask('tcp', '127.0.0.1', b.port, 'cart');
  t.same(ips(tcp!.reply), ['10.96.0.7'], 'a new TCP client is answered');
  const udp = await ask('udp', '127.0.0.1', b.port, 'cart');
  t.same(ips(udp!.reply), ['10.96.0.7'], 'a UDP client is answered');
  const open = idle.filter((s) => !s.destroyed && s.readyState === 'open').length;
  t.ok(open <= 1000, `idle connections were evicted past the limit (${open} still open)`);
});

t.test('a UDP flood of forwarded queries to a dead upstream does not stop answers to others', async (t) => {
  const b = await bed(t, (p) => `nameserver 127.0.0.1:${p}\noptions timeout:5 attempts:1\n`);
  b.upstream.silent = true;
  const flood = createSocket('udp4');
  t.teardown(() => flood.close());
  for (let i = 0; i < 3000; i++) {
    // Paced in bursts of 50 so the kernel socket buffer does not drop most of the flood first.
    if (i % 50 === 0) await new Promise((r) => setTimeout(r, 2));
    flood.send(packet.encode({ type: 'query', id: i, flags: packet.RECURSION_DESIRED, questions: [{ name: `f${i}.example.org`, type: 'A' }] }), b.port, '127.0.0.1');
  }
  // Like a stub resolver, the client retries: the kernel may drop a datagram while the flood fills
  // the socket buffer, but the proxy keeps answering.
  let r: Awaited<ReturnType<typeof ask>> = null;
  for (let i = 0; i < 3 && !r; i++) r = await ask('udp', '127.0.0.1', b.port, 'cart', 'A', { timeoutMs: 1000 });
  t.ok(r, 'answered');
  t.same(ips(r!.reply), ['10.96.0.7'], 'mesh answer while hundreds of forwards hang');
  const text = await b.registry.metrics();
  const m = /ztunnel_ts_dns_dropped_packets_total\{reason="overloaded",request_protocol="udp"\} (\d+)/.exec(text);
  t.ok(m && Number(m[1]) > 0, 'forwards over the in-flight limit were dropped and counted');
});

t.test('metric values after a known sequence of queries', async (t) => {
  const b = await bed(t);
  b.upstream.records.set('www.example.org', ['93.184.216.34']);
  await ask('udp', '127.0.0.1', b.port, 'cart'); // mesh, A, udp
  await ask('tcp', '127.0.0.1', b.port, 'cart', 'AAAA'); // mesh (no records), AAAA, tcp
  await ask('udp', '127.0.0.1', b.port, 'www.example.org'); // forwarded, ok
  await ask('udp', '127.0.0.1', b.port, 'missing.example.org'); // forwarded, NXDOMAIN = failure
  await ask('udp', '127.0.0.1', b.port, 'cart.shop.svc.cluster.local', 'TXT'); // forwarded (type)
  const text = await b.registry.metrics();
  const L = (type: string, proto: string) => `{request_query_type="${type}",request_protocol="${proto}",source_canonical_service="client-app",source_canonical_revision="v7"}`;
  t.match(text, `istio_dns_requests_total${L('a', 'udp')} 3`);
  t.match(text, `istio_dns_requests_total${L('aaaa', 'tcp')} 1`);
  t.match(text, `istio_dns_requests_total${L('txt', 'udp')} 1`);
  t.match(text, `istio_dns_upstream_requests_total${L('a', 'udp')} 2`);
  t.match(text, `istio_dns_upstream_requests_total${L('txt', 'udp')} 1`);
  t.match(text, `istio_dns_upstream_failures_total${L('a', 'udp')} 1`);
  t.match(text, `istio_dns_upstream_failures_total${L('txt', 'udp')} 1`);
  t.match(text, `istio_dns_upstream_request_duration_seconds_count${L('a', 'udp')} 2`);
  t.match(text, /istio_dns_upstream_request_duration_seconds_bucket\{le="0.0005"/);
  t.notMatch(text, /istio_dns_upstream_requests_total\{request_query_type="aaaa"/, 'mesh answers are not forwarded');
});
