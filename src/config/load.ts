// Flags + environment (+ ProxyConfig) → one validated, deeply frozen Config (docs/design.md §2).
// Precedence: flag > env > ProxyConfig (mesh `defaultConfig`, then PROXY_CONFIG) > default.
// Every problem is collected (not just the first) and each message names the flag and the env
// var and quotes the bad value. Rules follow spec/config.md §4–§5, spec/ports-and-modes.md and
// istio/ztunnel src/config.rs; ztunnel-ts additions are marked.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { isIP } from 'node:net';
import { err, ok, type Result } from '../core/errors.js';
import { canonicalIp } from '../core/net.js';
import { yamlLib } from '../core/yaml-lib.js';
import type { BindAddr, Config, Listeners, ProxyMode } from './config.js';
import { parseDuration } from './duration.js';
import { OPTIONS, optionLabel, type OptionKey, type OptionSpec } from './options.js';

export interface LoadConfigInput {
  /** Parsed flags (parseCommandLine in cli-args.ts: kebab-case and/or camelCase keys; an array when repeated). Undefined = not given. */
  readonly flags: Record<string, unknown>;
  readonly env: NodeJS.ProcessEnv | Record<string, string | undefined>;
  /** Logical cores; default os.availableParallelism(). */
  readonly cpuCount?: number;
  /** Returns a file's text, or undefined when it cannot be read; default fs.readFileSync. */
  readonly readFile?: (path: string) => string | undefined;
}

const DEFAULT_ROOT_CERT = './var/run/secrets/istio/root-cert.pem';
const DEFAULT_TOKEN = './var/run/secrets/tokens/istio-token';
const MESH_CONFIG_PATH = './etc/istio/config/mesh';
const ISTIO_META = 'ISTIO_META_';
const ISTIO_METAJSON = 'ISTIO_METAJSON_';
const LOG_LEVELS = new Set(['error', 'warn', 'info', 'debug', 'trace', 'off']);

export function loadConfig(input: LoadConfigInput): Result<Config, string[]> {
  const env = input.env;
  const readFile = input.readFile ?? defaultReadFile;
  const inp = new Inputs(input.flags, env);
  const errors = inp.errors;
  const inKubernetes = env['KUBERNETES_SERVICE_HOST'] !== undefined;

  // ProxyConfig (spec/config.md §4) and proxy metadata: ProxyConfig proxyMetadata, then
  // ISTIO_META_* from the environment on top (istio/ztunnel construct_proxy_config).
  const pc = loadProxyConfig(inp, readFile);
  const proxyMetadata = new Map(pc.proxyMetadata);
  for (const [name, value] of sortedEnv(env)) {
    if (name.startsWith(ISTIO_META) && name.length > ISTIO_META.length) proxyMetadata.set(name.slice(ISTIO_META.length), value);
  }

  // Embedded default (ports-and-modes.md "Beyond"): outside Kubernetes with no mode and no config
  // or CA source given, run dedicated + SOCKS5 with the local CA and an embedded local config.
  // A ProxyConfig discoveryAddress also counts as a given source.
  const sourceKeys: OptionKey[] = ['proxyMode', 'xdsAddress', 'localXdsPath', 'localXds', 'caAddress', 'fakeCa'];
  const embeddedDefault = !inKubernetes && pc.discoveryAddress === undefined && sourceKeys.every((k) => !inp.given(k));

  // --- mode ----------------------------------------------------------------------------------
  const proxyMode: ProxyMode = inp.choice<ProxyMode>('proxyMode') ?? (embeddedDefault ? 'dedicated' : 'shared');
  let proxyWorkloadInfo: Config['proxyWorkloadInfo'];
  if (proxyMode === 'dedicated') {
    const raw = inp.text('proxyWorkloadInfo') || (embeddedDefault ? 'default/local/default' : undefined);
    if (raw === undefined) {
      errors.push(`${optionLabel('proxyWorkloadInfo')}: required when PROXY_MODE=dedicated (namespace/name/serviceaccount)`);
    } else {
      const parts = raw.split('/');
      if (parts.length !== 3 || parts.some((p) => p === '')) {
        errors.push(`${optionLabel('proxyWorkloadInfo')}: ${JSON.stringify(raw)} must be namespace/name/serviceaccount (three non-empty parts)`);
      } else {
        proxyWorkloadInfo = { namespace: parts[0]!, name: parts[1]!, serviceAccount: parts[2]! };
      }
    }
  }
  const enableProxy = inp.bool('enableProxy') ?? true;
  // DNS proxy is on unless the DNS_CAPTURE metadata is set to something other than `true`
  // (compared case-insensitively, as Rust ztunnel does); the flag is a strict boolean.
  const dnsCaptureFlag = inp.bool('dnsCapture', { flagOnly: true });
  const dnsCaptureMeta = proxyMetadata.get('DNS_CAPTURE');
  const dnsProxy = dnsCaptureFlag ?? (dnsCaptureMeta === undefined || dnsCaptureMeta.toLowerCase() === 'true');
  const enableSocks5 = inp.bool('enableSocks5') ?? embeddedDefault;
  // DNS answers prefer a Service in the client's namespace, then a canonical one, then this one.
  const preferedServiceNamespace = inp.text('preferedServiceNamespace') || undefined;

  // --- config sources ------------------------------------------------------------------------
  const localXdsPath = inp.text('localXdsPath') || undefined;
  const localXds = inp.text('localXds') || undefined;
  if (localXdsPath !== undefined && localXds !== undefined) {
    errors.push(`${optionLabel('localXdsPath')} and ${optionLabel('localXds')}: only one of them may be set`);
  }
  const fakeCa = inp.bool('fakeCa') ?? false;
  const defaultIstiod = inKubernetes ? 'https://istiod.istio-system.svc:15012' : 'https://localhost:15012';
  const xdsAddress = embeddedDefault ? null : controlPlaneUri('xdsAddress', inp.text('xdsAddress') ?? pc.discoveryAddress ?? defaultIstiod, errors, inp.warnings);
  // Rust ztunnel: the CA default is the istiod default only (not discoveryAddress); FAKE_CA → none.
  const caAddress = embeddedDefault || fakeCa ? null : controlPlaneUri('caAddress', inp.text('caAddress') ?? defaultIstiod, errors, inp.warnings);
  const xdsOnDemand = inp.bool('xdsOnDemand') ?? false;

  let authToken = inp.text('authToken') || undefined;
  if (authToken === undefined && readFile(DEFAULT_TOKEN) !== undefined) authToken = DEFAULT_TOKEN;

  // --- certificates --------------------------------------------------------------------------
  const caCertPath = inp.text('caCert') || undefined;
  const caKeyPath = inp.text('caKey') || undefined;
  if ((caCertPath === undefined) !== (caKeyPath === undefined)) {
    errors.push(`${optionLabel('caCert')} and ${optionLabel('caKey')}: a given CA root needs both its certificate and its key`);
  }

  // --- listeners -----------------------------------------------------------------------------
  const ipv6Enabled = inp.bool('ipv6Enabled') ?? true;
  const wildcard = ipv6Enabled ? '::' : '0.0.0.0';
  let dnsDefault: BindAddr = { host: '127.0.0.1', port: 15053 };
  const dnsMeta = proxyMetadata.get('DNS_PROXY_ADDR');
  if (dnsMeta !== undefined && dnsMeta !== '') {
    const a = parseBindAddr(dnsMeta);
    if (a.ok) dnsDefault = a.value;
    else errors.push(`ISTIO_META_DNS_PROXY_ADDR: ${JSON.stringify(dnsMeta)} ${a.error}`);
  }
  const listeners: Listeners = {
    outbound: inp.addr('outboundAddr') ?? { host: wildcard, port: 15001 },
    inboundPlaintext: inp.addr('inboundPlaintextAddr') ?? { host: wildcard, port: 15006 },
    inbound: inp.addr('inboundAddr') ?? { host: wildcard, port: 15008 },
    socks5: inp.addr('socks5Addr') ?? { host: '127.0.0.1', port: 15080 },
    admin: inp.addr('adminAddr') ?? { host: '127.0.0.1', port: pc.proxyAdminPort ?? 15000 },
    stats: inp.addr('statsAddr') ?? { host: wildcard, port: pc.statsPort ?? 15020 },
    readiness: inp.addr('readinessAddr') ?? { host: wildcard, port: 15021 },
    dns: inp.addr('dnsAddr') ?? dnsDefault,
  };

  // --- lifecycle -----------------------------------------------------------------------------
  // Drain deadline (ports-and-modes.md §5): explicit; else from the Kubernetes grace period with a
  // margin so ztunnel closes connections itself before SIGKILL; else 5 s.
  let drainDeadlineMs = inp.duration('connectionTerminationDeadline');
  if (drainDeadlineMs === undefined) {
    const grace = inp.int('terminationGracePeriodSeconds');
    drainDeadlineMs = grace === undefined ? 5000 : Math.max(grace > 10 ? grace - 5 : grace - 1, 1) * 1000;
  }
  const workerThreads = resolveWorkerThreads(inp, pc.concurrency, input.cpuCount ?? availableParallelism());

  // --- logging -------------------------------------------------------------------------------
  const logLevel = inp.text('logLevel') || 'info';
  const badLevel = checkLogFilter(logLevel);
  if (badLevel) errors.push(`${optionLabel('logLevel')}: ${JSON.stringify(logLevel)} ${badLevel}`);

  // --- maps from prefixed variables ----------------------------------------------------------
  const xdsHeaders = parseHeaders(env, 'XDS_HEADER_', errors);
  const caHeaders = parseHeaders(env, 'CA_HEADER_', errors);
  const metaJson = new Map<string, unknown>();
  for (const [name, value] of sortedEnv(env)) {
    if (!name.startsWith(ISTIO_METAJSON) || name.length === ISTIO_METAJSON.length) continue;
    try {
      metaJson.set(name.slice(ISTIO_METAJSON.length), JSON.parse(value));
    } catch (e) {
      errors.push(`${name}: ${JSON.stringify(value)} is not valid JSON (${(e as Error).message})`);
    }
  }

  // Read (and so validate) the remaining rows before the cross-field checks.
  const config: Config = {
    proxyMode,
    proxyWorkloadInfo,
    embeddedDefault,
    enableProxy,
    dnsProxy,
    localXdsPath,
    localXds,
    xdsAddress,
    caAddress,
    xdsOnDemand,
    xdsRootCa: inp.text('xdsRootCa') || DEFAULT_ROOT_CERT,
    caRootCa: inp.text('caRootCa') || DEFAULT_ROOT_CERT,
    altXdsHostname: inp.text('altXdsHostname') || undefined,
    altCaHostname: inp.text('altCaHostname') || undefined,
    authToken,
    xdsHeaders,
    caHeaders,
    proxyMetadata,
    metaJson,
    fakeCa,
    stateDir: inp.text('stateDir') || './.ztunnel/',
    caCertPath,
    caKeyPath,
    secretTtlMs: inp.duration('secretTtl') ?? 24 * 3_600_000,
    // ISTIO_META_CLUSTER_ID, then CLUSTER_ID (envAliases), then Kubernetes.
    clusterId: inp.text('clusterId') || 'Kubernetes',
    clusterDomain: inp.text('clusterDomain') || 'cluster.local',
    trustDomain: inp.text('trustDomain') || 'cluster.local',
    podName: inp.text('podName') || undefined,
    podNamespace: inp.text('podNamespace') || undefined,
    serviceAccount: inp.text('serviceAccount') || undefined,
    instanceIp: inp.text('instanceIp') || undefined,
    nodeName: inp.text('nodeName') ?? '',
    network: inp.text('network') ?? '',
    poolMaxStreamsPerConnection: inp.int('poolMaxStreamsPerConnection') ?? 100,
    poolUnusedReleaseTimeoutMs: inp.duration('poolUnusedReleaseTimeout') ?? 5 * 60_000,
    http2StreamWindowSize: inp.int('http2StreamWindowSize') ?? 4 * 1024 * 1024,
    http2ConnectionWindowSize: inp.int('http2ConnectionWindowSize') ?? 16 * 1024 * 1024,
    http2FrameSize: inp.int('http2FrameSize') ?? 1024 * 1024,
    tls12Enabled: inp.istioExact('tls12Enabled', 'true', 'false', () => inp.bool('tls12Enabled')) ?? false,
    ...(inp.istioExact('compliancePolicy', 'pqc', '', () => inp.choice('compliancePolicy') === 'pqc') ? { compliancePolicy: 'pqc' } : {}),
    crlPath: inp.text('crlPath') || undefined,
    enableResponseBaggage: inp.bool('enableResponseBaggage') ?? true,
    localhostAppTunnel: inp.bool('localhostAppTunnel') ?? true,
    keepalive: {
      enabled: inp.bool('keepaliveEnabled') ?? true,
      timeMs: inp.duration('keepaliveTime') ?? 180_000,
      intervalMs: inp.duration('keepaliveInterval') ?? 180_000,
      retries: inp.int('keepaliveRetries') ?? 9,
      userTimeout: inp.bool('userTimeoutEnabled') ?? false,
    },
    enableOrigSrc: inp.bool('enableOrigSrc'),
    // capture.md §2: the mark is required in shared mode, optional in dedicated.
    packetMark: inp.int('packetMark') ?? (proxyMode === 'shared' ? 1337 : undefined),
    inpodUds: inp.text('inpodUds') || '/var/run/ztunnel/ztunnel.sock',
    inpodPortReuse: inp.bool('inpodPortReuse') ?? true,
    ipv6Enabled,
    enableSocks5,
    transparentNetworkPolicies: inp.bool('transparentNetworkPolicies') ?? false,
    dscpMark: inp.int('dscpMark') ?? 23,
    drainDeadlineMs,
    workerThreads,
    releaseStartupPages: inp.bool('releaseStartupPages') ?? true,
    listeners,
    logLevel,
    logFormat: inp.istioExact('logFormat', 'json', 'plain', () => inp.choice<'plain' | 'json'>('logFormat') === 'json') ? 'json' : 'plain',
    authzPolicyInfoLogging: inp.istioExact('authzPolicyInfoLogging', 'true', 'false', () => inp.bool('authzPolicyInfoLogging')) ?? false,
    istioVersion: proxyMetadata.get('ISTIO_VERSION') || 'unknown',
    warnings: inp.warnings,
    dnsResolvConf: inp.text('dnsResolvConf') || '/etc/resolv.conf',
    ...(preferedServiceNamespace ? { preferedServiceNamespace } : {}),
  };

  // Cross-field checks (ports-and-modes.md §4); texts as Rust ztunnel's.
  if (dnsProxy && xdsOnDemand) {
    errors.push(`${optionLabel('xdsOnDemand')}: DNS proxy does not currently support on-demand mode (turn the DNS proxy off with ISTIO_META_DNS_CAPTURE=false)`);
  }
  if (!enableProxy && !dnsProxy) {
    errors.push(`${optionLabel('enableProxy')}: ztunnel run without any servers enabled (the proxy is off and so is the DNS proxy)`);
  }

  if (errors.length > 0) return err(errors);
  return ok(deepFreeze(config));
}

// --- reading one option ------------------------------------------------------------------------

interface Raw {
  readonly value: unknown;
  readonly fromFlag: boolean;
}

class Inputs {
  readonly errors: string[] = [];
  readonly warnings: string[] = [];
  constructor(
    private readonly flags: Record<string, unknown>,
    private readonly env: Record<string, string | undefined>,
  ) {}

  raw(key: OptionKey, opts?: { flagOnly?: boolean }): Raw | undefined {
    const o: OptionSpec = OPTIONS[key];
    for (const name of [o.flag, camelCase(o.flag), key]) {
      const v = this.flags[name];
      if (v !== undefined) return { value: v, fromFlag: true };
    }
    if (opts?.flagOnly) return undefined;
    const names = [o.env, ...(o.envAliases ?? [])];
    for (let i = 0; i < names.length; i++) {
      const v = this.env[names[i]!];
      // An empty variable falls through to the next alias (ISTIO_META_CLUSTER_ID="" → CLUSTER_ID).
      if (v !== undefined && (v !== '' || i === names.length - 1)) return { value: v, fromFlag: false };
    }
    return undefined;
  }

  /** Given at all (an empty XDS_ADDRESS / CA_ADDRESS counts: it disables the source). */
  given(key: OptionKey): boolean {
    const r = this.raw(key);
    if (r === undefined) return false;
    return r.value !== '' || r.fromFlag || key === 'xdsAddress' || key === 'caAddress';
  }

  /** The value as text ('' kept); undefined when not given or not a single scalar. */
  text(key: OptionKey): string | undefined {
    const r = this.raw(key);
    if (r === undefined) return undefined;
    if (Array.isArray(r.value)) {
      this.fail(key, `is given more than once (${r.value.map((v) => JSON.stringify(v)).join(', ')})`);
      return undefined;
    }
    if (typeof r.value === 'string') return r.value;
    if (typeof r.value === 'number' || typeof r.value === 'boolean') return String(r.value);
    this.fail(key, `${JSON.stringify(r.value)} is not a single value`);
    return undefined;
  }

  bool(key: OptionKey, opts?: { flagOnly?: boolean }): boolean | undefined {
    const r = this.raw(key, opts);
    if (r === undefined) return undefined;
    if (typeof r.value === 'boolean') return r.value;
    const s = this.text(key);
    if (s === undefined) return undefined;
    if (s === '') return r.fromFlag ? true : undefined; // bare `--flag`; an empty variable = unset
    if (s === 'true') return true;
    if (s === 'false') return false;
    this.fail(key, `${JSON.stringify(s)} is not a boolean (use true or false)`);
    return undefined;
  }

  /**
   * A setting Istio's ztunnel reads by comparing the variable with one exact text (`== "true"`,
   * `== "json"`, `== "pqc"`) and treats every other value as off, silently. From the environment
   * the same holds here, with a warning naming the variable when the value is neither the "on"
   * text nor the usual "off" text. A flag (ztunnel-ts only) keeps the strict parse of its type.
   * Returns true (on), false (off) or undefined (not given).
   */
  istioExact(key: OptionKey, on: string, off: string, strict: () => boolean | undefined): boolean | undefined {
    const r = this.raw(key);
    if (r === undefined) return undefined;
    if (r.fromFlag) return strict();
    const s = this.text(key);
    if (s === undefined || s === '') return undefined;
    if (s === on) return true;
    if (s !== off) {
      const o: OptionSpec = OPTIONS[key];
      this.warnings.push(`${o.env}=${JSON.stringify(s)} is not ${JSON.stringify(on)}: treated as ${JSON.stringify(off)}, as Istio's ztunnel does (it compares the value with ${JSON.stringify(on)} exactly)`);
    }
    return false;
  }

  int(key: OptionKey): number | undefined {
    const s = this.typedText(key);
    if (s === undefined) return undefined;
    const o: OptionSpec = OPTIONS[key];
    if (!/^-?\d+$/.test(s)) {
      this.fail(key, `${JSON.stringify(s)} is not an integer`);
      return undefined;
    }
    const n = Number(s);
    if ((o.min !== undefined && n < o.min) || (o.max !== undefined && n > o.max)) {
      this.fail(key, `${JSON.stringify(s)} is out of range (${o.min ?? 0}..${o.max ?? Number.MAX_SAFE_INTEGER})`);
      return undefined;
    }
    return n;
  }

  duration(key: OptionKey): number | undefined {
    const s = this.typedText(key);
    if (s === undefined) return undefined;
    const d = parseDuration(s);
    if (!d.ok) {
      this.fail(key, `${JSON.stringify(s)} ${d.error}`);
      return undefined;
    }
    const o: OptionSpec = OPTIONS[key];
    if (o.minMs !== undefined && d.value < o.minMs) {
      this.fail(key, `${JSON.stringify(s)} is shorter than ${o.minMs >= 1000 ? `${o.minMs / 1000}s` : `${o.minMs}ms`}`);
      return undefined;
    }
    return d.value;
  }

  choice<T extends string>(key: OptionKey): T | undefined {
    const s = this.typedText(key);
    if (s === undefined) return undefined;
    const o: OptionSpec = OPTIONS[key];
    if (!o.choices?.includes(s)) {
      this.fail(key, `${JSON.stringify(s)} must be one of ${o.choices?.join(', ')}`);
      return undefined;
    }
    return s as T;
  }

  addr(key: OptionKey): BindAddr | undefined {
    const s = this.typedText(key);
    if (s === undefined) return undefined;
    const a = parseBindAddr(s);
    if (!a.ok) {
      this.fail(key, `${JSON.stringify(s)} ${a.error}`);
      return undefined;
    }
    return a.value;
  }

  /** CPU quantity in whole cores, rounded up: `2`, `1.5`, `500m`. */
  cpu(key: OptionKey): number | undefined {
    const s = this.typedText(key);
    if (s === undefined) return undefined;
    let cores: number | undefined;
    if (/^\d+(\.\d+)?$/.test(s)) cores = Math.ceil(Number(s));
    else if (/^\d+m$/.test(s)) cores = Math.ceil(Number(s.slice(0, -1)) / 1000);
    if (cores === undefined || cores < 1 || !Number.isSafeInteger(cores)) {
      this.fail(key, `${JSON.stringify(s)} is not a positive CPU quantity (e.g. 2, 1.5 or 500m)`);
      return undefined;
    }
    return cores;
  }

  fail(key: OptionKey, message: string): void {
    this.errors.push(`${optionLabel(key)}: ${message}`);
  }

  /** Text for non-string types; an empty value counts as unset. */
  private typedText(key: OptionKey): string | undefined {
    const s = this.text(key);
    return s === undefined || s.trim() === '' ? undefined : s.trim();
  }
}

function camelCase(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

// --- value parsers -----------------------------------------------------------------------------

/**
 * A listener bind address: `ip:port`, `[v6]:port` or `localhost:port` (→ 127.0.0.1, as the
 * loopback defaults). Port 0 asks the OS for an ephemeral port. Host names are refused so binding
 * never waits for DNS.
 */
export function parseBindAddr(s: string): Result<BindAddr, string> {
  const bad = err('is not a bind address (ip:port, [ipv6]:port or localhost:port)');
  let host: string;
  let portText: string;
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0 || s[end + 1] !== ':') return bad;
    host = s.slice(1, end);
    portText = s.slice(end + 2);
    if (isIP(host) !== 6) return bad;
  } else {
    const i = s.lastIndexOf(':');
    if (i <= 0) return bad;
    host = s.slice(0, i);
    portText = s.slice(i + 1);
    if (host === 'localhost') host = '127.0.0.1';
    if (isIP(host) !== 4) return bad;
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) return err('has a port outside 0..65535');
  return ok({ host: isIP(host) === 6 ? host.toLowerCase() : canonicalIp(host)!, port: Number(portText) });
}

/**
 * XDS_ADDRESS / CA_ADDRESS: "" disables (null); `https://` is added when there is no scheme
 * (istio/ztunnel validate_uri); anything that is then not a URL with a host is an error.
 */
function controlPlaneUri(key: 'xdsAddress' | 'caAddress', value: string, errors: string[], warnings: string[]): string | null {
  if (value === '') return null;
  const uri = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `https://${value}`;
  let host = '';
  try {
    host = new URL(uri).host;
  } catch {
    host = '';
  }
  if (host === '') {
    errors.push(`${optionLabel(key)}: ${JSON.stringify(value)} is not a valid URI`);
    return null;
  }
  const scheme = uri.slice(0, uri.indexOf(':')).toLowerCase();
  if (scheme !== 'https') {
    warnings.push(`${OPTIONS[key].env}=${JSON.stringify(value)}: only https is spoken to the control plane, as by Istio's ztunnel; every connection attempt fails with "unsupported scheme ${scheme}"`);
  }
  return uri;
}

/** RUST_LOG: `level` or `scope=level` directives separated by commas; null when valid. */
function checkLogFilter(filter: string): string | null {
  for (const part of filter.split(',')) {
    const d = part.trim();
    if (d === '') continue;
    const eq = d.lastIndexOf('=');
    const level = (eq >= 0 ? d.slice(eq + 1) : d).trim().toLowerCase();
    if (eq === 0 || !LOG_LEVELS.has(level)) {
      return `has an unknown level in "${d}" (use error, warn, info, debug, trace or off)`;
    }
  }
  return null;
}

/**
 * XDS_HEADER_<NAME> / CA_HEADER_<NAME> → gRPC metadata. As Rust ztunnel (tonic's metadata key),
 * the name is lower-cased and underscores are kept: XDS_HEADER_X_API_KEY → `x_api_key`. Names and
 * values must be valid ASCII metadata.
 */
function parseHeaders(env: Record<string, string | undefined>, prefix: string, errors: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, value] of sortedEnv(env)) {
    if (!name.startsWith(prefix)) continue;
    const key = name.slice(prefix.length).toLowerCase();
    if (!/^[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(key) || key.endsWith('-bin')) {
      errors.push(`${name}: ${JSON.stringify(key)} is not a valid ASCII gRPC metadata name`);
      continue;
    }
    if (!/^[\t\x20-\x7e]*$/.test(value)) {
      errors.push(`${name}: ${JSON.stringify(value)} is not a valid gRPC metadata value (visible ASCII only)`);
      continue;
    }
    out.set(key, value);
  }
  return out;
}

/**
 * Worker threads (spec/config.md §5): ZTUNNEL_WORKER_THREADS (integer, 0 = all cores, or NN% of
 * cores rounded up, ≥ 1); else ProxyConfig concurrency (0 = all cores); else the CPU resource
 * limit raised to the request; else max(ceil(cores × 0.25), request, 2). "Cores" is
 * ZTUNNEL_RESOURCE_CPU_LIMIT, else ZTUNNEL_CPU_LIMIT, else the logical cores.
 */
function resolveWorkerThreads(inp: Inputs, concurrency: number | undefined, cpuCount: number): number {
  const limit = inp.cpu('resourceCpuLimit');
  const request = inp.cpu('resourceCpuRequest');
  // The core count behind "all cores" and percentages: the pod's CPU resource limit when given,
  // else ZTUNNEL_CPU_LIMIT, else the logical cores (as Istio's config.rs counts them).
  const cores = limit ?? inp.int('cpuLimit') ?? Math.max(1, Math.floor(cpuCount));
  const explicit = inp.text('workerThreads')?.trim();
  if (explicit) {
    if (explicit.endsWith('%')) {
      const p = explicit.slice(0, -1);
      const pct = Number(p);
      if (/^\d+(\.\d+)?$/.test(p) && pct > 0 && pct <= 100) return Math.max(1, Math.ceil((cores * pct) / 100));
      inp.fail('workerThreads', `${JSON.stringify(explicit)} is not a percentage of cores in (0, 100]`);
    } else if (/^\d+$/.test(explicit) && Number(explicit) <= 65535) {
      const n = Number(explicit);
      return n === 0 ? cores : n;
    } else {
      inp.fail('workerThreads', `${JSON.stringify(explicit)} is not a thread count (an integer, 0 = all cores, or NN%)`);
    }
    return 1;
  }
  if (concurrency !== undefined) return concurrency === 0 ? cores : concurrency;
  if (limit !== undefined) return Math.max(limit, request ?? 0, 1);
  return Math.max(Math.ceil(cores * 0.25), request ?? 0, 2);
}

// --- ProxyConfig ---------------------------------------------------------------------------------

interface ProxyConfigValues {
  discoveryAddress?: string;
  proxyAdminPort?: number;
  statsPort?: number;
  concurrency?: number;
  proxyMetadata: Map<string, string>;
}

/**
 * Mesh config `defaultConfig` (./etc/istio/config/mesh, when readable) merged with PROXY_CONFIG on
 * top, field by field; proxyMetadata maps are merged and an `ISTIO_META_` key prefix is dropped.
 * Unknown ProxyConfig fields are ignored (Istio's ProxyConfig has many that ztunnel does not use).
 */
function loadProxyConfig(inp: Inputs, readFile: (p: string) => string | undefined): ProxyConfigValues {
  const merged: ProxyConfigValues = { proxyMetadata: new Map() };
  const meshText = readFile(MESH_CONFIG_PATH);
  if (meshText !== undefined) {
    const doc = parseYamlMapping(meshText, `mesh config ${MESH_CONFIG_PATH}`, inp.errors);
    const dc = doc?.['defaultConfig'];
    if (dc !== undefined && dc !== null) mergeProxyConfig(merged, dc, `mesh config ${MESH_CONFIG_PATH} defaultConfig`, inp.errors);
  }
  const pcText = inp.text('proxyConfig');
  if (pcText !== undefined && pcText.trim() !== '') {
    const doc = parseYamlMapping(pcText, optionLabel('proxyConfig'), inp.errors);
    if (doc) mergeProxyConfig(merged, doc, optionLabel('proxyConfig'), inp.errors);
  }
  return merged;
}

function parseYamlMapping(text: string, label: string, errors: string[]): Record<string, unknown> | undefined {
  let doc: unknown;
  try {
    doc = yamlLib().parse(text);
  } catch (e) {
    errors.push(`${label}: is not valid YAML (${String((e as Error).message).split('\n')[0]})`);
    return undefined;
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    errors.push(`${label}: is not a YAML mapping`);
    return undefined;
  }
  return doc as Record<string, unknown>;
}

function mergeProxyConfig(into: ProxyConfigValues, doc: unknown, label: string, errors: string[]): void {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    errors.push(`${label}: is not a YAML mapping`);
    return;
  }
  const d = doc as Record<string, unknown>;
  const intField = (name: string, max: number): number | undefined => {
    const v = d[name];
    if (v === undefined || v === null) return undefined;
    const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > max) {
      errors.push(`${label}: ${name}: ${JSON.stringify(v)} is not an integer in 0..${max}`);
      return undefined;
    }
    return n;
  };
  if (d['discoveryAddress'] !== undefined && d['discoveryAddress'] !== null) {
    if (typeof d['discoveryAddress'] === 'string') into.discoveryAddress = d['discoveryAddress'];
    else errors.push(`${label}: discoveryAddress: ${JSON.stringify(d['discoveryAddress'])} is not a string`);
  }
  into.proxyAdminPort = intField('proxyAdminPort', 65535) ?? into.proxyAdminPort;
  into.statsPort = intField('statsPort', 65535) ?? into.statsPort;
  into.concurrency = intField('concurrency', 65535) ?? into.concurrency;
  const md = d['proxyMetadata'];
  if (md === undefined || md === null) return;
  if (typeof md !== 'object' || Array.isArray(md)) {
    errors.push(`${label}: proxyMetadata: is not a map of strings`);
    return;
  }
  for (const [k, v] of Object.entries(md as Record<string, unknown>)) {
    if (typeof v !== 'string') {
      errors.push(`${label}: proxyMetadata.${k}: ${JSON.stringify(v)} is not a string`);
      continue;
    }
    into.proxyMetadata.set(k.startsWith(ISTIO_META) ? k.slice(ISTIO_META.length) : k, v);
  }
}

// --- helpers -------------------------------------------------------------------------------------

/** Defined env entries, sorted by name so maps and error lists come out in a stable order. */
function sortedEnv(env: Record<string, string | undefined>): [string, string][] {
  return Object.entries(env)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function defaultReadFile(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** A Map that cannot be changed once built (Object.freeze does not stop Map.set). */
class FrozenMap<K, V> extends Map<K, V> {
  #sealed = false;
  constructor(entries: Iterable<readonly [K, V]>) {
    super();
    for (const [k, v] of entries) super.set(k, v);
    this.#sealed = true;
    Object.freeze(this);
  }
  override set(key: K, value: V): this {
    if (this.#sealed) throw new TypeError('Config maps are read-only');
    return super.set(key, value);
  }
  override delete(_key: K): boolean {
    throw new TypeError('Config maps are read-only');
  }
  override clear(): void {
    throw new TypeError('Config maps are read-only');
  }
}

function deepFreeze<T>(value: T): T {
  if (value instanceof Map) {
    return new FrozenMap([...value].map(([k, v]) => [k, deepFreeze(v)] as const)) as T;
  }
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const k of Object.keys(value)) {
      (value as Record<string, unknown>)[k] = deepFreeze((value as Record<string, unknown>)[k]);
    }
    Object.freeze(value);
  }
  return value;
}
