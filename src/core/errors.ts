// The one catalogue of failures (docs/design.md §3). Each code fixes the HBONE status it answers with
// (null: the stream or socket can only be closed/reset), the response flag used in metrics and
// the access log (telemetry.md §3), and a message template. Code matches on `code`, never on text.
// docs/errors.md lists every code; errors.test.ts keeps the two equal.

export type ResponseFlag =
  | '-'
  | 'DENY'
  | 'CONNECT'
  | 'TLS_FAILURE'
  | 'H2_HANDSHAKE_FAILURE'
  | 'NETWORK_POLICY'
  | 'IDENTITY_ERROR'
  | 'CERT_REVOKED'
  | 'PORT_MISMATCH';

export interface ErrorSpec {
  /** HTTP status on the HBONE CONNECT response, or null when none can be sent. */
  readonly status: 400 | 401 | 503 | null;
  readonly flag: ResponseFlag;
  /** Short description used in docs/errors.md. */
  readonly summary: string;
  /**
   * SOCKS5 codes only: the byte answered to the client — the REP field of the reply (RFC 1928 §6),
   * or for SOCKS_AUTH the METHOD byte 0xFF of the method selection (§3).
   */
  readonly socks?: number;
}

export const ERRORS = {
  // --- inbound HBONE, phase (a): build context (hbone.md §4) -------------------------------
  BAD_METHOD: { status: 400, flag: 'CONNECT', summary: 'HBONE request method is not CONNECT' },
  BAD_AUTHORITY: { status: 400, flag: 'CONNECT', summary: 'CONNECT :authority is not a socket address or host:port' },
  IP_MISMATCH: { status: 400, flag: 'CONNECT', summary: 'CONNECT :authority IP differs from the IP the TCP connection was made to' },
  PORT_MISMATCH: { status: 400, flag: 'PORT_MISMATCH', summary: 'transparent mode: CONNECT port differs from the outer original-destination port' },
  UNKNOWN_DESTINATION: { status: 503, flag: 'CONNECT', summary: 'no local workload serves the CONNECT target' },
  UNKNOWN_SERVICE: { status: 503, flag: 'CONNECT', summary: 'no Service for a hostname :authority' },
  NO_PORT_MAPPING: { status: 503, flag: 'CONNECT', summary: 'the target Service has no mapping for the requested port' },
  ILLEGAL_PORT: { status: 503, flag: 'CONNECT', summary: 'the resolved upstream port is one of ztunnel\'s own ports' },
  // --- inbound, phase (b): authorize / connect upstream ----------------------------------------
  POLICY_DENIED: { status: 401, flag: 'DENY', summary: 'authorization policy rejected the connection' },
  POLICY_CHANGED: { status: 401, flag: 'DENY', summary: 'a policy change rejects a connection being set up (401) or live (closed)' },
  UPSTREAM_CONNECT: { status: 503, flag: 'CONNECT', summary: 'TCP connect to the upstream failed' },
  // --- outbound -------------------------------------------------------------------------------
  RECURSIVE_CALL: { status: null, flag: 'CONNECT', summary: 'attempted recursive call to ourselves (loopback destination on an illegal port)' },
  NO_HEALTHY_UPSTREAM: { status: null, flag: 'CONNECT', summary: 'the Service has no healthy endpoint for the port' },
  UNKNOWN_SOURCE: { status: null, flag: 'CONNECT', summary: 'failed to fetch information about local workload' },
  HBONE_STATUS: { status: null, flag: 'CONNECT', summary: 'the peer answered the CONNECT with a non-200 status' },
  POOL_TIMEOUT: { status: null, flag: 'NETWORK_POLICY', summary: 'connection timed out, maybe a NetworkPolicy is blocking HBONE port 15008' },
  TLS_HANDSHAKE: { status: null, flag: 'TLS_FAILURE', summary: 'TLS handshake failed' },
  PEER_IDENTITY: { status: null, flag: 'TLS_FAILURE', summary: 'peer certificate identity is not one of the expected identities' },
  H2_FAILURE: { status: null, flag: 'H2_HANDSHAKE_FAILURE', summary: 'HTTP/2 handshake or protocol error' },
  IDENTITY_UNAVAILABLE: { status: null, flag: 'IDENTITY_ERROR', summary: 'the workload certificate could not be obtained' },
  CERT_REVOKED: { status: null, flag: 'CERT_REVOKED', summary: 'peer certificate revoked by CRL' },
  DRAINING: { status: 503, flag: 'CONNECT', summary: 'the proxy is draining and takes no new connections' },
  // --- SOCKS5 ---------------------------------------------------------------------------------
  SOCKS_PROTOCOL: { status: null, flag: 'CONNECT', socks: 0x01, summary: 'malformed SOCKS5 handshake (version, length, timeout, early close)' },
  SOCKS_AUTH: { status: null, flag: 'CONNECT', socks: 0xff, summary: 'the SOCKS5 client offers no "no authentication" method' },
  SOCKS_COMMAND: { status: null, flag: 'CONNECT', socks: 0x07, summary: 'SOCKS5 command other than CONNECT' },
  SOCKS_ADDRESS_TYPE: { status: null, flag: 'CONNECT', socks: 0x08, summary: 'SOCKS5 address type other than IPv4, IPv6 or a domain name' },
  SOCKS_RESOLVE: { status: null, flag: 'CONNECT', socks: 0x04, summary: 'the SOCKS5 target hostname does not resolve (host unreachable)' },
  // --- config -------------------------------------------------------------------------------
  CONFIG_INVALID: { status: null, flag: 'CONNECT', summary: 'configuration (flags, environment or local file) is invalid' },
  // --- relay --------------------------------------------------------------------------------
  RELAY_RESET: { status: null, flag: 'CONNECT', summary: 'a side of the relay was reset' },
  // --- outbound routing (proxy/route.ts) -----------------------------------------------------
  UNKNOWN_WAYPOINT: { status: null, flag: 'CONNECT', summary: 'the waypoint named by a Service or workload is not in the state' },
  NO_VALID_DESTINATION: { status: null, flag: 'CONNECT', summary: 'the chosen workload has no IP usable for routing, or is on another network without a gateway or without a Service' },
  UNSUPPORTED_ROUTE: { status: null, flag: 'CONNECT', summary: 'the route needs a feature not supported yet (DNS-resolved workloads)' },
  // --- platform / in-pod capture (capture.md §2, §5, §6) -------------------------------------
  NATIVE_UNAVAILABLE: { status: null, flag: 'CONNECT', summary: 'the native socket addon is not built or cannot be loaded (shared mode needs it)' },
  MISSING_CAPABILITIES: { status: null, flag: 'CONNECT', summary: 'cannot call setns or set SO_MARK: make sure ztunnel has CAP_SYS_ADMIN (setns), CAP_NET_ADMIN (SO_MARK) and CAP_NET_RAW' },
  ZDS_PROTOCOL: { status: null, flag: 'CONNECT', summary: 'the istio-cni node agent broke the ZDS protocol' },
  INPOD_PROXY_START: { status: null, flag: 'CONNECT', summary: 'the listeners of an enrolled pod could not be started in its network namespace (NACK; retried every 5 s)' },
  // --- data-plane workers (docs/workers.md) ------------------------------------------------------
  WORKER_FAILED: { status: null, flag: 'CONNECT', summary: 'the data-plane worker thread holding the connection failed; its connections were reset and the worker replaced' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** A failure with a stable code. `cause` keeps the underlying system error (errno survives). */
export class ZtunnelError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ERRORS[code].summary, options);
    this.name = 'ZtunnelError';
    this.code = code;
  }
  get status(): 400 | 401 | 503 | null {
    return ERRORS[this.code].status;
  }
  get flag(): ResponseFlag {
    return ERRORS[this.code].flag;
  }
}

/**
 * The status an HBONE CONNECT is answered with for `e`. Codes without a status of their own
 * (failures below the CONNECT layer, e.g. a socket option the upstream dial could not set) answer
 * 503 like an upstream connect failure.
 */
export function hboneStatus(e: ZtunnelError): 400 | 401 | 503 {
  return e.status ?? ERRORS.UPSTREAM_CONNECT.status;
}

export function isZtunnelError(e: unknown): e is ZtunnelError {
  return e instanceof ZtunnelError;
}

/**
 * Linux errno texts (strerror) and numbers for the system errors a proxy meets, so a failed
 * socket call reads as Istio's ztunnel prints a Rust io::Error: `Connection refused (os error 111)`
 * rather than Node's `connect ECONNREFUSED 10.0.0.1:80`. Users grep logs for these texts.
 */
const ERRNO_TEXT: Readonly<Record<string, readonly [number, string]>> = {
  EPERM: [1, 'Operation not permitted'],
  ENOENT: [2, 'No such file or directory'],
  EACCES: [13, 'Permission denied'],
  EINVAL: [22, 'Invalid argument'],
  EMFILE: [24, 'Too many open files'],
  EPIPE: [32, 'Broken pipe'],
  EPROTO: [71, 'Protocol error'],
  EAFNOSUPPORT: [97, 'Address family not supported by protocol'],
  EADDRINUSE: [98, 'Address already in use'],
  EADDRNOTAVAIL: [99, 'Cannot assign requested address'],
  ENETDOWN: [100, 'Network is down'],
  ENETUNREACH: [101, 'Network is unreachable'],
  ECONNABORTED: [103, 'Software caused connection abort'],
  ECONNRESET: [104, 'Connection reset by peer'],
  ENOBUFS: [105, 'No buffer space available'],
  ENOTCONN: [107, 'Transport endpoint is not connected'],
  ETIMEDOUT: [110, 'Connection timed out'],
  ECONNREFUSED: [111, 'Connection refused'],
  EHOSTDOWN: [112, 'Host is down'],
  EHOSTUNREACH: [113, 'No route to host'],
};

/** `Connection refused (os error 111)` for a Node system error; undefined for anything else. */
export function osErrorText(e: unknown): string | undefined {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  const known = typeof code === 'string' ? ERRNO_TEXT[code] : undefined;
  return known ? `${known[1]} (os error ${known[0]})` : undefined;
}

/**
 * Wraps anything thrown into a ZtunnelError of the given code unless it already is one. A system
 * error failing an upstream connect reads as Istio's `connection failed: <io error>`.
 */
export function asZtunnelError(e: unknown, code: ErrorCode): ZtunnelError {
  if (e instanceof ZtunnelError) return e;
  const os = osErrorText(e);
  const msg = os !== undefined && code === 'UPSTREAM_CONNECT' ? `connection failed: ${os}` : e instanceof Error ? e.message : String(e);
  return new ZtunnelError(code, msg, { cause: e });
}

/** Result type for decoders and validators: bad input is a value, never a throw. */
export type Result<T, E = string> = { ok: true; value: T } | { ok: false; error: E };
export const ok = <T>(value: T): Result<T, never> => ({ ok: true, value });
export const err = <E>(error: E): Result<never, E> => ({ ok: false, error });
