// One row per environment variable Istio's ztunnel reads (its config.rs, lib.rs, telemetry.rs,
// version.rs and xds client; docs/settings.md is the same list in prose). Each row sets the
// variable the way a DaemonSet for Istio's ztunnel may set it and checks what ztunnel-ts does
// with it: applied with Istio's meaning, refused at start naming the variable, or (where Istio's
// ztunnel silently ignores the value) accepted with a warning naming it.
import t from 'tap';
import type { Config } from './config.js';
import { loadConfig } from './load.js';

type Env = Record<string, string>;
const K8S: Env = { KUBERNETES_SERVICE_HOST: '10.96.0.1' };
type Outcome = { ok: true; config: Config } | { ok: false; errors: string[] };

function load(env: Env, files: Record<string, string> = {}): Outcome {
  const r = loadConfig({ flags: {}, env: { ...K8S, ...env }, cpuCount: 8, readFile: (p) => files[p] });
  return r.ok ? { ok: true, config: r.value } : { ok: false, errors: r.error };
}

type Check = (c: Config) => unknown;
/** [variable, value, what happens, expected value of check(config) | 'refused' | 'warned'] */
type Row = readonly [string, string, string, Check | null, unknown];
const refused = Symbol('refused at start');

const rows: readonly Row[] = [
  // --- mode and sources -------------------------------------------------------------------------
  ['PROXY_MODE', 'dedicated', 'dedicated mode (needs PROXY_WORKLOAD_INFO)', null, refused],
  ['PROXY_MODE', 'sidecar', 'refused: only shared or dedicated', null, refused],
  ['PROXY_WORKLOAD_INFO', 'shop/a/sa-a', 'ignored in shared mode, as in Istio', (c) => c.proxyWorkloadInfo, undefined],
  ['ENABLE_PROXY', 'false', 'proxy off (DNS proxy setting keeps the start valid)', (c) => c.enableProxy, false],
  ['ENABLE_PROXY', 'yes', 'refused: Rust parses bool as true/false only', null, refused],
  ['XDS_ADDRESS', 'istiod.other:15012', 'https:// added', (c) => c.xdsAddress, 'https://istiod.other:15012'],
  ['XDS_ADDRESS', '', 'xDS off', (c) => c.xdsAddress, null],
  ['XDS_ADDRESS', 'http://istiod:15010', 'kept; every attempt fails with "unsupported scheme http" (warned)', (c) => [c.xdsAddress, c.warnings.some((w) => w.startsWith('XDS_ADDRESS='))], ['http://istiod:15010', true]],
  ['CA_ADDRESS', 'ca.mesh:15012', 'https:// added', (c) => c.caAddress, 'https://ca.mesh:15012'],
  ['CA_ADDRESS', 'http://istiod:15010', 'warned, as XDS_ADDRESS', (c) => c.warnings.some((w) => w.startsWith('CA_ADDRESS=')), true],
  ['FAKE_CA', 'true', 'no CA address', (c) => c.caAddress, null],
  ['LOCAL_XDS_PATH', '/etc/zt/local.yaml', 'local file source', (c) => c.localXdsPath, '/etc/zt/local.yaml'],
  ['LOCAL_XDS', 'workloads: []', 'inline source', (c) => c.localXds, 'workloads: []'],
  ['XDS_ON_DEMAND', 'true', 'refused with the DNS proxy on (Istio: "DNS proxy does not currently support on-demand mode")', null, refused],
  ['XDS_ROOT_CA', 'SYSTEM', 'OS roots', (c) => c.xdsRootCa, 'SYSTEM'],
  ['CA_ROOT_CA', 'SYSTEM', 'OS roots', (c) => c.caRootCa, 'SYSTEM'],
  ['ALT_XDS_HOSTNAME', 'istiod.alt', 'extra server name', (c) => c.altXdsHostname, 'istiod.alt'],
  ['ALT_CA_HOSTNAME', 'ca.alt', 'extra server name', (c) => c.altCaHostname, 'ca.alt'],
  ['AUTH_TOKEN', 'literal-token', 'token (file path or literal)', (c) => c.authToken, 'literal-token'],
  ['PROXY_CONFIG', 'discoveryAddress: pc.mesh:15012', 'ProxyConfig', (c) => c.xdsAddress, 'https://pc.mesh:15012'],
  ['PROXY_CONFIG', 'discoveryAddress: [', 'refused: not YAML', null, refused],
  ['PREFERED_SERVICE_NAMESPACE', 'shop', 'DNS proxy: tie-break between Services sharing a hostname', (c) => c.preferedServiceNamespace, 'shop'],
  ['KUBERNETES_SERVICE_HOST', '10.96.0.1', 'in-cluster istiod default', (c) => c.caAddress, 'https://istiod.istio-system.svc:15012'],

  // --- certificates -----------------------------------------------------------------------------
  ['SECRET_TTL', '12h', 'requested lifetime', (c) => c.secretTtlMs, 12 * 3_600_000],
  ['SECRET_TTL', 'soon', 'refused: not a duration', null, refused],
  ['CRL_PATH', '/etc/crl/ca.crl', 'peer certificates checked against it (tls/crl.ts)', (c) => [c.crlPath, c.warnings.length], ['/etc/crl/ca.crl', 0]],
  ['TLS12_ENABLED', 'true', 'TLS 1.2 allowed', (c) => c.tls12Enabled, true],
  ['TLS12_ENABLED', 'yes', "off, as Istio (it compares with \"true\"), warned", (c) => [c.tls12Enabled, c.warnings.some((w) => w.startsWith('TLS12_ENABLED="yes"'))], [false, true]],
  ['TLS12_ENABLED', 'false', 'off, no warning', (c) => [c.tls12Enabled, c.warnings.length], [false, 0]],
  ['COMPLIANCE_POLICY', 'pqc', 'X25519MLKEM768 only', (c) => c.compliancePolicy, 'pqc'],
  ['COMPLIANCE_POLICY', 'fips', "no policy, as Istio (it compares with \"pqc\"), warned", (c) => [c.compliancePolicy, c.warnings.some((w) => w.startsWith('COMPLIANCE_POLICY="fips"'))], [undefined, true]],

  // --- identity ---------------------------------------------------------------------------------
  ['CLUSTER_ID', 'east', 'cluster id', (c) => c.clusterId, 'east'],
  ['ISTIO_META_CLUSTER_ID', 'west', 'cluster id (wins over CLUSTER_ID)', (c) => c.clusterId, 'west'],
  ['CLUSTER_DOMAIN', 'corp.local', 'DNS proxy: search domains and Kubernetes names', (c) => c.clusterDomain, 'corp.local'],
  ['TRUST_DOMAIN', 'corp.example', "ztunnel's own identity", (c) => c.trustDomain, 'corp.example'],
  ['POD_NAME', 'ztunnel-abc', 'xDS node id, own identity', (c) => c.podName, 'ztunnel-abc'],
  ['POD_NAMESPACE', 'istio-system', 'xDS node id, own identity', (c) => c.podNamespace, 'istio-system'],
  ['SERVICE_ACCOUNT', 'ztunnel', 'own identity', (c) => c.serviceAccount, 'ztunnel'],
  ['INSTANCE_IP', '10.0.0.9', 'xDS node id', (c) => c.instanceIp, '10.0.0.9'],
  ['NODE_NAME', 'node-a', 'local node', (c) => c.nodeName, 'node-a'],
  ['NETWORK', 'net-1', 'local network', (c) => c.network, 'net-1'],
  ['ISTIO_META_ISTIO_VERSION', '1.99.0', 'istio_build tag', (c) => c.istioVersion, '1.99.0'],

  // --- HBONE and pool ---------------------------------------------------------------------------
  ['POOL_MAX_STREAMS_PER_CONNECTION', '50', 'streams per pooled connection', (c) => c.poolMaxStreamsPerConnection, 50],
  ['POOL_MAX_STREAMS_PER_CONNECTION', '70000', 'refused: Istio parses a u16', null, refused],
  ['POOL_UNUSED_RELEASE_TIMEOUT', '1m', 'idle release', (c) => c.poolUnusedReleaseTimeoutMs, 60_000],
  ['HTTP2_STREAM_WINDOW_SIZE', '1048576', 'stream window', (c) => c.http2StreamWindowSize, 1048576],
  ['HTTP2_CONNECTION_WINDOW_SIZE', '2097152', 'connection window', (c) => c.http2ConnectionWindowSize, 2097152],
  ['HTTP2_FRAME_SIZE', '65536', 'max frame', (c) => c.http2FrameSize, 65536],
  ['LOCALHOST_APP_TUNNEL', 'false', 'no loopback PROXY tunnels', (c) => c.localhostAppTunnel, false],
  ['ENABLE_RESPONSE_BAGGAGE', 'false', 'no response baggage', (c) => c.enableResponseBaggage, false],

  // --- sockets ----------------------------------------------------------------------------------
  ['KEEPALIVE_TIME', '60s', 'TCP keepalive idle', (c) => c.keepalive.timeMs, 60_000],
  ['KEEPALIVE_INTERVAL', '30s', 'probe interval', (c) => c.keepalive.intervalMs, 30_000],
  ['KEEPALIVE_RETRIES', '3', 'probes', (c) => c.keepalive.retries, 3],
  ['KEEPALIVE_ENABLED', 'false', 'keepalive off', (c) => c.keepalive.enabled, false],
  ['USER_TIMEOUT_ENABLED', 'true', 'TCP_USER_TIMEOUT', (c) => c.keepalive.userTimeout, true],
  ['ENABLE_ORIG_SRC', 'false', 'never spoof', (c) => c.enableOrigSrc, false],
  ['ENABLE_ORIG_SRC', 'true', 'spoof or fail', (c) => c.enableOrigSrc, true],
  ['ENABLE_ORIG_SRC', 'maybe', 'refused: not a bool', null, refused],
  ['PACKET_MARK', '4096', 'SO_MARK', (c) => c.packetMark, 4096],
  ['INPOD_UDS', '/run/zds.sock', 'ZDS socket', (c) => c.inpodUds, '/run/zds.sock'],
  ['INPOD_PORT_REUSE', 'false', 'no SO_REUSEPORT', (c) => c.inpodPortReuse, false],
  ['IPV6_ENABLED', 'false', 'IPv4 wildcard binds', (c) => c.listeners.inbound.host, '0.0.0.0'],
  ['UNSTABLE_ENABLE_SOCKS5', 'true', 'SOCKS5 on 127.0.0.1:15080', (c) => [c.enableSocks5, c.listeners.socks5.port], [true, 15080]],

  // --- lifecycle --------------------------------------------------------------------------------
  ['CONNECTION_TERMINATION_DEADLINE', '20s', 'drain deadline', (c) => c.drainDeadlineMs, 20_000],
  ['TERMINATION_GRACE_PERIOD_SECONDS', '30', 'drain deadline = 30 - 5', (c) => c.drainDeadlineMs, 25_000],
  ['ZTUNNEL_WORKER_THREADS', '50%', 'half the cores', (c) => c.workerThreads, 4],
  ['ZTUNNEL_CPU_LIMIT', '16', 'core count for the rules', (c) => c.workerThreads, 4],
  ['ZTUNNEL_RESOURCE_CPU_LIMIT', '3', 'explicit limit = worker count', (c) => c.workerThreads, 3],
  ['ZTUNNEL_RESOURCE_CPU_REQUEST', '6', 'request raises the floor', (c) => c.workerThreads, 6],

  // --- logging ----------------------------------------------------------------------------------
  ['RUST_LOG', 'info,access=debug', 'log filter', (c) => c.logLevel, 'info,access=debug'],
  ['LOG_FORMAT', 'json', 'JSON logs', (c) => c.logFormat, 'json'],
  ['LOG_FORMAT', 'text', "plain, as Istio (anything but \"json\"), warned", (c) => [c.logFormat, c.warnings.some((w) => w.startsWith('LOG_FORMAT="text"'))], ['plain', true]],
  ['LOG_FORMAT', 'plain', 'plain, no warning', (c) => [c.logFormat, c.warnings.length], ['plain', 0]],
  ['AUTHZ_POLICY_INFO_LOGGING', 'true', 'policy logs at INFO', (c) => c.authzPolicyInfoLogging, true],
  ['AUTHZ_POLICY_INFO_LOGGING', 'yes', "off, as Istio (it compares with \"true\"), warned", (c) => [c.authzPolicyInfoLogging, c.warnings.some((w) => w.startsWith('AUTHZ_POLICY_INFO_LOGGING="yes"'))], [false, true]],

  // --- prefixed families ------------------------------------------------------------------------
  ['ISTIO_META_DNS_CAPTURE', 'false', 'DNS proxy off', (c) => c.dnsProxy, false],
  ['ISTIO_META_DNS_CAPTURE', 'true', 'DNS proxy on (also the default)', (c) => [c.dnsProxy, c.warnings.length], [true, 0]],
  ['ISTIO_META_DNS_PROXY_ADDR', '127.0.0.1:15054', "DNS proxy address (dedicated mode)", (c) => c.listeners.dns, { host: '127.0.0.1', port: 15054 }],
  ['ISTIO_META_DNS_PROXY_ADDR', 'nowhere', 'refused: not an address', null, refused],
  ['ISTIO_META_FOO', 'bar', 'proxy metadata FOO', (c) => c.proxyMetadata.get('FOO'), 'bar'],
  ['ISTIO_METAJSON_LABELS', '{"app":"z"}', 'JSON node metadata', (c) => c.metaJson.get('LABELS'), { app: 'z' }],
  ['ISTIO_METAJSON_LABELS', '{', 'refused: not JSON', null, refused],
  ['XDS_HEADER_X_TEAM', 'blue', 'xDS call metadata', (c) => c.xdsHeaders.get('x_team'), 'blue'],
  ['CA_HEADER_X_TEAM', 'green', 'CA call metadata', (c) => c.caHeaders.get('x_team'), 'green'],
];

for (const [name, value, what, check, want] of rows) {
  t.test(`${name}=${JSON.stringify(value)}: ${what}`, async (t) => {
    const r = load({ [name]: value });
    if (want === refused) {
      t.notOk(r.ok, 'startup is refused');
      if (!r.ok) t.ok(r.errors.some((e) => e.includes(name) || (name === 'PROXY_MODE' && e.includes('PROXY_WORKLOAD_INFO')) || (name === 'XDS_ON_DEMAND' && e.includes('on-demand'))), `an error names it: ${r.errors.join(' | ')}`);
      return;
    }
    if (!r.ok) return t.fail(`refused: ${r.errors.join(' | ')}`);
    t.same(check!(r.config), want);
  });
}

