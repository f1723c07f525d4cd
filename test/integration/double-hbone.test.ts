// Double HBONE across networks (hbone.md §8): ztunnel A (network "") reaches Service api, whose
// endpoint runs on network "west" behind an east-west gateway. A sends an outer CONNECT to the
// gateway (authority api.shop.svc.cluster.local:80), then mTLS + CONNECT inside it to ztunnel B.
// The gateway here is a stand-in built from the project's own HBONE server: it checks the outer
// request and pipes the stream to B:15008 untouched, as an east-west gateway does. Real daemons,
// real TLS and HTTP/2 on loopback.
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import t from 'tap';
import { formatIdentity } from '../../src/core/spiffe.js';
import { HboneServer, type InboundConnect } from '../../src/hbone/server.js';
import { LocalCa } from '../../src/identity/local-ca.js';
import { relay } from '../../src/proxy/relay.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { testId } from '../helpers/certs.js';
import { dedicatedEnv, randomLoopback, startDaemon, tempDir, type Daemon } from '../helpers/daemon.js';
import { roundTrip, socks5Connect, startEchoServer } from '../helpers/servers.js';

const A = randomLoopback();
const B = randomLoopback();
const GW = randomLoopback();
const VIP = randomLoopback();
const dir = tempDir('zt-dhbone-');

const config = (echoPort: number) => `
workloads:
- uid: Kubernetes//Pod/shop/a
  name: a
  namespace: shop
  serviceAccount: sa-a
  trustDomain: cluster.local
  clusterId: Kubernetes
  workloadIps: ["${A}"]
  protocol: HBONE
  services: {}
- uid: west//Pod/istio-system/eastwest
  name: eastwest
  namespace: istio-system
  serviceAccount: eastwest
  trustDomain: cluster.local
  clusterId: west
  network: west
  workloadIps: ["${GW}"]
  protocol: HBONE
  services: {}
- uid: west//Pod/shop/b
  name: b
  namespace: shop
  serviceAccount: sa-b
  trustDomain: cluster.local
  clusterId: west
  network: west
  workloadIps: ["${B}"]
  protocol: HBONE
  networkGateway: {destination: "west/${GW}", hboneMtlsPort: 15008}
  services:
    "shop/api.shop.svc.cluster.local": {80: ${echoPort}}
services:
- name: api
  namespace: shop
  hostname: api.shop.svc.cluster.local
  vips: ["/${VIP}"]
  ports: {80: ${echoPort}}
  subjectAltNames: ["spiffe://cluster.local/ns/shop/sa/sa-b"]
`;

const echo = await startEchoServer(B);
t.teardown(() => echo.close());
const ca = await LocalCa.open({ stateDir: `${dir}/ca`, ttlMs: 3600_000 });
writeFileSync(`${dir}/mesh.yaml`, config(echo.port));

// The east-west gateway stand-in.
const outerRequests: InboundConnect[] = [];
const gwListener = net.createServer({ allowHalfOpen: true });
await new Promise<void>((r) => gwListener.listen(15008, GW, r));
t.teardown(() => gwListener.close());
const gateway = new HboneServer({
  identity: testId('eastwest', 'istio-system'),
  certs: { getCertificate: (id) => ca.fetchCertificate(id) },
  tuning: { tls12Enabled: false },
  streamWindowBytes: 4 << 20,
  connectionWindowBytes: 16 << 20,
  frameSizeBytes: 1 << 20,
  maxConcurrentStreams: 100,
  pingIntervalMs: 60_000,
  pingTimeoutMs: 60_000,
  logger: createLogger({ level: 'off' }),
  onConnect: (req) => {
    outerRequests.push(req);
    const upstream = net.connect({ host: B, port: 15008, allowHalfOpen: true }, () => {
      req.stream.respond({ ':status': 200 });
      void relay(req.stream, upstream, { counter: { addClientToServer: () => {}, addServerToClient: () => {} } });
    });
    upstream.on('error', () => req.stream.respond({ ':status': 503 }, { endStream: true }));
  },
});
gateway.attach(gwListener);

let a: Daemon | undefined;
let b: Daemon | undefined;
t.teardown(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
});
const env = (w: string, ip: string, network: string) =>
  dedicatedEnv({ workloadInfo: `shop/${w}/sa-${w}`, ip, config: `${dir}/mesh.yaml`, stateDir: `${dir}/ca`, extra: { NETWORK: network } });
[a, b] = await Promise.all([startDaemon({ name: 'A', env: env('a', A, '') }), startDaemon({ name: 'B', env: env('b', B, 'west') })]);
const [socksHost, socksPort] = a.addresses['socks5']!.split(':');

t.test('a Service endpoint on another network is reached through its gateway with two nested tunnels', async (t) => {
  const s = await socks5Connect({ host: socksHost!, port: Number(socksPort) }, { host: VIP, port: 80 });
  const { data, error } = await roundTrip(s, Buffer.from('across networks'));
  t.error(error);
  t.equal(data.toString(), 'across networks', 'the bytes echo through gateway and inner tunnel');

  const outer = outerRequests.at(-1)!;
  t.equal(outer.headers[':authority'], 'api.shop.svc.cluster.local:80', 'the outer CONNECT names the Service hostname and port');
  t.equal(formatIdentity(outer.peerIdentity), 'spiffe://cluster.local/ns/shop/sa/sa-a', 'the gateway sees the client identity');

  const outLine = await a!.waitForLog((l) => l['component'] === 'access' && l.msg === 'connection complete' && l['direction'] === 'outbound' && l['dst.service'] === 'api.shop.svc.cluster.local');
  t.equal(outLine['dst.addr'], `${GW}:15008`, 'A logs the gateway as the next hop');
  t.equal(outLine['dst.hbone_addr'], 'api.shop.svc.cluster.local:80');
  t.equal(outLine['error'], undefined);
  const inLine = await b!.waitForLog((l) => l['component'] === 'access' && l.msg === 'connection complete' && l['direction'] === 'inbound');
  t.equal(inLine['src.identity'], 'spiffe://cluster.local/ns/shop/sa/sa-a', 'B authenticated A through the inner mTLS');
  t.equal(inLine['dst.hbone_addr'], 'api.shop.svc.cluster.local:80');
});
