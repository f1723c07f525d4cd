// The one table of every ztunnel-ts option (spec/config.md §5, plus the ztunnel-ts-only rows
// marked "ztunnel-ts"). Each row ties a command-line flag to its environment variable; load.ts
// reads and validates them (flag > env > PROXY_CONFIG > default) and cli-args.ts reads the flags
// of `ztunnel run` from `runFlags()`. Defaults are applied in load.ts; `defaultText` here only
// documents them.

export type OptionType =
  | 'string'
  | 'bool' // only `true` / `false` (a bare flag means true)
  | 'int' // decimal, within [min, max]
  | 'duration' // duration.ts syntax, at least minMs
  | 'enum' // one of `choices`
  | 'addr' // bind address `ip:port`, `[v6]:port` or `localhost:port`; port 0 = ephemeral
  | 'cpu'; // CPU quantity: whole cores, decimal cores or Kubernetes millicores (`500m`)

export type OptionGroup = 'mode' | 'sources' | 'certificates' | 'identity' | 'hbone' | 'sockets' | 'lifecycle' | 'listeners' | 'logging';

export interface OptionSpec {
  /** Flag name without the leading `--` (kebab-case). */
  readonly flag: string;
  /** Environment variable, spelled as in spec/config.md §5. */
  readonly env: string;
  /** Further variables read, in order, when `env` is unset (e.g. CLUSTER_ID). */
  readonly envAliases?: readonly string[];
  readonly type: OptionType;
  readonly describe: string;
  /** Human text for --help; the real default is applied in load.ts. */
  readonly defaultText?: string;
  readonly min?: number;
  readonly max?: number;
  readonly minMs?: number;
  readonly choices?: readonly string[];
  readonly group: OptionGroup;
}

const U32_MAX = 4294967295;
/** RFC 9113 §6.9.1: a flow-control window may not exceed 2^31-1. */
const H2_WINDOW_MAX = 2147483647;

export const OPTIONS = {
  // --- mode -------------------------------------------------------------------------------------
  proxyMode: { flag: 'proxy-mode', env: 'PROXY_MODE', type: 'enum', choices: ['shared', 'dedicated'], group: 'mode',
    defaultText: 'shared (dedicated in the embedded default)', describe: 'shared: serve every pod istio-cni enrolls; dedicated: serve one workload' },
  proxyWorkloadInfo: { flag: 'proxy-workload-info', env: 'PROXY_WORKLOAD_INFO', type: 'string', group: 'mode',
    defaultText: 'required in dedicated mode (default/local/default in the embedded default)', describe: 'the one workload served in dedicated mode: namespace/name/serviceaccount' },
  enableProxy: { flag: 'enable-proxy', env: 'ENABLE_PROXY', type: 'bool', group: 'mode', defaultText: 'true', describe: 'run the L4 proxy listeners' },
  dnsCapture: { flag: 'dns-capture', env: 'ISTIO_META_DNS_CAPTURE', type: 'bool', group: 'mode', defaultText: 'true',
    describe: 'run the DNS proxy: UDP+TCP 15053 in each enrolled pod (shared) or on --dns-addr (dedicated); the env var turns it off when set to anything but true' },
  enableSocks5: { flag: 'enable-socks5', env: 'UNSTABLE_ENABLE_SOCKS5', type: 'bool', group: 'mode',
    defaultText: 'false (true in the embedded default)', describe: 'SOCKS5 outbound listener' },
  transparentNetworkPolicies: { flag: 'transparent-network-policies', env: 'TRANSPARENT_NETWORK_POLICIES', type: 'bool', group: 'mode',
    defaultText: 'false', describe: 'direct HBONE hops dial podIP:targetPort so NetworkPolicies see the real port (Calico mode)' },
  dscpMark: { flag: 'dscp-mark', env: 'ZTUNNEL_DSCP_MARK', type: 'int', min: 0, max: 63, group: 'mode', defaultText: '23',
    describe: 'ztunnel-ts: DSCP set on direct transparent-mode HBONE dials (SYN included)' },

  // --- config sources ---------------------------------------------------------------------------
  xdsAddress: { flag: 'xds-address', env: 'XDS_ADDRESS', type: 'string', group: 'sources',
    defaultText: 'https://istiod.istio-system.svc:15012 in Kubernetes, else ProxyConfig discoveryAddress, else https://localhost:15012',
    describe: 'xDS server; "" disables xDS; https:// is added when no scheme is given' },
  caAddress: { flag: 'ca-address', env: 'CA_ADDRESS', type: 'string', group: 'sources',
    defaultText: 'as XDS_ADDRESS', describe: 'CA server; "" disables; ignored with FAKE_CA=true' },
  fakeCa: { flag: 'fake-ca', env: 'FAKE_CA', type: 'bool', group: 'sources', defaultText: 'false', describe: 'certificates from an in-process CA' },
  localXdsPath: { flag: 'local-xds-path', env: 'LOCAL_XDS_PATH', type: 'string', group: 'sources', describe: 'local config file (watched)' },
  localXds: { flag: 'local-xds', env: 'LOCAL_XDS', type: 'string', group: 'sources', describe: 'local config as inline YAML' },
  xdsOnDemand: { flag: 'xds-on-demand', env: 'XDS_ON_DEMAND', type: 'bool', group: 'sources', defaultText: 'false',
    describe: 'on-demand Address subscription (requires the DNS proxy off)' },
  xdsRootCa: { flag: 'xds-root-ca', env: 'XDS_ROOT_CA', type: 'string', group: 'sources', defaultText: './var/run/secrets/istio/root-cert.pem',
    describe: 'xDS root: file path if it exists, SYSTEM for OS roots, else literal PEM' },
  caRootCa: { flag: 'ca-root-ca', env: 'CA_ROOT_CA', type: 'string', group: 'sources', defaultText: './var/run/secrets/istio/root-cert.pem',
    describe: 'CA root: file path if it exists, SYSTEM for OS roots, else literal PEM' },
  altXdsHostname: { flag: 'alt-xds-hostname', env: 'ALT_XDS_HOSTNAME', type: 'string', group: 'sources', describe: 'extra accepted server name for the xDS certificate' },
  altCaHostname: { flag: 'alt-ca-hostname', env: 'ALT_CA_HOSTNAME', type: 'string', group: 'sources', describe: 'extra accepted server name for the CA certificate' },
  authToken: { flag: 'auth-token', env: 'AUTH_TOKEN', type: 'string', group: 'sources',
    defaultText: './var/run/secrets/tokens/istio-token if it exists', describe: 'token file path, or a literal token' },
  proxyConfig: { flag: 'proxy-config', env: 'PROXY_CONFIG', type: 'string', group: 'sources',
    describe: 'ProxyConfig YAML: discoveryAddress, proxyAdminPort, statsPort, concurrency, proxyMetadata' },
  preferedServiceNamespace: { flag: 'prefered-service-namespace', env: 'PREFERED_SERVICE_NAMESPACE', type: 'string', group: 'sources',
    describe: 'tie-break namespace for hostname lookups (deprecated; spelling as in Istio)' },

  // --- certificates -----------------------------------------------------------------------------
  secretTtl: { flag: 'secret-ttl', env: 'SECRET_TTL', type: 'duration', minMs: 1000, group: 'certificates', defaultText: '24h',
    describe: 'requested certificate lifetime' },
  stateDir: { flag: 'state-dir', env: 'ZTUNNEL_STATE_DIR', type: 'string', group: 'certificates', defaultText: './.ztunnel/',
    describe: 'ztunnel-ts: directory for the local CA root' },
  caCert: { flag: 'ca-cert', env: 'ZTUNNEL_CA_CERT', type: 'string', group: 'certificates', describe: 'ztunnel-ts: given local CA root (or chain) PEM file' },
  caKey: { flag: 'ca-key', env: 'ZTUNNEL_CA_KEY', type: 'string', group: 'certificates', describe: 'ztunnel-ts: private key PEM file of --ca-cert' },
  tls12Enabled: { flag: 'tls12-enabled', env: 'TLS12_ENABLED', type: 'bool', group: 'certificates', defaultText: 'false', describe: 'also allow TLS 1.2' },
  compliancePolicy: { flag: 'compliance-policy', env: 'COMPLIANCE_POLICY', type: 'enum', choices: ['pqc'], group: 'certificates',
    describe: 'pqc: only the X25519MLKEM768 key exchange' },
  crlPath: { flag: 'crl-path', env: 'CRL_PATH', type: 'string', group: 'certificates', describe: 'CRL file, reloaded on change' },

  // --- identity of this ztunnel and node --------------------------------------------------------
  clusterId: { flag: 'cluster-id', env: 'ISTIO_META_CLUSTER_ID', envAliases: ['CLUSTER_ID'], type: 'string', group: 'identity',
    defaultText: 'Kubernetes', describe: 'cluster id (ISTIO_META_CLUSTER_ID, then CLUSTER_ID)' },
  clusterDomain: { flag: 'cluster-domain', env: 'CLUSTER_DOMAIN', type: 'string', group: 'identity', defaultText: 'cluster.local', describe: 'DNS suffix' },
  trustDomain: { flag: 'trust-domain', env: 'TRUST_DOMAIN', type: 'string', group: 'identity', defaultText: 'cluster.local',
    describe: "trust domain of ztunnel's own (self-proxy) identity" },
  podName: { flag: 'pod-name', env: 'POD_NAME', type: 'string', group: 'identity', describe: "ztunnel's pod name" },
  podNamespace: { flag: 'pod-namespace', env: 'POD_NAMESPACE', type: 'string', group: 'identity', describe: "ztunnel's namespace" },
  serviceAccount: { flag: 'service-account', env: 'SERVICE_ACCOUNT', type: 'string', group: 'identity', describe: "ztunnel's service account" },
  instanceIp: { flag: 'instance-ip', env: 'INSTANCE_IP', type: 'string', group: 'identity', describe: 'xDS node id and metadata IP' },
  nodeName: { flag: 'node-name', env: 'NODE_NAME', type: 'string', group: 'identity', describe: 'this node; filters local workloads and certificate prefetch' },
  network: { flag: 'network', env: 'NETWORK', type: 'string', group: 'identity', defaultText: '""', describe: "this node's network" },

  // --- HBONE and pool ---------------------------------------------------------------------------
  poolMaxStreamsPerConnection: { flag: 'pool-max-streams-per-connection', env: 'POOL_MAX_STREAMS_PER_CONNECTION', type: 'int', min: 1, max: 65535,
    group: 'hbone', defaultText: '100', describe: 'HBONE streams per pooled connection' },
  poolUnusedReleaseTimeout: { flag: 'pool-unused-release-timeout', env: 'POOL_UNUSED_RELEASE_TIMEOUT', type: 'duration', minMs: 0,
    group: 'hbone', defaultText: '5m', describe: 'idle pooled connection release' },
  http2StreamWindowSize: { flag: 'http2-stream-window-size', env: 'HTTP2_STREAM_WINDOW_SIZE', type: 'int', min: 1, max: H2_WINDOW_MAX,
    group: 'hbone', defaultText: '4194304 (4 MiB)', describe: 'HTTP/2 stream window, bytes' },
  http2ConnectionWindowSize: { flag: 'http2-connection-window-size', env: 'HTTP2_CONNECTION_WINDOW_SIZE', type: 'int', min: 1, max: H2_WINDOW_MAX,
    group: 'hbone', defaultText: '16777216 (16 MiB)', describe: 'HTTP/2 connection window, bytes' },
  // RFC 9113 §6.5.2 SETTINGS_MAX_FRAME_SIZE bounds.
  http2FrameSize: { flag: 'http2-frame-size', env: 'HTTP2_FRAME_SIZE', type: 'int', min: 16384, max: 16777215,
    group: 'hbone', defaultText: '1048576 (1 MiB)', describe: 'HTTP/2 max frame size, bytes' },
  enableResponseBaggage: { flag: 'enable-response-baggage', env: 'ENABLE_RESPONSE_BAGGAGE', type: 'bool', group: 'hbone', defaultText: 'true',
    describe: 'baggage on 200 responses and parsing of inbound baggage' },
  localhostAppTunnel: { flag: 'localhost-app-tunnel', env: 'LOCALHOST_APP_TUNNEL', type: 'bool', group: 'hbone', defaultText: 'true',
    describe: 'PROXY-protocol application tunnels over loopback' },

  // --- sockets ----------------------------------------------------------------------------------
  // TCP_KEEPIDLE / TCP_KEEPINTVL are whole seconds ≥ 1 and TCP_KEEPCNT ≤ 127 on Linux.
  keepaliveTime: { flag: 'keepalive-time', env: 'KEEPALIVE_TIME', type: 'duration', minMs: 1000, group: 'sockets', defaultText: '180s', describe: 'TCP keepalive idle time' },
  keepaliveInterval: { flag: 'keepalive-interval', env: 'KEEPALIVE_INTERVAL', type: 'duration', minMs: 1000, group: 'sockets', defaultText: '180s',
    describe: 'TCP keepalive probe interval' },
  keepaliveRetries: { flag: 'keepalive-retries', env: 'KEEPALIVE_RETRIES', type: 'int', min: 1, max: 127, group: 'sockets', defaultText: '9',
    describe: 'TCP keepalive probes before the connection is dropped' },
  keepaliveEnabled: { flag: 'keepalive-enabled', env: 'KEEPALIVE_ENABLED', type: 'bool', group: 'sockets', defaultText: 'true', describe: 'TCP keepalive' },
  userTimeoutEnabled: { flag: 'user-timeout-enabled', env: 'USER_TIMEOUT_ENABLED', type: 'bool', group: 'sockets', defaultText: 'false', describe: 'set TCP_USER_TIMEOUT' },
  enableOrigSrc: { flag: 'enable-orig-src', env: 'ENABLE_ORIG_SRC', type: 'bool', group: 'sockets', defaultText: 'unset: spoof when IP_TRANSPARENT can be set',
    describe: "connect to the app from the client's own address: true requires it (start fails without the privilege), false never, unset whenever the listener accepts IP_TRANSPARENT" },
  packetMark: { flag: 'packet-mark', env: 'PACKET_MARK', type: 'int', min: 0, max: U32_MAX, group: 'sockets',
    defaultText: '1337 in shared mode, none in dedicated', describe: 'SO_MARK on sockets ztunnel creates' },
  inpodUds: { flag: 'inpod-uds', env: 'INPOD_UDS', type: 'string', group: 'sockets', defaultText: '/var/run/ztunnel/ztunnel.sock', describe: 'ZDS socket' },
  inpodPortReuse: { flag: 'inpod-port-reuse', env: 'INPOD_PORT_REUSE', type: 'bool', group: 'sockets', defaultText: 'true', describe: 'SO_REUSEPORT on in-pod listeners' },
  ipv6Enabled: { flag: 'ipv6-enabled', env: 'IPV6_ENABLED', type: 'bool', group: 'sockets', defaultText: 'true', describe: 'dual-stack binds ([::] instead of 0.0.0.0)' },

  // --- lifecycle --------------------------------------------------------------------------------
  connectionTerminationDeadline: { flag: 'connection-termination-deadline', env: 'CONNECTION_TERMINATION_DEADLINE', type: 'duration', minMs: 0,
    group: 'lifecycle', defaultText: 'from TERMINATION_GRACE_PERIOD_SECONDS, else 5s', describe: 'drain deadline' },
  terminationGracePeriodSeconds: { flag: 'termination-grace-period-seconds', env: 'TERMINATION_GRACE_PERIOD_SECONDS', type: 'int', min: 0,
    max: Number.MAX_SAFE_INTEGER, group: 'lifecycle', describe: 'drain deadline = s-5 if s > 10, else s-1, at least 1s' },
  workerThreads: { flag: 'worker-threads', env: 'ZTUNNEL_WORKER_THREADS', type: 'string', group: 'lifecycle',
    defaultText: 'ProxyConfig concurrency, else resource limit, else max(ceil(cores/4), request, 2)', describe: 'worker threads: integer (0 = all cores) or NN% of cores' },
  cpuLimit: { flag: 'cpu-limit', env: 'ZTUNNEL_CPU_LIMIT', type: 'int', min: 1, max: 65535, group: 'lifecycle', describe: 'core count used by the worker rules' },
  resourceCpuLimit: { flag: 'resource-cpu-limit', env: 'ZTUNNEL_RESOURCE_CPU_LIMIT', type: 'cpu', group: 'lifecycle', describe: 'container CPU limit' },
  resourceCpuRequest: { flag: 'resource-cpu-request', env: 'ZTUNNEL_RESOURCE_CPU_REQUEST', type: 'cpu', group: 'lifecycle', describe: 'container CPU request' },
  releaseStartupPages: { flag: 'release-startup-pages', env: 'ZTUNNEL_TS_RELEASE_STARTUP_PAGES', type: 'bool', group: 'lifecycle', defaultText: 'true',
    describe: 'ztunnel-ts only: at the end of start-up, drop the node binary\'s resident clean pages from RSS (docs/memory.md)' },

  // --- listeners (ztunnel-ts: one bind address each, so several daemons fit on one machine) ------
  outboundAddr: { flag: 'outbound-addr', env: 'ZTUNNEL_OUTBOUND_ADDR', type: 'addr', group: 'listeners',
    defaultText: '[::]:15001 (0.0.0.0 with IPV6_ENABLED=false)', describe: 'outbound capture listener' },
  inboundPlaintextAddr: { flag: 'inbound-plaintext-addr', env: 'ZTUNNEL_INBOUND_PLAINTEXT_ADDR', type: 'addr', group: 'listeners',
    defaultText: '[::]:15006 (0.0.0.0 with IPV6_ENABLED=false)', describe: 'inbound plaintext listener' },
  inboundAddr: { flag: 'inbound-addr', env: 'ZTUNNEL_INBOUND_ADDR', type: 'addr', group: 'listeners',
    defaultText: '[::]:15008 (0.0.0.0 with IPV6_ENABLED=false)', describe: 'inbound HBONE listener' },
  socks5Addr: { flag: 'socks5-addr', env: 'ZTUNNEL_SOCKS5_ADDR', type: 'addr', group: 'listeners', defaultText: '127.0.0.1:15080', describe: 'SOCKS5 listener' },
  adminAddr: { flag: 'admin-addr', env: 'ZTUNNEL_ADMIN_ADDR', type: 'addr', group: 'listeners',
    defaultText: '127.0.0.1:15000 (port from ProxyConfig proxyAdminPort)', describe: 'admin server' },
  statsAddr: { flag: 'stats-addr', env: 'ZTUNNEL_STATS_ADDR', type: 'addr', group: 'listeners',
    defaultText: '[::]:15020 (port from ProxyConfig statsPort)', describe: 'Prometheus metrics server' },
  readinessAddr: { flag: 'readiness-addr', env: 'ZTUNNEL_READINESS_ADDR', type: 'addr', group: 'listeners',
    defaultText: '[::]:15021 (0.0.0.0 with IPV6_ENABLED=false)', describe: 'readiness server' },
  dnsAddr: { flag: 'dns-addr', env: 'ZTUNNEL_DNS_ADDR', type: 'addr', group: 'listeners',
    defaultText: '127.0.0.1:15053 (or proxy metadata DNS_PROXY_ADDR)', describe: 'DNS proxy listener (dedicated mode; shared mode always uses 15053 on loopback in each pod)' },
  dnsResolvConf: { flag: 'dns-resolv-conf', env: 'ZTUNNEL_TS_DNS_RESOLV_CONF', type: 'string', group: 'listeners', defaultText: '/etc/resolv.conf',
    describe: 'ztunnel-ts only: the resolv.conf whose nameservers, search and timeout/attempts options the DNS proxy uses (tests point it at a local resolver)' },

  // --- logging ----------------------------------------------------------------------------------
  logLevel: { flag: 'log-level', env: 'RUST_LOG', type: 'string', group: 'logging', defaultText: 'info',
    describe: 'log filter: a level or scope=level,... (error, warn, info, debug, trace, off)' },
  logFormat: { flag: 'log-format', env: 'LOG_FORMAT', type: 'enum', choices: ['plain', 'json'], group: 'logging', defaultText: 'plain', describe: 'log format' },
  authzPolicyInfoLogging: { flag: 'authz-policy-info-logging', env: 'AUTHZ_POLICY_INFO_LOGGING', type: 'bool', group: 'logging', defaultText: 'false',
    describe: 'policy decision logs at INFO instead of DEBUG' },
} as const satisfies Record<string, OptionSpec>;

export type OptionKey = keyof typeof OPTIONS;

/** Every row with its key, in table order. */
export const OPTION_LIST: readonly (OptionSpec & { readonly key: OptionKey })[] = Object.freeze(
  (Object.keys(OPTIONS) as OptionKey[]).map((key) => Object.freeze({ key, ...(OPTIONS[key] as OptionSpec) })),
);

/** Families of variables read by prefix (no flag); handled in load.ts. */
export const ENV_PREFIXES: readonly { readonly prefix: string; readonly describe: string }[] = Object.freeze([
  { prefix: 'ISTIO_META_', describe: 'proxy metadata (<KEY> after the prefix); DNS_CAPTURE, DNS_PROXY_ADDR, ISTIO_VERSION, CLUSTER_ID are also read' },
  { prefix: 'ISTIO_METAJSON_', describe: 'JSON values added to the xDS node metadata' },
  { prefix: 'XDS_HEADER_', describe: 'extra gRPC metadata on xDS calls (name lower-cased)' },
  { prefix: 'CA_HEADER_', describe: 'extra gRPC metadata on CA calls (name lower-cased)' },
]);

/** `--flag / ENV`, the label every config error starts with. */
export function optionLabel(key: OptionKey): string {
  const o: OptionSpec = OPTIONS[key];
  return `--${o.flag} / ${o.env}`;
}

const GROUP_TITLE: Record<OptionGroup, string> = {
  mode: 'Mode:',
  sources: 'Config sources:',
  certificates: 'Certificates:',
  identity: 'Identity:',
  hbone: 'HBONE:',
  sockets: 'Sockets:',
  lifecycle: 'Lifecycle:',
  listeners: 'Listeners:',
  logging: 'Logging:',
};

/** One flag of `ztunnel run` as the command-line parser (cli-args.ts) reads it and --help shows it. */
export interface RunFlag {
  /** Without the leading `--` (kebab-case). */
  readonly name: string;
  /** false for booleans: a bare `--flag` is "" (= true) and `--no-<flag>` is "false". */
  readonly takesValue: boolean;
  /** --help section title. */
  readonly group: string;
  /** --help text: the description and `[env X; true|false; a|b; default: ...]`. */
  readonly describe: string;
}

/**
 * The flags of `ztunnel run`, built from the table in table order. Every value reaches load.ts as
 * text, without a default: load.ts must see "not given" to apply env > PROXY_CONFIG > default, and
 * it validates booleans strictly itself (`--fake-ca=yes` is an error there, not a silent false).
 */
export function runFlags(): readonly RunFlag[] {
  return OPTION_LIST.map((o) => {
    const notes = [`env ${[o.env, ...(o.envAliases ?? [])].join(', ')}`];
    if (o.type === 'bool') notes.push('true|false');
    if (o.choices) notes.push(o.choices.join('|'));
    if (o.defaultText) notes.push(`default: ${o.defaultText}`);
    return { name: o.flag, takesValue: o.type !== 'bool', group: GROUP_TITLE[o.group], describe: `${o.describe} [${notes.join('; ')}]` };
  });
}
