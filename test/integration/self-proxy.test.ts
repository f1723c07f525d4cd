// The self-proxy (ports-and-modes.md §1): a shared-mode daemon with POD_NAME, POD_NAMESPACE and
// SERVICE_ACCOUNT set serves HBONE for itself on its inbound address, presenting
// spiffe://cluster.local/ns/istio-system/sa/ztunnel, as the workload those three values name, under
// the same authorization policies. Real daemon process (shared mode, root for its capability
// check; no istio-cni connection needed), real mTLS and HTTP/2 from an HBONE client in the test.
import { writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import t from 'tap';
import { formatIdentity } from '../../src/core/spiffe.js';
import { HbonePool } from '../../src/hbone/client-pool.js';
import { LocalCa } from '../../src/identity/local-ca.js';
import { PlainSocketFactory } from '../../src/platform/plain-socket-factory.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { testId } from '../helpers/certs.js';
import { randomLoopback, startDaemon, tempDir, type Daemon } from '../helpers/daemon.js';
import { startEchoServer } from '../helpers/servers.js';

const Z = randomLoopback(); // ztunnel's "pod IP"
const dir = tempDir('zt-self-');
const client = testId('frontend', 'shop');
const ztunnelId = testId('ztunnel', 'istio-system');
const config = (deny: boolean) => `
workloads:
- uid: Kubernetes//Pod/istio-system/ztunnel-abc
  name: ztunnel-abc
  namespace: istio-system
  serviceAccount: ztunnel
  trustDomain: cluster.local
  clusterId: Kubernetes
  workloadIps: ["${Z}"]
  protocol: TCP
  node: node-a
  services: {}
  authorizationPolicies: ${deny ? '["istio-system/deny-frontend"]' : '[]'}
policies:
- name: deny-frontend
  namespace: istio-system
  scope: WorkloadSelector
  action: Deny
  dryRun: false
  rules:
  - - - principals: [{Exact: "cluster.local/ns/shop/sa/frontend"}]
`;

if (process.getuid?.() !== 0) {
  t.fail('the self-proxy test runs a shared-mode daemon, which needs root (CAP_NET_ADMIN/CAP_NET_RAW)');
} else {
  const echo = await startEchoServer(Z);
  t.teardown(() => echo.close());
  const ca = await LocalCa.open({ stateDir: `${dir}/ca`, ttlMs: 3600_000 });
  writeFileSync(`${dir}/local.yaml`, config(false));
  let daemon: Daemon | undefined;
  t.teardown(() => daemon?.stop());
  daemon = await startDaemon({
    name: 'Z',
    env: {
      PROXY_MODE: 'shared',
      NODE_NAME: 'node-a',
      XDS_ADDRESS: '',
      FAKE_CA: 'true',
      ZTUNNEL_STATE_DIR: `${dir}/ca`,
      LOCAL_XDS_PATH: `${dir}/local.yaml`,
      INPOD_UDS: `${dir}/no-istio-cni.sock`,
      POD_NAME: 'ztunnel-abc',
      POD_NAMESPACE: 'istio-system',
      SERVICE_ACCOUNT: 'ztunnel',
      ZTUNNEL_INBOUND_ADDR: `${Z}:15008`,
      ZTUNNEL_ADMIN_ADDR: '127.0.0.1:0',
      ZTUNNEL_STATS_ADDR: '127.0.0.1:0',
      ZTUNNEL_READINESS_ADDR: '127.0.0.1:0',
      RUST_LOG: 'info',
    },
  });
  const d = daemon;

  const pool = new HbonePool({
    certs: { getCertificate: (id) => ca.fetchCertificate(id) },
    sockets: new PlainSocketFactory(),
    tuning: { tls12Enabled: false },
    streamWindowBytes: 4 << 20,
    connectionWindowBytes: 16 << 20,
    frameSizeBytes: 1 << 20,
    maxStreamsPerConnection: 100,
    unusedReleaseTimeoutMs: 60_000,
    connectTimeoutMs: 10_000,
    pingIntervalMs: 10_000,
    pingTimeoutMs: 20_000,
    logger: createLogger({ level: 'off' }),
  });
  t.teardown(() => pool.destroy());
  const tunnel = () =>
    pool.connect({
      srcIdentity: client,
      expectedIdentities: [ztunnelId],
      nextHop: { ip: Z, port: 15008 },
      authority: `${Z}:${echo.port}`,
      headers: { baggage: 'k8s.namespace.name=shop', forwarded: `for="127.0.0.1:5000"`, traceparent: '00-5f0c3a9e27d14b6c8a1e4f2b7d9c0a13-3c7e1a9b5d2f4e08-00' },
    });
  const echoOver = (stream: http2.ClientHttp2Stream, payload: string) =>
    new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.once('end', () => resolve(Buffer.concat(chunks).toString()));
      stream.once('error', reject);
      stream.end(payload);
    });

  t.test("the daemon listens on its own inbound address and says it runs the self-proxy", async (t) => {
    t.equal(d.addresses['inbound'], `${Z}:15008`);
    await d.waitForLog((l) => l.msg === 'creating ztunnel self-proxy listener');
  });

  t.test("an HBONE CONNECT to ztunnel's own address reaches the local port, and ztunnel presents its own identity", async (t) => {
    const res = await tunnel();
    t.equal(formatIdentity(res.peerIdentity), 'spiffe://cluster.local/ns/istio-system/sa/ztunnel');
    t.equal(await echoOver(res.stream, 'scrape me'), 'scrape me');
    const line = await d.waitForLog((l) => l['component'] === 'access' && l.msg === 'connection complete' && l['dst.hbone_addr'] === `${Z}:${echo.port}`);
    t.equal(line['direction'], 'inbound');
    t.equal(line['src.identity'], 'spiffe://cluster.local/ns/shop/sa/frontend');
    t.equal(line['dst.workload'], 'ztunnel-abc');
    t.equal(line['dst.identity'], 'spiffe://cluster.local/ns/istio-system/sa/ztunnel');
  });

  t.test('authorization policies of the ztunnel workload apply: a DENY answers 401', async (t) => {
    const from = d.logs.length;
    writeFileSync(`${dir}/local.yaml`, config(true));
    await d.waitForLog((l) => d.logs.indexOf(l) >= from && l.msg === 'local config reloaded');
    await t.rejects(tunnel(), { code: 'HBONE_STATUS', httpStatus: 401 });
  });
}
