// The one validated, frozen configuration (docs/design.md §2). Built by config/load.ts from flags and
// environment (names in spec/config.md §5); defaults live in config/ only.

export type ProxyMode = 'shared' | 'dedicated';

export interface BindAddr {
  readonly host: string;
  readonly port: number;
}

export interface Listeners {
  /** 15001 outbound capture. */
  readonly outbound: BindAddr;
  /** 15006 inbound plaintext. */
  readonly inboundPlaintext: BindAddr;
  /** 15008 inbound HBONE. */
  readonly inbound: BindAddr;
  /** 15080 SOCKS5 (when enabled). */
  readonly socks5: BindAddr;
  /** 15000 admin (loopback). */
  readonly admin: BindAddr;
  /** 15020 metrics. */
  readonly stats: BindAddr;
  /** 15021 readiness. */
  readonly readiness: BindAddr;
  /** 15053 DNS proxy. */
  readonly dns: BindAddr;
}

export interface Config {
  readonly proxyMode: ProxyMode;
  /** dedicated mode: the one workload served (PROXY_WORKLOAD_INFO). */
  readonly proxyWorkloadInfo?: { readonly namespace: string; readonly name: string; readonly serviceAccount: string };
  /** true when no mode/config source was given outside Kubernetes (ports-and-modes.md "Beyond"). */
  readonly embeddedDefault: boolean;
  readonly enableProxy: boolean;
  readonly dnsProxy: boolean;
  /** ztunnel-ts only: the resolv.conf the DNS proxy forwards with (default /etc/resolv.conf). */
  readonly dnsResolvConf: string;
  /** PREFERED_SERVICE_NAMESPACE: DNS tie-break between Services sharing a hostname. */
  readonly preferedServiceNamespace?: string;

  // config sources
  readonly localXdsPath?: string;
  readonly localXds?: string;
  /** null = xDS disabled (XDS_ADDRESS=""). */
  readonly xdsAddress: string | null;
  readonly caAddress: string | null;
  readonly xdsOnDemand: boolean;
  readonly xdsRootCa: string;
  readonly caRootCa: string;
  readonly altXdsHostname?: string;
  readonly altCaHostname?: string;
  /** Path of the token file, or a literal token; undefined = none. */
  readonly authToken?: string;
  readonly xdsHeaders: ReadonlyMap<string, string>;
  readonly caHeaders: ReadonlyMap<string, string>;
  readonly proxyMetadata: ReadonlyMap<string, string>;
  readonly metaJson: ReadonlyMap<string, unknown>;

  // certificates
  readonly fakeCa: boolean;
  /** Local CA (embedded default): state directory and an optional given root. */
  readonly stateDir: string;
  readonly caCertPath?: string;
  readonly caKeyPath?: string;
  readonly secretTtlMs: number;

  // identity of this ztunnel and node
  readonly clusterId: string;
  readonly clusterDomain: string;
  readonly trustDomain: string;
  readonly podName?: string;
  readonly podNamespace?: string;
  readonly serviceAccount?: string;
  readonly instanceIp?: string;
  readonly nodeName: string;
  readonly network: string;

  // HBONE and pool
  readonly poolMaxStreamsPerConnection: number;
  readonly poolUnusedReleaseTimeoutMs: number;
  readonly http2StreamWindowSize: number;
  readonly http2ConnectionWindowSize: number;
  readonly http2FrameSize: number;
  readonly tls12Enabled: boolean;
  readonly compliancePolicy?: string;
  readonly crlPath?: string;
  readonly enableResponseBaggage: boolean;
  readonly localhostAppTunnel: boolean;

  // sockets
  readonly keepalive: {
    readonly enabled: boolean;
    readonly timeMs: number;
    readonly intervalMs: number;
    readonly retries: number;
    readonly userTimeout: boolean;
  };
  /** undefined = best effort. */
  readonly enableOrigSrc?: boolean;
  readonly packetMark?: number;
  readonly inpodUds: string;
  readonly inpodPortReuse: boolean;
  readonly ipv6Enabled: boolean;
  readonly enableSocks5: boolean;

  // transparent network policies (capture.md §8)
  readonly transparentNetworkPolicies: boolean;
  readonly dscpMark: number;

  // lifecycle
  readonly drainDeadlineMs: number;
  readonly workerThreads: number;
  /** ztunnel-ts only (docs/memory.md): release the node binary's start-up pages at the end of start-up. */
  readonly releaseStartupPages: boolean;

  // listeners
  readonly listeners: Listeners;

  // logging
  readonly logLevel: string;
  readonly logFormat: 'plain' | 'json';
  readonly authzPolicyInfoLogging: boolean;
  readonly istioVersion: string;
  /** Settings accepted with a caveat (Istio's ztunnel would ignore the value in silence); logged at start. */
  readonly warnings: readonly string[];
}
