import t, { type Test } from 'tap';
import { parseCommandLine } from '../cli-args.js';
import type { Config } from './config.js';
import { loadConfig, type LoadConfigInput } from './load.js';
import { OPTION_LIST } from './options.js';

type Env = Record<string, string | undefined>;
const K8S: Env = { KUBERNETES_SERVICE_HOST: '10.96.0.1' };

interface Call {
  env?: Env;
  flags?: Record<string, unknown>;
  files?: Record<string, string>;
  cpuCount?: number;
}

function run(c: Call): ReturnType<typeof loadConfig> {
  const files = c.files ?? {};
  const input: LoadConfigInput = {
    env: c.env ?? {},
    flags: c.flags ?? {},
    cpuCount: c.cpuCount ?? 8,
    readFile: (p) => files[p],
  };
  return loadConfig(input);
}

function good(t: Test, c: Call): Config {
  const r = run(c);
  if (!r.ok) {
    t.fail(`expected a valid config, got errors: ${r.error.join(' | ')}`);
    throw new Error('invalid config');
  }
  return r.value;
}

function bad(t: Test, c: Call): string[] {
  const r = run(c);
  t.notOk(r.ok, 'config is rejected');
  return r.ok ? [] : r.error;
}


// --- defaults ------------------------------------------------------------------------------------

t.test('in Kubernetes with nothing set, the Istio defaults of spec/config.md §5 apply', async (t) => {
  const c = good(t, { env: K8S });
  t.equal(c.embeddedDefault, false);
  t.equal(c.proxyMode, 'shared');
  t.equal(c.proxyWorkloadInfo, undefined);
  t.equal(c.enableProxy, true);
  t.equal(c.dnsProxy, true);
  t.equal(c.enableSocks5, false);
  t.equal(c.xdsAddress, 'https://istiod.istio-system.svc:15012');
  t.equal(c.caAddress, 'https://istiod.istio-system.svc:15012');
  t.equal(c.xdsOnDemand, false);
  t.equal(c.fakeCa, false);
  t.equal(c.xdsRootCa, './var/run/secrets/istio/root-cert.pem');
  t.equal(c.caRootCa, './var/run/secrets/istio/root-cert.pem');
  t.equal(c.authToken, undefined, 'no token file, no token');
  t.equal(c.clusterId, 'Kubernetes');
  t.equal(c.clusterDomain, 'cluster.local');
  t.equal(c.trustDomain, 'cluster.local');
  t.equal(c.network, '');
  t.equal(c.nodeName, '');
  t.equal(c.secretTtlMs, 24 * 3600 * 1000);
  t.equal(c.poolMaxStreamsPerConnection, 100);
  t.equal(c.poolUnusedReleaseTimeoutMs, 5 * 60 * 1000);
  t.equal(c.http2StreamWindowSize, 4 * 1024 * 1024);
  t.equal(c.http2ConnectionWindowSize, 16 * 1024 * 1024);
  t.equal(c.http2FrameSize, 1024 * 1024);
  t.same(c.keepalive, { enabled: true, timeMs: 180_000, intervalMs: 180_000, retries: 9, userTimeout: false });
  t.equal(c.enableOrigSrc, undefined, 'original source is best effort');
  t.equal(c.packetMark, 1337);
  t.equal(c.inpodUds, '/var/run/ztunnel/ztunnel.sock');
  t.equal(c.inpodPortReuse, true);
  t.equal(c.ipv6Enabled, true);
  t.equal(c.tls12Enabled, false);
  t.equal(c.enableResponseBaggage, true);
  t.equal(c.localhostAppTunnel, true);
  t.equal(c.transparentNetworkPolicies, false);
  t.equal(c.dscpMark, 23);
  t.equal(c.drainDeadlineMs, 5000);
  t.equal(c.stateDir, './.ztunnel/');
  t.equal(c.logLevel, 'info');
  t.equal(c.logFormat, 'plain');
  t.equal(c.authzPolicyInfoLogging, false);
  t.equal(c.xdsHeaders.size, 0);
  t.equal(c.metaJson.size, 0);
});

t.test('listeners default to the ports of ports-and-modes.md §1', async (t) => {
  const c = good(t, { env: K8S });
  t.same(c.listeners, {
    outbound: { host: '::', port: 15001 },
    inboundPlaintext: { host: '::', port: 15006 },
    inbound: { host: '::', port: 15008 },
    socks5: { host: '127.0.0.1', port: 15080 },
    admin: { host: '127.0.0.1', port: 15000 },
    stats: { host: '::', port: 15020 },
    readiness: { host: '::', port: 15021 },
    dns: { host: '127.0.0.1', port: 15053 },
  });
});

t.test('IPV6_ENABLED=false turns every [::] bind into 0.0.0.0 and leaves loopback binds alone', async (t) => {
  const c = good(t, { env: { ...K8S, IPV6_ENABLED: 'false' } });
  t.equal(c.ipv6Enabled, false);
  for (const k of ['outbound', 'inboundPlaintext', 'inbound', 'stats', 'readiness'] as const) {
    t.equal(c.listeners[k].host, '0.0.0.0', k);
  }
  t.equal(c.listeners.admin.host, '127.0.0.1');
  t.equal(c.listeners.dns.host, '127.0.0.1');
  t.equal(c.listeners.socks5.host, '127.0.0.1');
});

t.test('each listener can be moved so several daemons share one machine; port 0 is allowed', async (t) => {
  const c = good(t, {
    env: {
      ...K8S,
      ZTUNNEL_OUTBOUND_ADDR: '127.0.0.2:0',
      ZTUNNEL_INBOUND_ADDR: '[::1]:25008',
      ZTUNNEL_SOCKS5_ADDR: 'localhost:25080',
      ZTUNNEL_ADMIN_ADDR: '127.0.0.2:25000',
    },
    flags: { 'inbound-plaintext-addr': '127.0.0.3:25006', statsAddr: '[::]:0' },
  });
  t.same(c.listeners.outbound, { host: '127.0.0.2', port: 0 });
  t.same(c.listeners.inbound, { host: '::1', port: 25008 });
  t.same(c.listeners.socks5, { host: '127.0.0.1', port: 25080 });
  t.same(c.listeners.admin, { host: '127.0.0.2', port: 25000 });
  t.same(c.listeners.inboundPlaintext, { host: '127.0.0.3', port: 25006 });
  t.same(c.listeners.stats, { host: '::', port: 0 });
});

// --- embedded default ------------------------------------------------------------------------------

t.test('outside Kubernetes with nothing given, the embedded default runs dedicated with SOCKS5', async (t) => {
  const c = good(t, { env: {} });
  t.equal(c.embeddedDefault, true);
  t.equal(c.proxyMode, 'dedicated');
  t.same(c.proxyWorkloadInfo, { namespace: 'default', name: 'local', serviceAccount: 'default' });
  t.equal(c.enableSocks5, true);
  t.equal(c.xdsAddress, null);
  t.equal(c.caAddress, null);
  t.equal(c.localXdsPath, undefined);
  t.equal(c.packetMark, undefined, 'no SO_MARK without root');
});

t.test('the embedded default keeps a given workload identity and an explicit SOCKS5 opt-out', async (t) => {
  const c = good(t, { env: { PROXY_WORKLOAD_INFO: 'shop/cart/cart-sa', UNSTABLE_ENABLE_SOCKS5: 'false' } });
  t.equal(c.embeddedDefault, true);
  t.same(c.proxyWorkloadInfo, { namespace: 'shop', name: 'cart', serviceAccount: 'cart-sa' });
  t.equal(c.enableSocks5, false);
});

const notEmbedded: [string, Call][] = [
  ['KUBERNETES_SERVICE_HOST is set', { env: K8S }],
  ['PROXY_MODE is given', { env: { PROXY_MODE: 'shared' } }],
  ['XDS_ADDRESS is given (even empty)', { env: { XDS_ADDRESS: '' } }],
  ['LOCAL_XDS_PATH is given', { env: { LOCAL_XDS_PATH: './local.yaml' } }],
  ['LOCAL_XDS is given', { env: { LOCAL_XDS: 'workloads: []' } }],
  ['CA_ADDRESS is given', { env: { CA_ADDRESS: 'https://ca.example:15012' } }],
  ['--fake-ca is given as a flag', { flags: { 'fake-ca': '' } }],
  ['PROXY_CONFIG names a discoveryAddress', { env: { PROXY_CONFIG: 'discoveryAddress: istiod.example:15012' } }],
];
for (const [name, call] of notEmbedded) {
  t.test(`Istio's defaults apply instead of the embedded default when ${name}`, async (t) => {
    const c = good(t, call);
    t.equal(c.embeddedDefault, false);
    t.equal(c.proxyMode, 'shared');
    t.equal(c.enableSocks5, false);
  });
}

t.test('the documented local run (FAKE_CA, no xDS, local file, dedicated) loads as given', async (t) => {
  const c = good(t, {
    env: { FAKE_CA: 'true', XDS_ADDRESS: '', LOCAL_XDS_PATH: './local.yaml', PROXY_MODE: 'dedicated', PROXY_WORKLOAD_INFO: 'default/local/default' },
  });
  t.equal(c.embeddedDefault, false);
  t.equal(c.proxyMode, 'dedicated');
  t.equal(c.xdsAddress, null);
  t.equal(c.caAddress, null, 'FAKE_CA=true needs no CA server');
  t.equal(c.localXdsPath, './local.yaml');
  t.equal(c.enableSocks5, false);
});

// --- xDS / CA addresses and precedence ------------------------------------------------------------

const addresses: [string, Call, string | null, string | null][] = [
  ['outside Kubernetes the default is localhost', { env: { PROXY_MODE: 'shared' } }, 'https://localhost:15012', 'https://localhost:15012'],
  ['XDS_ADDRESS="" disables xDS only', { env: { ...K8S, XDS_ADDRESS: '' } }, null, 'https://istiod.istio-system.svc:15012'],
  ['CA_ADDRESS="" disables the CA only', { env: { ...K8S, CA_ADDRESS: '' } }, 'https://istiod.istio-system.svc:15012', null],
  ['a scheme-less address gets https://', { env: { ...K8S, XDS_ADDRESS: 'istiod.mesh:15012', CA_ADDRESS: 'ca.mesh:15012' } }, 'https://istiod.mesh:15012', 'https://ca.mesh:15012'],
  ['an address with a scheme is kept', { env: { ...K8S, XDS_ADDRESS: 'http://127.0.0.1:15010' } }, 'http://127.0.0.1:15010', 'https://istiod.istio-system.svc:15012'],
  ['FAKE_CA=true drops the CA address', { env: { ...K8S, FAKE_CA: 'true', CA_ADDRESS: 'ca.mesh:1' } }, 'https://istiod.istio-system.svc:15012', null],
];
for (const [name, call, xds, ca] of addresses) {
  t.test(`control-plane addresses: ${name}`, async (t) => {
    const c = good(t, call);
    t.equal(c.xdsAddress, xds);
    t.equal(c.caAddress, ca);
  });
}

const precedence: [string, Call, string][] = [
  ['the default when nothing is given', { env: K8S }, 'https://istiod.istio-system.svc:15012'],
  ['PROXY_CONFIG discoveryAddress over the default', { env: { ...K8S, PROXY_CONFIG: 'discoveryAddress: pc.mesh:15012' } }, 'https://pc.mesh:15012'],
  ['XDS_ADDRESS over PROXY_CONFIG', { env: { ...K8S, PROXY_CONFIG: 'discoveryAddress: pc.mesh:15012', XDS_ADDRESS: 'env.mesh:15012' } }, 'https://env.mesh:15012'],
  ['--xds-address over XDS_ADDRESS', { env: { ...K8S, PROXY_CONFIG: 'discoveryAddress: pc.mesh:15012', XDS_ADDRESS: 'env.mesh:15012' }, flags: { 'xds-address': 'flag.mesh:15012' } }, 'https://flag.mesh:15012'],
  ['the mesh config defaultConfig under PROXY_CONFIG', { env: K8S, files: { './etc/istio/config/mesh': 'defaultConfig:\n  discoveryAddress: mesh.mesh:15012\n' } }, 'https://mesh.mesh:15012'],
];
for (const [name, call, want] of precedence) {
  t.test(`precedence flag > env > ProxyConfig > default: ${name}`, async (t) => {
    t.equal(good(t, call).xdsAddress, want);
  });
}

t.test('ProxyConfig ports move admin and stats; the bind-address options still win', async (t) => {
  const pc = 'proxyAdminPort: 15999\nstatsPort: 15888\n';
  const c = good(t, { env: { ...K8S, PROXY_CONFIG: pc } });
  t.same(c.listeners.admin, { host: '127.0.0.1', port: 15999 });
  t.same(c.listeners.stats, { host: '::', port: 15888 });
  const d = good(t, { env: { ...K8S, PROXY_CONFIG: pc, ZTUNNEL_ADMIN_ADDR: '127.0.0.1:1' } });
  t.same(d.listeners.admin, { host: '127.0.0.1', port: 1 });
});

t.test('PROXY_CONFIG overrides the mesh config field by field and merges proxyMetadata', async (t) => {
  const c = good(t, {
    env: { ...K8S, PROXY_CONFIG: 'proxyAdminPort: 15999\nproxyMetadata:\n  ISTIO_META_BAR: bar\n  FOOBAR: overwritten\n' },
    files: { './etc/istio/config/mesh': 'defaultConfig:\n  proxyAdminPort: 15099\n  statsPort: 15888\n  proxyMetadata:\n    FOO: foo\n    FOOBAR: foobar\n' },
  });
  t.equal(c.listeners.admin.port, 15999);
  t.equal(c.listeners.stats.port, 15888);
  t.equal(c.proxyMetadata.get('FOO'), 'foo');
  t.equal(c.proxyMetadata.get('BAR'), 'bar', 'the ISTIO_META_ prefix is dropped');
  t.equal(c.proxyMetadata.get('FOOBAR'), 'overwritten');
});

// --- fatal errors --------------------------------------------------------------------------------

const fatal: [string, Call, RegExp][] = [
  ['a non-integer pool size', { env: { ...K8S, POOL_MAX_STREAMS_PER_CONNECTION: 'abc' } },
    /^--pool-max-streams-per-connection \/ POOL_MAX_STREAMS_PER_CONNECTION: "abc" is not an integer$/],
  ['an unknown PROXY_MODE', { env: { PROXY_MODE: 'sidecar' } }, /^--proxy-mode \/ PROXY_MODE: "sidecar" must be one of shared, dedicated$/],
  ['dedicated mode without PROXY_WORKLOAD_INFO', { env: { ...K8S, PROXY_MODE: 'dedicated' } }, /^--proxy-workload-info \/ PROXY_WORKLOAD_INFO: required/],
  ['PROXY_WORKLOAD_INFO with two parts', { env: { ...K8S, PROXY_MODE: 'dedicated', PROXY_WORKLOAD_INFO: 'ns/name' } }, /PROXY_WORKLOAD_INFO: "ns\/name" must be namespace\/name\/serviceaccount/],
  ['PROXY_WORKLOAD_INFO with an empty part', { env: { ...K8S, PROXY_MODE: 'dedicated', PROXY_WORKLOAD_INFO: 'ns//sa' } }, /PROXY_WORKLOAD_INFO: "ns\/\/sa"/],
  ['PROXY_WORKLOAD_INFO with four parts', { env: { ...K8S, PROXY_MODE: 'dedicated', PROXY_WORKLOAD_INFO: 'a/b/c/d' } }, /PROXY_WORKLOAD_INFO: "a\/b\/c\/d"/],
  ['LOCAL_XDS and LOCAL_XDS_PATH together', { env: { ...K8S, LOCAL_XDS: 'workloads: []', LOCAL_XDS_PATH: './x.yaml' } },
    /--local-xds-path \/ LOCAL_XDS_PATH and --local-xds \/ LOCAL_XDS: only one of them may be set/],
  ['the DNS proxy with XDS_ON_DEMAND=true', { env: { ...K8S, XDS_ON_DEMAND: 'true' } },
    /^--xds-on-demand \/ XDS_ON_DEMAND: DNS proxy does not currently support on-demand mode/],
  ['ENABLE_PROXY=false with the DNS proxy off', { env: { ...K8S, ENABLE_PROXY: 'false', ISTIO_META_DNS_CAPTURE: 'false' } },
    /^--enable-proxy \/ ENABLE_PROXY: ztunnel run without any servers enabled/],
  ['a boolean spelled yes', { env: { ...K8S, FAKE_CA: 'yes' } }, /^--fake-ca \/ FAKE_CA: "yes" is not a boolean \(use true or false\)$/],
  ['a boolean flag spelled 1', { env: K8S, flags: { 'keepalive-enabled': '1' } }, /^--keepalive-enabled \/ KEEPALIVE_ENABLED: "1" is not a boolean/],
  ['a frame size below 16384', { env: { ...K8S, HTTP2_FRAME_SIZE: '16383' } }, /^--http2-frame-size \/ HTTP2_FRAME_SIZE: "16383" is out of range \(16384\.\.16777215\)$/],
  ['a frame size above 16777215', { env: { ...K8S, HTTP2_FRAME_SIZE: '16777216' } }, /HTTP2_FRAME_SIZE: "16777216" is out of range/],
  ['a zero stream window', { env: { ...K8S, HTTP2_STREAM_WINDOW_SIZE: '0' } }, /^--http2-stream-window-size \/ HTTP2_STREAM_WINDOW_SIZE: "0" is out of range/],
  ['a zero connection window', { env: { ...K8S, HTTP2_CONNECTION_WINDOW_SIZE: '0' } }, /HTTP2_CONNECTION_WINDOW_SIZE: "0" is out of range/],
  ['a packet mark above u32', { env: { ...K8S, PACKET_MARK: '4294967296' } }, /^--packet-mark \/ PACKET_MARK: "4294967296" is out of range \(0\.\.4294967295\)$/],
  ['a negative packet mark', { env: { ...K8S, PACKET_MARK: '-1' } }, /PACKET_MARK: "-1" is out of range/],
  ['a DSCP value of 64', { env: { ...K8S, ZTUNNEL_DSCP_MARK: '64' } }, /^--dscp-mark \/ ZTUNNEL_DSCP_MARK: "64" is out of range \(0\.\.63\)$/],
  ['a bind port above 65535', { env: { ...K8S, ZTUNNEL_ADMIN_ADDR: '127.0.0.1:70000' } }, /^--admin-addr \/ ZTUNNEL_ADMIN_ADDR: "127\.0\.0\.1:70000" has a port outside 0\.\.65535$/],
  ['a bind address that is a host name', { env: { ...K8S, ZTUNNEL_INBOUND_ADDR: 'example.com:15008' } }, /^--inbound-addr \/ ZTUNNEL_INBOUND_ADDR: "example\.com:15008" is not a bind address/],
  ['a ProxyConfig port that is not a port', { env: { ...K8S, PROXY_CONFIG: 'statsPort: 99999' } }, /^--proxy-config \/ PROXY_CONFIG: statsPort: 99999 is not an integer in 0\.\.65535$/],
  ['PROXY_CONFIG that is not YAML', { env: { ...K8S, PROXY_CONFIG: 'a: [b' } }, /^--proxy-config \/ PROXY_CONFIG: is not valid YAML/],
  ['a malformed duration', { env: { ...K8S, SECRET_TTL: 'forever' } }, /^--secret-ttl \/ SECRET_TTL: "forever" is not a duration/],
  ['a sub-second keepalive', { env: { ...K8S, KEEPALIVE_TIME: '500ms' } }, /^--keepalive-time \/ KEEPALIVE_TIME: "500ms" is shorter than 1s$/],
  ['an unknown log level', { env: { ...K8S, RUST_LOG: 'info,ztunnel::proxy=loud' } }, /^--log-level \/ RUST_LOG: "info,ztunnel::proxy=loud" has an unknown level/],
  ['an unknown --log-format (the flag stays strict; LOG_FORMAT follows Istio)', { env: K8S, flags: { 'log-format': 'xml' } }, /^--log-format \/ LOG_FORMAT: "xml" must be one of plain, json$/],
  ['bad ISTIO_METAJSON_ JSON', { env: { ...K8S, ISTIO_METAJSON_LABELS: '{app:' } }, /^ISTIO_METAJSON_LABELS: "\{app:" is not valid JSON/],
  ['an XDS header value with a newline', { env: { ...K8S, XDS_HEADER_X_TOKEN: 'a\nb' } }, /^XDS_HEADER_X_TOKEN: .* is not a valid gRPC metadata value/],
  ['a CA root certificate without its key', { env: { ...K8S, ZTUNNEL_CA_CERT: './root.pem' } }, /--ca-cert \/ ZTUNNEL_CA_CERT and --ca-key \/ ZTUNNEL_CA_KEY/],
  ['a flag given twice', { env: K8S, flags: { 'secret-ttl': ['1h', '2h'] } }, /^--secret-ttl \/ SECRET_TTL: is given more than once/],
  ['a bad ISTIO_META_DNS_PROXY_ADDR', { env: { ...K8S, ISTIO_META_DNS_PROXY_ADDR: 'nowhere' } }, /^ISTIO_META_DNS_PROXY_ADDR: "nowhere" is not a bind address/],
];
for (const [name, call, message] of fatal) {
  t.test(`startup fails on ${name}, naming the flag and env var`, async (t) => {
    const errors = bad(t, call);
    t.equal(errors.length, 1, `exactly one error: ${errors.join(' | ')}`);
    t.match(errors[0] ?? '', message);
  });
}

t.test('every bad value is reported, not just the first', async (t) => {
  const errors = bad(t, {
    env: { ...K8S, POOL_MAX_STREAMS_PER_CONNECTION: 'abc', FAKE_CA: 'yes', HTTP2_FRAME_SIZE: '1', KEEPALIVE_RETRIES: 'x', ZTUNNEL_WORKER_THREADS: 'many' },
  });
  t.equal(errors.length, 5);
  for (const name of ['POOL_MAX_STREAMS_PER_CONNECTION', 'FAKE_CA', 'HTTP2_FRAME_SIZE', 'KEEPALIVE_RETRIES', 'ZTUNNEL_WORKER_THREADS']) {
    t.ok(errors.some((e) => e.includes(name)), `${name} is reported`);
  }
});

t.test('the on-demand and no-server checks pass once the DNS proxy setting allows them', async (t) => {
  t.equal(good(t, { env: { ...K8S, XDS_ON_DEMAND: 'true', ISTIO_META_DNS_CAPTURE: 'false' } }).xdsOnDemand, true);
  const c = good(t, { env: { ...K8S, ENABLE_PROXY: 'false' } });
  t.equal(c.enableProxy, false);
  t.equal(c.dnsProxy, true);
});

// --- DNS proxy ---------------------------------------------------------------------------------

const dns: [string, Call, boolean][] = [
  ['unset', { env: K8S }, true],
  ['ISTIO_META_DNS_CAPTURE=true', { env: { ...K8S, ISTIO_META_DNS_CAPTURE: 'true' } }, true],
  ['ISTIO_META_DNS_CAPTURE=TRUE (case-insensitive, as Rust ztunnel)', { env: { ...K8S, ISTIO_META_DNS_CAPTURE: 'TRUE' } }, true],
  ['ISTIO_META_DNS_CAPTURE=false', { env: { ...K8S, ISTIO_META_DNS_CAPTURE: 'false' } }, false],
  ['ISTIO_META_DNS_CAPTURE=no (anything but true)', { env: { ...K8S, ISTIO_META_DNS_CAPTURE: 'no' } }, false],
  ['ProxyConfig proxyMetadata DNS_CAPTURE: "false"', { env: { ...K8S, PROXY_CONFIG: 'proxyMetadata:\n  DNS_CAPTURE: "false"\n' } }, false],
  ['--dns-capture=false over the environment', { env: { ...K8S, ISTIO_META_DNS_CAPTURE: 'true' }, flags: { 'dns-capture': 'false' } }, false],
];
for (const [name, call, on] of dns) {
  t.test(`the DNS proxy is ${on ? 'on' : 'off'} with ${name}`, async (t) => {
    t.equal(good(t, call).dnsProxy, on);
  });
}

t.test('ISTIO_META_DNS_PROXY_ADDR moves the DNS listener; ZTUNNEL_DNS_ADDR wins over it', async (t) => {
  t.same(good(t, { env: { ...K8S, ISTIO_META_DNS_PROXY_ADDR: '127.0.0.1:25053' } }).listeners.dns, { host: '127.0.0.1', port: 25053 });
  t.same(good(t, { env: { ...K8S, ISTIO_META_DNS_PROXY_ADDR: '127.0.0.1:25053', ZTUNNEL_DNS_ADDR: '127.0.0.9:0' } }).listeners.dns, { host: '127.0.0.9', port: 0 });
});

// --- drain deadline ----------------------------------------------------------------------------

const drain: [string, Env, number][] = [
  ['nothing set → 5s', {}, 5000],
  ['TERMINATION_GRACE_PERIOD_SECONDS=30 → 25s', { TERMINATION_GRACE_PERIOD_SECONDS: '30' }, 25_000],
  ['TERMINATION_GRACE_PERIOD_SECONDS=11 → 6s', { TERMINATION_GRACE_PERIOD_SECONDS: '11' }, 6000],
  ['TERMINATION_GRACE_PERIOD_SECONDS=10 → 9s', { TERMINATION_GRACE_PERIOD_SECONDS: '10' }, 9000],
  ['TERMINATION_GRACE_PERIOD_SECONDS=8 → 7s', { TERMINATION_GRACE_PERIOD_SECONDS: '8' }, 7000],
  ['TERMINATION_GRACE_PERIOD_SECONDS=1 → the 1s floor', { TERMINATION_GRACE_PERIOD_SECONDS: '1' }, 1000],
  ['TERMINATION_GRACE_PERIOD_SECONDS=0 → the 1s floor', { TERMINATION_GRACE_PERIOD_SECONDS: '0' }, 1000],
  ['an explicit CONNECTION_TERMINATION_DEADLINE wins', { CONNECTION_TERMINATION_DEADLINE: '2s', TERMINATION_GRACE_PERIOD_SECONDS: '30' }, 2000],
  ['CONNECTION_TERMINATION_DEADLINE=500ms', { CONNECTION_TERMINATION_DEADLINE: '500ms' }, 500],
];
for (const [name, env, ms] of drain) {
  t.test(`drain deadline: ${name}`, async (t) => {
    t.equal(good(t, { env: { ...K8S, ...env } }).drainDeadlineMs, ms);
  });
}

// --- identity, metadata, headers ---------------------------------------------------------------

const clusterIds: [string, Call, string][] = [
  ['nothing set → Kubernetes', { env: K8S }, 'Kubernetes'],
  ['CLUSTER_ID alone', { env: { ...K8S, CLUSTER_ID: 'east' } }, 'east'],
  ['ISTIO_META_CLUSTER_ID over CLUSTER_ID', { env: { ...K8S, CLUSTER_ID: 'east', ISTIO_META_CLUSTER_ID: 'west' } }, 'west'],
  ['--cluster-id over both', { env: { ...K8S, CLUSTER_ID: 'east', ISTIO_META_CLUSTER_ID: 'west' }, flags: { 'cluster-id': 'north' } }, 'north'],
];
for (const [name, call, want] of clusterIds) {
  t.test(`cluster id: ${name}`, async (t) => {
    t.equal(good(t, call).clusterId, want);
  });
}

t.test('ISTIO_META_* fill proxy metadata and ISTIO_METAJSON_* the JSON metadata', async (t) => {
  const c = good(t, {
    env: {
      ...K8S,
      ISTIO_META_FOO: 'env-foo',
      ISTIO_META_ISTIO_VERSION: '1.27.0',
      ISTIO_METAJSON_LABELS: '{"app":"cart","tier":2}',
      PROXY_CONFIG: 'proxyMetadata:\n  FOO: pc-foo\n  ONLY_PC: yes-pc\n',
      NOT_META: 'x',
    },
  });
  t.equal(c.proxyMetadata.get('FOO'), 'env-foo', 'the environment wins over ProxyConfig');
  t.equal(c.proxyMetadata.get('ONLY_PC'), 'yes-pc');
  t.equal(c.proxyMetadata.get('NOT_META'), undefined);
  t.equal(c.istioVersion, '1.27.0');
  t.same(c.metaJson.get('LABELS'), { app: 'cart', tier: 2 });
});

t.test('XDS_HEADER_* and CA_HEADER_* become lower-cased metadata names, underscores kept as Rust ztunnel', async (t) => {
  const c = good(t, { env: { ...K8S, XDS_HEADER_X_API_KEY: 'k1', XDS_HEADER_TENANT: 't', CA_HEADER_HEADER_BAZ: 'baz' } });
  t.same([...c.xdsHeaders], [['tenant', 't'], ['x_api_key', 'k1']]);
  t.same([...c.caHeaders], [['header_baz', 'baz']]);
});

t.test('AUTH_TOKEN: the default token file only when it exists; a given value is kept', async (t) => {
  t.equal(good(t, { env: K8S, files: { './var/run/secrets/tokens/istio-token': 'jwt' } }).authToken, './var/run/secrets/tokens/istio-token');
  t.equal(good(t, { env: K8S }).authToken, undefined);
  t.equal(good(t, { env: { ...K8S, AUTH_TOKEN: '/tmp/token' } }).authToken, '/tmp/token');
});

t.test('PACKET_MARK: 1337 in shared mode, none in dedicated unless set', async (t) => {
  t.equal(good(t, { env: K8S }).packetMark, 1337);
  const ded = { ...K8S, PROXY_MODE: 'dedicated', PROXY_WORKLOAD_INFO: 'a/b/c' };
  t.equal(good(t, { env: ded }).packetMark, undefined);
  t.equal(good(t, { env: { ...ded, PACKET_MARK: '7' } }).packetMark, 7);
});

// --- worker threads ----------------------------------------------------------------------------

const workers: [string, Call, number][] = [
  ['ZTUNNEL_WORKER_THREADS=4', { env: { ...K8S, ZTUNNEL_WORKER_THREADS: '4' } }, 4],
  ['ZTUNNEL_WORKER_THREADS=0 means all cores', { env: { ...K8S, ZTUNNEL_WORKER_THREADS: '0' }, cpuCount: 12 }, 12],
  ['50% of 8 cores', { env: { ...K8S, ZTUNNEL_WORKER_THREADS: '50%' }, cpuCount: 8 }, 4],
  ['30% of ZTUNNEL_CPU_LIMIT=16 rounds up to 5', { env: { ...K8S, ZTUNNEL_WORKER_THREADS: '30%', ZTUNNEL_CPU_LIMIT: '16' }, cpuCount: 64 }, 5],
  ['10% of 4 cores is at least 1', { env: { ...K8S, ZTUNNEL_WORKER_THREADS: '10%' }, cpuCount: 4 }, 1],
  ['ProxyConfig concurrency when nothing explicit', { env: { ...K8S, PROXY_CONFIG: 'concurrency: 3', ZTUNNEL_RESOURCE_CPU_LIMIT: '6' } }, 3],
  ['ProxyConfig concurrency 0 means all cores', { env: { ...K8S, PROXY_CONFIG: 'concurrency: 0' }, cpuCount: 6 }, 6],
  ['the resource limit raised to the request', { env: { ...K8S, ZTUNNEL_RESOURCE_CPU_LIMIT: '4', ZTUNNEL_RESOURCE_CPU_REQUEST: '6' } }, 6],
  ['the resource limit in millicores, rounded up', { env: { ...K8S, ZTUNNEL_RESOURCE_CPU_LIMIT: '1500m' } }, 2],
  ['the request when above a quarter of the cores', { env: { ...K8S, ZTUNNEL_RESOURCE_CPU_REQUEST: '3' }, cpuCount: 8 }, 3],
  ['a quarter of 16 cores', { env: K8S, cpuCount: 16 }, 4],
  ['at least 2 on a small machine', { env: K8S, cpuCount: 4 }, 2],
  ['ZTUNNEL_CPU_LIMIT feeds the quarter rule', { env: { ...K8S, ZTUNNEL_CPU_LIMIT: '40' }, cpuCount: 4 }, 10],
  ['a percentage of the CPU resource limit, not of the node', { env: { ...K8S, ZTUNNEL_WORKER_THREADS: '50%', ZTUNNEL_RESOURCE_CPU_LIMIT: '4', ZTUNNEL_CPU_LIMIT: '32' }, cpuCount: 64 }, 2],
  ['0 means every core of the CPU resource limit', { env: { ...K8S, ZTUNNEL_WORKER_THREADS: '0', ZTUNNEL_RESOURCE_CPU_LIMIT: '3' }, cpuCount: 64 }, 3],
  ['ProxyConfig concurrency 0 counts the CPU resource limit', { env: { ...K8S, PROXY_CONFIG: 'concurrency: 0', ZTUNNEL_RESOURCE_CPU_LIMIT: '2500m' }, cpuCount: 64 }, 3],
];
for (const [name, call, n] of workers) {
  t.test(`worker threads: ${name} → ${n}`, async (t) => {
    t.equal(good(t, call).workerThreads, n);
  });
}

const badWorkers: [string, Env][] = [
  ['a word', { ZTUNNEL_WORKER_THREADS: 'many' }],
  ['a percentage above 100', { ZTUNNEL_WORKER_THREADS: '150%' }],
  ['a zero percentage', { ZTUNNEL_WORKER_THREADS: '0%' }],
  ['a CPU request that is not a quantity', { ZTUNNEL_RESOURCE_CPU_REQUEST: 'lots' }],
];
for (const [name, env] of badWorkers) {
  t.test(`worker threads: ${name} is rejected naming the variable`, async (t) => {
    const errors = bad(t, { env: { ...K8S, ...env } });
    t.equal(errors.length, 1);
    t.match(errors[0] ?? '', new RegExp(Object.keys(env)[0]!));
  });
}

// --- values, flags and freezing ----------------------------------------------------------------

t.test('durations and log filters in the Rust syntax are accepted', async (t) => {
  const c = good(t, { env: { ...K8S, SECRET_TTL: '1h30m', POOL_UNUSED_RELEASE_TIMEOUT: '90s', RUST_LOG: 'info,ztunnel::proxy=debug,hyper=off', LOG_FORMAT: 'json' } });
  t.equal(c.secretTtlMs, 5_400_000);
  t.equal(c.poolUnusedReleaseTimeoutMs, 90_000);
  t.equal(c.logLevel, 'info,ztunnel::proxy=debug,hyper=off');
  t.equal(c.logFormat, 'json');
});

t.test('an empty variable for a typed option counts as unset', async (t) => {
  const c = good(t, { env: { ...K8S, HTTP2_FRAME_SIZE: '', FAKE_CA: '', SECRET_TTL: '' } });
  t.equal(c.http2FrameSize, 1024 * 1024);
  t.equal(c.fakeCa, false);
  t.equal(c.secretTtlMs, 86_400_000);
});

t.test('flags beat the environment; a bare boolean flag means true and --no-flag false', async (t) => {
  const c = good(t, {
    env: { ...K8S, POOL_MAX_STREAMS_PER_CONNECTION: '50', TLS12_ENABLED: 'false', KEEPALIVE_ENABLED: 'true' },
    flags: { 'pool-max-streams-per-connection': '7', 'tls12-enabled': '', keepaliveEnabled: false },
  });
  t.equal(c.poolMaxStreamsPerConnection, 7);
  t.equal(c.tls12Enabled, true);
  t.equal(c.keepalive.enabled, false);
});

t.test('flags parsed from the command line reach the Config; unknown flags are refused', async (t) => {
  const parse = async (argv: string[]): Promise<{ flags?: Record<string, unknown>; failure?: string }> => {
    const r = await parseCommandLine(['run', ...argv]);
    if (r.kind === 'command') return { flags: r.flags };
    return { failure: r.kind === 'usage-error' ? r.message : 'help' };
  };
  const p = await parse(['--pool-max-streams-per-connection', '7', '--fake-ca', '--xds-address=', '--proxy-mode', 'dedicated', '--proxy-workload-info', 'a/b/c']);
  t.equal(p.failure, undefined);
  const c = good(t, { env: K8S, flags: p.flags! });
  t.equal(c.poolMaxStreamsPerConnection, 7);
  t.equal(c.fakeCa, true);
  t.equal(c.xdsAddress, null);
  t.equal(c.proxyMode, 'dedicated');
  const strict = await parse(['--bogus-flag', '1']);
  t.match(strict.failure ?? '', /bogus-flag/);
  t.match((await parse(['--fake-ca=yes'])).failure ?? '', /--fake-ca: "yes" is not a boolean/);
  t.match(bad(t, { env: K8S, flags: { 'fake-ca': 'yes' } })[0] ?? '', /"yes" is not a boolean/);
});

t.test('the options table has one row per spec/config.md §5 variable and unique flags', async (t) => {
  const spec = [
    'PROXY_MODE', 'PROXY_WORKLOAD_INFO', 'ENABLE_PROXY', 'XDS_ADDRESS', 'CA_ADDRESS', 'FAKE_CA', 'LOCAL_XDS_PATH', 'LOCAL_XDS',
    'XDS_ON_DEMAND', 'XDS_ROOT_CA', 'CA_ROOT_CA', 'ALT_XDS_HOSTNAME', 'ALT_CA_HOSTNAME', 'AUTH_TOKEN', 'ISTIO_META_CLUSTER_ID',
    'CLUSTER_ID', 'CLUSTER_DOMAIN', 'TRUST_DOMAIN', 'POD_NAME', 'POD_NAMESPACE', 'SERVICE_ACCOUNT', 'INSTANCE_IP', 'NODE_NAME',
    'NETWORK', 'SECRET_TTL', 'POOL_MAX_STREAMS_PER_CONNECTION', 'POOL_UNUSED_RELEASE_TIMEOUT', 'HTTP2_STREAM_WINDOW_SIZE',
    'HTTP2_CONNECTION_WINDOW_SIZE', 'HTTP2_FRAME_SIZE', 'CONNECTION_TERMINATION_DEADLINE', 'TERMINATION_GRACE_PERIOD_SECONDS',
    'KEEPALIVE_TIME', 'KEEPALIVE_INTERVAL', 'KEEPALIVE_RETRIES', 'KEEPALIVE_ENABLED', 'USER_TIMEOUT_ENABLED', 'ENABLE_ORIG_SRC',
    'PACKET_MARK', 'INPOD_UDS', 'INPOD_PORT_REUSE', 'IPV6_ENABLED', 'UNSTABLE_ENABLE_SOCKS5', 'LOCALHOST_APP_TUNNEL',
    'ENABLE_RESPONSE_BAGGAGE', 'CRL_PATH', 'TLS12_ENABLED', 'COMPLIANCE_POLICY', 'ZTUNNEL_WORKER_THREADS', 'ZTUNNEL_CPU_LIMIT',
    'ZTUNNEL_RESOURCE_CPU_LIMIT', 'ZTUNNEL_RESOURCE_CPU_REQUEST', 'PROXY_CONFIG', 'PREFERED_SERVICE_NAMESPACE',
    'AUTHZ_POLICY_INFO_LOGGING', 'RUST_LOG', 'LOG_FORMAT', 'TRANSPARENT_NETWORK_POLICIES', 'ISTIO_META_DNS_CAPTURE',
    'ZTUNNEL_STATE_DIR', 'ZTUNNEL_CA_CERT', 'ZTUNNEL_CA_KEY', 'ZTUNNEL_DSCP_MARK', 'ZTUNNEL_OUTBOUND_ADDR',
    'ZTUNNEL_INBOUND_PLAINTEXT_ADDR', 'ZTUNNEL_INBOUND_ADDR', 'ZTUNNEL_SOCKS5_ADDR', 'ZTUNNEL_ADMIN_ADDR', 'ZTUNNEL_STATS_ADDR',
    'ZTUNNEL_READINESS_ADDR', 'ZTUNNEL_DNS_ADDR',
  ];
  const envs = new Set(OPTION_LIST.flatMap((o) => [o.env, ...(o.envAliases ?? [])]));
  for (const name of spec) t.ok(envs.has(name), `${name} has a row`);
  const flags = OPTION_LIST.map((o) => o.flag);
  t.equal(new Set(flags).size, flags.length, 'flags are unique');
  for (const f of flags) t.match(f, /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/, `${f} is kebab-case`);
});

t.test('the Config is deeply frozen, maps included', async (t) => {
  const c = good(t, { env: { ...K8S, ISTIO_META_FOO: 'x', ISTIO_METAJSON_L: '{"a":{"b":1}}' } });
  t.throws(() => {
    (c as { proxyMode: string }).proxyMode = 'dedicated';
  });
  t.throws(() => {
    (c.listeners.outbound as { port: number }).port = 1;
  });
  t.throws(() => {
    (c.keepalive as { retries: number }).retries = 1;
  });
  t.throws(() => (c.proxyMetadata as Map<string, string>).set('FOO', 'y'));
  t.throws(() => (c.xdsHeaders as Map<string, string>).clear());
  t.throws(() => {
    ((c.metaJson.get('L') as { a: { b: number } }).a).b = 2;
  });
  t.equal(c.proxyMetadata.get('FOO'), 'x');
});
