// The delta ADS client against the stand-in istiod (real grpc-js server, real TLS, HTTP/2 on
// 127.0.0.1): initial sync and readiness, incremental pushes, per-resource NACKs, reconnects with
// initial_resource_versions, token rotation, headers and node, on-demand, TLS verification.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { status as GrpcStatus } from '@grpc/grpc-js';
import t, { type Test } from 'tap';
import { AdsClient, type AdsConfig, type TerminationReason, type XdsMetrics } from '../../src/xds/ads-client.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL } from '../../src/xds/xds-proto.js';
import type { StateBatch, StateSink } from '../../src/state/batch.js';
import type { Service, Workload } from '../../src/state/model.js';
import type { Authorization } from '../../src/policy/model.js';
import { FakeIstiod } from '../helpers/fake-istiod.js';
import { createLogger, type Logger } from '../../src/telemetry/logger.js';

const WAIT_MS = 10_000;

/** A real in-memory store applying batches as the state layer does (remove, then upsert). */
class MemorySink implements StateSink {
  readonly workloads = new Map<string, Workload>();
  readonly services = new Map<string, Service>();
  readonly policies = new Map<string, Authorization>();
  readonly batches: StateBatch[] = [];
  readonly #listeners: (() => void)[] = [];

  apply(batch: StateBatch): void {
    this.batches.push(batch);
    for (const uid of batch.workloads?.remove ?? []) this.workloads.delete(uid);
    for (const w of batch.workloads?.upsert ?? []) this.workloads.set(w.uid, w);
    for (const k of batch.services?.remove ?? []) this.services.delete(k);
    for (const s of batch.services?.upsert ?? []) this.services.set(`${s.namespace}/${s.hostname}`, s);
    for (const k of batch.policies?.remove ?? []) this.policies.delete(k);
    for (const p of batch.policies?.upsert ?? []) this.policies.set(`${p.namespace}/${p.name}`, p);
    for (const l of [...this.#listeners]) l();
  }

  /** Resolves once `pred` holds (checked now and after every batch); rejects after WAIT_MS. */
  until(pred: () => boolean, what: string): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { off(); reject(new Error(`timed out waiting for ${what}`)); }, WAIT_MS);
      const l = () => { if (pred()) { off(); clearTimeout(timer); resolve(); } };
      const off = () => { const i = this.#listeners.indexOf(l); if (i >= 0) this.#listeners.splice(i, 1); };
      this.#listeners.push(l);
    });
  }
}

class RecordingMetrics implements XdsMetrics {
  readonly terminations: TerminationReason[] = [];
  readonly messages: { typeUrl: string; bytes: number }[] = [];
  readonly #waiters: (() => void)[] = [];
  connectionTerminated(reason: TerminationReason): void {
    this.terminations.push(reason);
    for (const w of [...this.#waiters]) w();
  }
  message(typeUrl: string, bytes: number): void {
    this.messages.push({ typeUrl, bytes });
  }
  untilTerminations(n: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.terminations.length < n) return false;
        const i = this.#waiters.indexOf(check2);
        if (i >= 0) this.#waiters.splice(i, 1);
        clearTimeout(timer);
        resolve();
        return true;
      };
      const check2 = () => { check(); };
      const timer = setTimeout(() => reject(new Error(`fewer than ${n} terminations`)), WAIT_MS);
      if (!check()) this.#waiters.push(check2);
    });
  }
}

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), WAIT_MS); }),
  ]);
}

const ip = (s: string) => Buffer.from(s.split('.').map(Number));

function workload(name: string, addr: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    uid: `Kubernetes//Pod/shop/${name}`,
    name,
    namespace: 'shop',
    addresses: [ip(addr)],
    tunnel_protocol: 1,
    service_account: name,
    node: 'node-a',
    services: { 'shop/cart.shop.svc.cluster.local': { ports: [{ service_port: 80, target_port: 8080 }] } },
    ...extra,
  };
}

const cartService = {
  name: 'cart',
  namespace: 'shop',
  hostname: 'cart.shop.svc.cluster.local',
  addresses: [{ network: '', address: ip('10.96.0.7') }],
  ports: [{ service_port: 80, target_port: 8080 }],
};

const denyPolicy = {
  name: 'deny-9090',
  namespace: 'shop',
  scope: 1,
  action: 1,
  rules: [{ clauses: [{ matches: [{ destination_ports: [9090] }] }] }],
};

interface Setup {
  readonly fake: FakeIstiod;
  readonly sink: MemorySink;
  readonly metrics: RecordingMetrics;
  readonly client: AdsClient;
  readonly tokenFile: string;
  readonly firstAcks: string[];
}

async function setup(
  tt: Test,
  opts: { config?: Partial<AdsConfig>; fake?: Parameters<typeof FakeIstiod.start>[0]; seed?: (f: FakeIstiod) => void; logger?: Logger } = {},
): Promise<Setup> {
  const fake = await FakeIstiod.start(opts.fake);
  opts.seed?.(fake);
  const dir = mkdtempSync(path.join(tmpdir(), 'xds-client-'));
  const tokenFile = path.join(dir, 'istio-token');
  writeFileSync(tokenFile, 'token-a\n');
  const rootFile = path.join(dir, 'root-cert.pem');
  writeFileSync(rootFile, fake.rootPem);
  const sink = new MemorySink();
  const metrics = new RecordingMetrics();
  const firstAcks: string[] = [];
  const config: AdsConfig = {
    xdsAddress: fake.address,
    xdsRootCa: rootFile,
    authToken: tokenFile,
    clusterId: 'Kubernetes',
    xdsHeaders: new Map([['X-Custom-Header', 'custom-value']]),
    proxyMetadata: new Map([['ISTIO_VERSION', '1.99.0']]),
    metaJson: new Map<string, unknown>([['LABELS', { app: 'ztunnel' }]]),
    podName: 'ztunnel-abc',
    podNamespace: 'istio-system',
    instanceIp: '10.1.2.3',
    nodeName: 'node-a',
    xdsOnDemand: false,
    ...opts.config,
  };
  const client = new AdsClient({ config, sink, metrics, onFirstAck: (u) => firstAcks.push(u), ...(opts.logger ? { logger: opts.logger } : {}) });
  tt.teardown(async () => {
    client.close();
    await fake.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return { fake, sink, metrics, client, tokenFile, firstAcks };
}

const ackOf = (typeUrl: string, stream = 1) => (r: { typeUrl: string; nonce: string; stream: number; errorDetail?: unknown }) =>
  r.typeUrl === typeUrl && r.stream === stream && r.nonce !== '' && !r.errorDetail;

t.test('initial sync: every resource is applied, each type is ACKed with its nonce, then the client is ready', async (tt) => {
  const { fake, sink, client, firstAcks, metrics } = await setup(tt, {
    seed: (f) => {
      f.setWorkload(workload('frontend', '10.244.1.12'));
      f.setWorkload(workload('cart', '10.244.2.45', { trust_domain: 'example.org' }));
      f.setService(cartService);
      f.setAuthorization(denyPolicy);
    },
  });
  tt.equal(client.isReady(), false, 'not ready before the first ACKs');
  client.start();
  await withTimeout(client.ready, 'ready');
  tt.equal(client.isReady(), true);
  tt.same([...sink.workloads.keys()].sort(), ['Kubernetes//Pod/shop/cart', 'Kubernetes//Pod/shop/frontend']);
  const fe = sink.workloads.get('Kubernetes//Pod/shop/frontend')!;
  tt.same(fe.workloadIps, ['10.244.1.12']);
  tt.equal(fe.protocol, 'HBONE');
  tt.equal(fe.trustDomain, 'cluster.local', 'empty trust_domain defaults to cluster.local');
  tt.equal(sink.workloads.get('Kubernetes//Pod/shop/cart')!.trustDomain, 'example.org');
  tt.same(sink.services.get('shop/cart.shop.svc.cluster.local')?.vips, [{ network: '', ip: '10.96.0.7' }]);
  tt.same(sink.policies.get('shop/deny-9090')?.rules[0]?.[0]?.[0]?.destinationPorts, [9090]);

  for (const typeUrl of [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL]) {
    const sent = fake.responses.find((r) => r.typeUrl === typeUrl && r.stream === 1)!;
    const ack = await fake.waitForRequest(ackOf(typeUrl));
    tt.equal(ack.nonce, sent.nonce, `${typeUrl} ACK carries the response nonce`);
  }
  tt.same([...firstAcks].sort(), [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL].sort(), 'onFirstAck once per type');
  const addrMsg = metrics.messages.find((m) => m.typeUrl === ADDRESS_TYPE_URL);
  tt.ok(addrMsg && addrMsg.bytes > 100, 'message metric counts the response bytes');
  tt.same(client.resourceVersions(ADDRESS_TYPE_URL).get('shop/cart.shop.svc.cluster.local'), 'v3');
});

t.test('readiness waits for both types even when one is empty', async (tt) => {
  const { fake, client } = await setup(tt);
  client.start();
  await withTimeout(client.ready, 'ready with no resources');
  tt.equal(fake.responses.filter((r) => r.stream === 1).length, 2, 'one (empty) initial response per type');
});

t.test('initial requests carry the node id and metadata, wildcard subscriptions, token, clusterid and XDS_HEADER_* headers', async (tt) => {
  const { fake, client } = await setup(tt);
  client.start();
  const req = await fake.waitForRequest((r) => r.typeUrl === ADDRESS_TYPE_URL && r.nonce === '');
  tt.equal(req.node?.id, 'ztunnel~10.1.2.3~ztunnel-abc.istio-system~istio-system.svc.cluster.local');
  tt.same(req.node?.metadata, {
    NAME: 'ztunnel-abc',
    NAMESPACE: 'istio-system',
    INSTANCE_IPS: '10.1.2.3',
    NODE_NAME: 'node-a',
    ISTIO_VERSION: '1.99.0',
    LABELS: { app: 'ztunnel' },
  });
  tt.same(req.subscribe, [], 'wildcard: empty subscribe list');
  tt.same(req.unsubscribe, []);
  tt.same(req.initialResourceVersions, {});
  tt.equal(req.headers['authorization'], 'Bearer token-a');
  tt.equal(req.headers['clusterid'], 'Kubernetes');
  tt.equal(req.headers['x-custom-header'], 'custom-value');
  const authz = await fake.waitForRequest((r) => r.typeUrl === AUTHORIZATION_TYPE_URL && r.nonce === '');
  tt.same(authz.subscribe, []);
});

t.test('incremental pushes add, update and remove workloads, services and policies', async (tt) => {
  const { fake, sink, client } = await setup(tt, {
    seed: (f) => {
      f.setWorkload(workload('frontend', '10.244.1.12'));
      f.setService(cartService);
      f.setAuthorization(denyPolicy);
    },
  });
  client.start();
  await withTimeout(client.ready, 'ready');

  fake.setWorkload(workload('cart', '10.244.2.45'));
  await sink.until(() => sink.workloads.has('Kubernetes//Pod/shop/cart'), 'added workload');

  fake.setWorkload(workload('frontend', '10.244.9.9', { canonical_revision: 'v2' }));
  await sink.until(() => sink.workloads.get('Kubernetes//Pod/shop/frontend')?.workloadIps[0] === '10.244.9.9', 'updated workload');
  const last = sink.batches.at(-1)!.workloads!.upsert[0]!;
  tt.equal(last.canonicalRevision, 'v2');
  tt.equal(last.node, 'node-a', 'the upsert carries the whole workload, not a diff');
  tt.same([...last.services.get('shop/cart.shop.svc.cluster.local')!], [[80, 8080]]);

  fake.remove(ADDRESS_TYPE_URL, 'Kubernetes//Pod/shop/frontend');
  await sink.until(() => !sink.workloads.has('Kubernetes//Pod/shop/frontend'), 'removed workload');
  fake.remove(ADDRESS_TYPE_URL, 'shop/cart.shop.svc.cluster.local');
  await sink.until(() => sink.services.size === 0, 'removed service');
  tt.same(sink.batches.at(-1)!.services?.remove, ['shop/cart.shop.svc.cluster.local']);

  fake.setAuthorization({ ...denyPolicy, action: 0 });
  await sink.until(() => sink.policies.get('shop/deny-9090')?.action === 'Allow', 'updated policy');
  fake.remove(AUTHORIZATION_TYPE_URL, 'shop/deny-9090');
  await sink.until(() => sink.policies.size === 0, 'removed policy');
  tt.ok(sink.workloads.has('Kubernetes//Pod/shop/cart'), 'unrelated workload untouched');

  const naks = fake.requests.filter((r) => r.errorDetail);
  tt.same(naks, [], 'every push was ACKed');
  tt.notOk(client.resourceVersions(ADDRESS_TYPE_URL).has('Kubernetes//Pod/shop/frontend'), 'removed names are forgotten');
});

t.test('a bad resource is NACKed by name while the good ones of the same response apply, and a reconnect resends it', async (tt) => {
  const { fake, sink, client, metrics } = await setup(tt, {
    seed: (f) => f.setWorkload(workload('frontend', '10.244.1.12'), 'f1'),
  });
  client.start();
  await withTimeout(client.ready, 'ready');

  fake.batch(() => {
    fake.setWorkload(workload('good', '10.244.3.3'), 'g1');
    fake.setWorkload({ ...workload('short-ip', '10.0.0.1'), addresses: [Buffer.from([10, 0, 0, 1, 9])] }, 'b1');
    fake.setWorkload({ ...workload('legacy', '10.244.4.4'), tunnel_protocol: 2 }, 'b2');
    fake.setRaw(ADDRESS_TYPE_URL, 'garbage', Buffer.from([0xff, 0xff, 0xff]), 'b3');
  });
  const nack = await fake.waitForRequest((r) => r.stream === 1 && !!r.errorDetail);
  const msg = nack.errorDetail!.message;
  tt.match(msg, /Kubernetes\/\/Pod\/shop\/short-ip: .*length 5/, 'names the 5-byte address workload');
  tt.match(msg, /Kubernetes\/\/Pod\/shop\/legacy: .*LEGACY_ISTIO_MTLS/, 'names the legacy-mTLS workload');
  tt.match(msg, /garbage: decode/, 'names the undecodable resource');
  tt.notMatch(msg, /good/, 'the good resource is not named');
  tt.equal(msg.split('; ').length, 3, 'one "<name>: <reason>" entry per rejected resource');
  tt.equal(nack.nonce, fake.responses.at(-1)!.nonce, 'the NACK carries the response nonce');
  await sink.until(() => sink.workloads.has('Kubernetes//Pod/shop/good'), 'good workload applied');
  tt.notOk(sink.workloads.has('Kubernetes//Pod/shop/legacy'));
  tt.notOk(sink.workloads.has('Kubernetes//Pod/shop/short-ip'));

  // Reconnect: what is held goes in initial_resource_versions; NACKed names are left out.
  fake.endStreams();
  const again = await fake.waitForRequest((r) => r.stream === 2 && r.typeUrl === ADDRESS_TYPE_URL && r.nonce === '');
  tt.same(again.initialResourceVersions, {
    'Kubernetes//Pod/shop/frontend': 'f1',
    'Kubernetes//Pod/shop/good': 'g1',
  });
  tt.ok(metrics.terminations.length >= 1, 'the ended stream is counted');
  const resent = fake.responses.find((r) => r.stream === 2 && r.typeUrl === ADDRESS_TYPE_URL)!;
  tt.same([...resent.names].sort(), ['Kubernetes//Pod/shop/legacy', 'Kubernetes//Pod/shop/short-ip', 'garbage'].sort(),
    'istiod resends only what the client did not hold');
  await fake.waitForRequest((r) => r.stream === 2 && !!r.errorDetail);
});

t.test('a control plane that accepts TCP but never completes TLS counts as a connection error after the 5 s connect timeout', async (tt) => {
  const silent = createServer((s) => { s.on('error', () => {}); held.push(s); });
  const held: Socket[] = [];
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  tt.teardown(() => { for (const s of held) s.destroy(); silent.close(); });
  const { client, metrics } = await setup(tt, { config: { xdsAddress: `https://127.0.0.1:${(silent.address() as AddressInfo).port}` } });
  client.start();
  await metrics.untilTerminations(1);
  tt.same(metrics.terminations.slice(0, 1), ['ConnectionError'], 'the hung connect ends as a ConnectionError, then the client retries');
  tt.ok(held.length >= 1, 'the TCP connection was made');
  tt.notOk(client.isReady(), 'not ready');
});

t.test('a NACKed update keeps the accepted version: a removal made while disconnected still arrives', async (tt) => {
  const { fake, sink, client } = await setup(tt, {
    seed: (f) => f.setWorkload(workload('frontend', '10.244.1.12'), 'f1'),
  });
  client.start();
  await withTimeout(client.ready, 'ready');

  fake.setWorkload({ ...workload('frontend', '10.244.1.12'), tunnel_protocol: 2 }, 'f2');
  const nack = await fake.waitForRequest((r) => !!r.errorDetail);
  tt.equal(nack.errorDetail!.code, 0, 'error_detail.code is 0, as Istio\'s ztunnel sends it');
  tt.match(nack.errorDetail!.message, /^Kubernetes\/\/Pod\/shop\/frontend: /);
  tt.ok(sink.workloads.has('Kubernetes//Pod/shop/frontend'), 'the accepted version stays in the state');
  tt.equal(client.resourceVersions(ADDRESS_TYPE_URL).get('Kubernetes//Pod/shop/frontend'), 'f1', 'and its version is still reported');

  await fake.stop();
  fake.remove(ADDRESS_TYPE_URL, 'Kubernetes//Pod/shop/frontend'); // deleted while the client is away
  await fake.restart();
  const again = await fake.waitForRequest((r) => r.stream > 1 && r.typeUrl === ADDRESS_TYPE_URL && r.nonce === '');
  tt.same(again.initialResourceVersions, { 'Kubernetes//Pod/shop/frontend': 'f1' }, 'reconnect reports the last accepted version');
  await sink.until(() => !sink.workloads.has('Kubernetes//Pod/shop/frontend'), 'the removal sent for the reported name');
});

t.test('the client reconnects after istiod restarts on the same port and counts the terminations', async (tt) => {
  const { fake, sink, client, metrics } = await setup(tt, {
    seed: (f) => f.setWorkload(workload('frontend', '10.244.1.12')),
  });
  client.start();
  await withTimeout(client.ready, 'ready');
  await fake.stop();
  await metrics.untilTerminations(2); // the dropped stream, then at least one refused connect
  tt.ok(metrics.terminations.includes('ConnectionError'), 'refused connects count as ConnectionError');
  await fake.restart();
  fake.setWorkload(workload('cart', '10.244.2.45'));
  await sink.until(() => sink.workloads.has('Kubernetes//Pod/shop/cart'), 'push after restart');
  const req = await fake.waitForRequest((r) => r.stream > 1 && r.typeUrl === ADDRESS_TYPE_URL && r.nonce === '');
  tt.ok(req.initialResourceVersions['Kubernetes//Pod/shop/frontend'], 'the held workload is announced on reconnect');
});

t.test('a rotated token file is used on the next connection', async (tt) => {
  const { fake, client, tokenFile } = await setup(tt);
  client.start();
  await withTimeout(client.ready, 'ready');
  tt.equal(fake.requests[0]!.headers['authorization'], 'Bearer token-a');
  writeFileSync(tokenFile, 'token-b\n');
  fake.endStreams();
  const req = await fake.waitForRequest((r) => r.stream === 2);
  tt.equal(req.headers['authorization'], 'Bearer token-b');
});

t.test('with XDS_ON_DEMAND the Address subscription starts empty and demand() fetches one resource', async (tt) => {
  const { fake, sink, client } = await setup(tt, {
    config: { xdsOnDemand: true },
    seed: (f) => {
      f.setWorkload(workload('frontend', '10.244.1.12'));
      f.setWorkload(workload('cart', '10.244.2.45'));
    },
  });
  client.start();
  await withTimeout(client.ready, 'ready (Authorization only)');
  const first = await fake.waitForRequest((r) => r.typeUrl === ADDRESS_TYPE_URL && r.nonce === '');
  tt.same(first.subscribe, ['*']);
  tt.same(first.unsubscribe, ['*']);
  tt.equal(sink.workloads.size, 0, 'nothing pushed without a demand');
  await withTimeout(client.demand('Kubernetes//Pod/shop/cart'), 'demand');
  tt.same([...sink.workloads.keys()], ['Kubernetes//Pod/shop/cart']);
  const sub = await fake.waitForRequest((r) => r.subscribe.includes('Kubernetes//Pod/shop/cart'));
  tt.equal(sub.nonce, '');

  fake.endStreams();
  const again = await fake.waitForRequest((r) => r.stream === 2 && r.typeUrl === ADDRESS_TYPE_URL && r.nonce === '');
  tt.same(again.subscribe, ['*', 'Kubernetes//Pod/shop/cart'], 'the demanded name is subscribed again after a reconnect');
  tt.same(again.unsubscribe, ['*']);
});

t.test('a server certificate not signed by XDS_ROOT_CA is refused', async (tt) => {
  const other = await FakeIstiod.start();
  tt.teardown(() => other.stop());
  const { fake, client, metrics, sink } = await setup(tt, { config: { xdsRootCa: other.rootPem } });
  client.start();
  await metrics.untilTerminations(2);
  tt.ok(metrics.terminations.every((r) => r === 'ConnectionError'));
  tt.equal(fake.requests.length, 0, 'no request reached the server');
  tt.equal(sink.batches.length, 0);
  tt.equal(client.isReady(), false);
});

t.test('ALT_XDS_HOSTNAME is accepted as the server name when the address is an IP not in the certificate', async (tt) => {
  const sans = [{ type: 'dns' as const, value: 'istiod.istio-system.svc' }];
  const refused = await setup(tt, { fake: { serverSans: sans } });
  refused.client.start();
  await refused.metrics.untilTerminations(1);
  tt.same(refused.metrics.terminations.slice(0, 1), ['ConnectionError'], 'without the alt name: hostname mismatch');
  refused.client.close();

  const accepted = await setup(tt, { fake: { serverSans: sans }, config: { altXdsHostname: 'istiod.istio-system.svc' } });
  accepted.client.start();
  await withTimeout(accepted.client.ready, 'ready with alt hostname');
  tt.pass('connected');
});

t.test('stream endings are counted by reason: OK → Complete, CANCELLED → Reconnect, INTERNAL → Error', async (tt) => {
  const { fake, client, metrics } = await setup(tt);
  client.start();
  await withTimeout(client.ready, 'ready');
  const cases: [GrpcStatus, TerminationReason][] = [
    [GrpcStatus.OK, 'Complete'],
    [GrpcStatus.CANCELLED, 'Reconnect'],
    [GrpcStatus.INTERNAL, 'Error'],
  ];
  let stream = 1;
  for (const [code, reason] of cases) {
    await fake.waitForRequest((r) => r.stream === stream && r.nonce !== '');
    fake.endStreams(code);
    stream++;
    await fake.waitForRequest((r) => r.stream === stream && r.nonce === '');
    tt.equal(metrics.terminations.at(-1), reason, `${GrpcStatus[code]} counts as ${reason}`);
  }
  tt.same(metrics.terminations, ['Complete', 'Reconnect', 'Error']);
});

t.test("XDS_ADDRESS with http:// (istiod's plaintext 15010): as in Istio's ztunnel, no plaintext gRPC is spoken; each attempt fails with \"unsupported scheme http\"", async (tt) => {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'info', destination: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) } });
  const { fake, client, metrics, sink } = await setup(tt, { fake: { plaintext: true }, logger });
  tt.match(fake.address, /^http:\/\//);
  client.start();
  await metrics.untilTerminations(2);
  tt.ok(metrics.terminations.every((r) => r === 'ConnectionError'), 'every attempt ends as a connection error');
  tt.equal(fake.requests.length, 0, 'no request reached the plaintext server');
  tt.equal(sink.batches.length, 0);
  tt.ok(lines.some((l) => l['err'] === 'unsupported scheme http'), 'the error names the scheme, as Istio logs it');
});
