// IstioCaClient: workload certificates from istiod's IstioCertificateService (spec/xds.md §7).
// Each fetch makes a fresh ECDSA P-256 key and a CSR (empty subject, one critical URI SAN,
// SHA-256), calls CreateCertificate over TLS with ztunnel's own token, splits the returned chain
// into leaf / intermediates / roots and checks the leaf really is the requested identity.
//
// The control-plane transport helpers below (token, root CA, target, credentials, metadata) are
// shared with the xDS client (src/xds/ads-client.ts), which may import identity/ (docs/design.md §2).
import { createHash, type webcrypto } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { fileURLToPath } from 'node:url';
import {
  connectivityState, credentials, loadPackageDefinition, Metadata, status as GrpcStatus, type ChannelCredentials, type Client,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { asZtunnelError, ZtunnelError } from '../core/errors.js';
import { formatIdentity, identityEquals, parseIdentity, type Identity } from '../core/spiffe.js';
import type { Config } from '../config/config.js';
import type { WorkloadCertificate } from '../tls/certificate.js';
import type { Logger } from '../telemetry/logger.js';
import type { CaClient } from './ca-client.js';
import { loadX509 } from '../core/x509.js';

export type IstioCaConfig = Pick<
  Config,
  'caAddress' | 'caRootCa' | 'altCaHostname' | 'authToken' | 'clusterId' | 'caHeaders' | 'secretTtlMs' | 'proxyMode'
>;

export interface IstioCaClientOptions {
  readonly config: IstioCaConfig;
  readonly logger?: Logger;
  /** Deadline of one CreateCertificate call (default 10 s). */
  readonly callTimeoutMs?: number;
}

// ---------------------------------------------------------------------------------------------
// Control-plane transport helpers (xds.md §1, §7; config.md §5 AUTH_TOKEN, XDS_ROOT_CA/CA_ROOT_CA)

/**
 * The bearer token: AUTH_TOKEN is a file path (read now, so a rotated projected token is picked
 * up on every call / reconnect) or a literal token. A missing file is an error rather than being
 * sent as a token (JWTs never contain '/').
 */
export function readAuthToken(source: string | undefined): string | undefined {
  if (!source) return undefined;
  if (existsSync(source)) return readFileSync(source, 'utf8').trim() || undefined;
  if (source.includes('/')) throw new Error(`token file ${source} does not exist`);
  return source;
}

/** Root CA setting: an existing file path, `SYSTEM` (null = the OS/Node roots), or literal PEM. */
export function readRootCa(value: string): Buffer | null {
  if (value === 'SYSTEM') return null;
  if (existsSync(value)) return readFileSync(value);
  if (value.includes('-----BEGIN')) return Buffer.from(value);
  throw new Error(`root CA ${value}: not an existing file, SYSTEM, or PEM`);
}

/**
 * `https://host:port` (scheme optional) → grpc target `host:port`, plus the host for TLS.
 * Istio's ztunnel talks to istiod over TLS only: its connector refuses any other scheme on every
 * attempt with `unsupported scheme <scheme>` (so `http://istiod:15010` never connects, in plaintext
 * or otherwise). The same error here, thrown per attempt so the caller's retry and log apply.
 */
export function controlPlaneTarget(address: string): { target: string; host: string } {
  const url = new URL(address.includes('://') ? address : `https://${address}`);
  if (url.protocol !== 'https:') throw new Error(`unsupported scheme ${url.protocol.slice(0, -1)}`);
  const port = url.port || '443';
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return { target: `${url.hostname}:${port}`, host };
}

/**
 * TLS credentials verifying the server against `rootCa`; the certificate must match the host of
 * the address, or `altHostname` when set (ALT_XDS_HOSTNAME / ALT_CA_HOSTNAME). No client cert.
 */
export function controlPlaneCredentials(rootCa: Buffer | null, altHostname?: string): ChannelCredentials {
  return credentials.createSsl(rootCa, null, null, {
    checkServerIdentity: (host: string, cert: PeerCertificate) => {
      const e = checkServerIdentity(host, cert);
      if (e && altHostname) return checkServerIdentity(altHostname, cert);
      return e;
    },
  });
}

/** `authorization: Bearer <token>`, `clusterid`, and the extra XDS_/CA_HEADER_* entries. */
export function controlPlaneMetadata(
  token: string | undefined,
  clusterId: string,
  headers: ReadonlyMap<string, string>,
  logger?: Logger,
): Metadata {
  const md = new Metadata();
  if (token) md.set('authorization', `Bearer ${token}`);
  md.set('clusterid', clusterId);
  for (const [name, value] of headers) {
    try {
      md.set(name.toLowerCase(), value);
    } catch (e) {
      logger?.warn({ header: name, err: (e as Error).message }, 'skipping invalid gRPC header');
    }
  }
  return md;
}

/** Channel options both control-plane clients use (xds.md §1: keepalive 30 s / 10 s). */
/**
 * HTTP/2 keepalive of the xDS and CA channels, within what a grpc-go server (istiod) enforces by
 * default: no ping more often than every 5 minutes (`MinTime`), none without an active call
 * (`PermitWithoutStream: false`) — otherwise the server answers with a `too_many_pings` GOAWAY.
 * istiod itself allows a ping every 15 s while a stream is open; Istio's ztunnel pings after 30 s
 * without received data, only while a call is open. A dead peer is still noticed by TCP keepalive
 * and by the xDS/CA deadlines.
 */
export const CONTROL_PLANE_CHANNEL_OPTIONS = {
  'grpc.keepalive_time_ms': 300_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 0,
} as const;

/** Connect timeout of the xDS and CA channels (TCP + TLS), as Istio's ztunnel's 5 s. */
export const CONTROL_PLANE_CONNECT_TIMEOUT_MS = 5_000;

/**
 * Resolves once the channel is connected; rejects when the connection attempt fails (refused,
 * TLS error: at once, as a failed connect does in Istio's ztunnel; `code` UNAVAILABLE) or after
 * `timeoutMs` (`code` DEADLINE_EXCEEDED).
 */
export function waitForChannelReady(client: Pick<Client, 'getChannel'>, timeoutMs: number): Promise<void> {
  const channel = client.getChannel();
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const check = (): void => {
      const state = channel.getConnectivityState(true);
      if (state === connectivityState.READY) return resolve();
      if (state === connectivityState.TRANSIENT_FAILURE || state === connectivityState.SHUTDOWN) {
        return reject(Object.assign(new Error('connection failed'), { code: GrpcStatus.UNAVAILABLE }));
      }
      channel.watchConnectivityState(state, deadline, (e) =>
        e ? reject(Object.assign(new Error(`no connection within ${timeoutMs / 1000} s`), { code: GrpcStatus.DEADLINE_EXCEEDED })) : check());
    };
    check();
  });
}

/** Splits concatenated PEM text into one PEM string per certificate. */
export function splitPemCertificates(text: string): string[] {
  return (text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map((p) => p + '\n');
}

// ---------------------------------------------------------------------------------------------

const CREATE_CERTIFICATE_TIMEOUT_MS = 10_000;
const EC_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/**
 * A fresh key and its CSR per xds.md §7: ECDSA P-256, ecdsa-with-SHA256, empty subject, one
 * critical URI SAN (in the PKCS#10 extensionRequest attribute).
 */
export async function createCsr(uri: string): Promise<{ csrPem: string; keyPem: string; spki: Buffer }> {
  const { x509, crypto } = await loadX509();
  const keys = (await crypto.subtle.generateKey(EC_ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: EC_ALGORITHM,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: uri }], true)],
  }, crypto);
  return {
    csrPem: csr.toString('pem'),
    keyPem: x509.PemConverter.encode(await crypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'),
    spki: Buffer.from(await crypto.subtle.exportKey('spki', keys.publicKey)),
  };
}

interface CreateCertificateResponse {
  cert_chain?: string[];
}

interface CaServiceClient extends Client {
  CreateCertificate(
    req: object,
    md: Metadata,
    opts: { deadline: number },
    cb: (err: ServiceError | null, res?: CreateCertificateResponse) => void,
  ): void;
}

function findProtoDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, 'proto');
    if (existsSync(path.join(candidate, 'citadel.proto'))) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error('proto/citadel.proto not found');
}

type CaClientCtor = new (target: string, creds: ChannelCredentials, options: object) => CaServiceClient;
let caCtor: CaClientCtor | undefined;

function caServiceCtor(): CaClientCtor {
  if (caCtor) return caCtor;
  const dir = findProtoDir();
  const def = loadSync(path.join(dir, 'citadel.proto'), {
    keepCase: true, longs: String, enums: String, defaults: false, oneofs: true, includeDirs: [dir],
  });
  const pkg = loadPackageDefinition(def) as unknown as {
    istio: { v1: { auth: { IstioCertificateService: CaClientCtor } } };
  };
  caCtor = pkg.istio.v1.auth.IstioCertificateService;
  return caCtor;
}

export class IstioCaClient implements CaClient {
  readonly #config: IstioCaConfig;
  readonly #logger: Logger | undefined;
  readonly #callTimeoutMs: number;
  #channel: { rootKey: string; client: CaServiceClient } | undefined;

  constructor(opts: IstioCaClientOptions) {
    this.#config = opts.config;
    this.#logger = opts.logger;
    this.#callTimeoutMs = opts.callTimeoutMs ?? CREATE_CERTIFICATE_TIMEOUT_MS;
  }

  async fetchCertificate(id: Identity): Promise<WorkloadCertificate> {
    try {
      return await this.#fetch(id);
    } catch (e) {
      const ze = asZtunnelError(e, 'IDENTITY_UNAVAILABLE');
      this.#logger?.warn({ identity: formatIdentity(id), err: ze.message }, 'certificate fetch failed');
      throw ze;
    }
  }

  /** Closes the gRPC channel; a later fetch opens a new one. */
  close(): void {
    this.#channel?.client.close();
    this.#channel = undefined;
  }

  async #fetch(id: Identity): Promise<WorkloadCertificate> {
    const cfg = this.#config;
    if (!cfg.caAddress) throw new ZtunnelError('IDENTITY_UNAVAILABLE', 'CA_ADDRESS is not set');
    const uri = formatIdentity(id);
    const { csrPem, keyPem, spki } = await createCsr(uri);

    const request: Record<string, unknown> = {
      csr: csrPem,
      validity_duration: String(Math.max(1, Math.round(cfg.secretTtlMs / 1000))),
    };
    // Shared mode asks istiod to impersonate the workload (ztunnel's own token authenticates).
    if (cfg.proxyMode === 'shared') {
      request['metadata'] = { fields: { ImpersonatedIdentity: { stringValue: uri } } };
    }

    const client = this.#client();
    const md = controlPlaneMetadata(readAuthToken(cfg.authToken), cfg.clusterId, cfg.caHeaders, this.#logger);
    try {
      await waitForChannelReady(client, Math.min(CONTROL_PLANE_CONNECT_TIMEOUT_MS, this.#callTimeoutMs));
    } catch (e) {
      if (this.#channel?.client === client) this.close();
      throw new ZtunnelError('IDENTITY_UNAVAILABLE', `CreateCertificate failed: ${(e as Error).message}`, { cause: e });
    }
    const res = await new Promise<CreateCertificateResponse>((resolve, reject) => {
      client.CreateCertificate(request, md, { deadline: Date.now() + this.#callTimeoutMs }, (e, r) => {
        if (!e) return resolve(r ?? {});
        // A channel that could not connect sits in grpc-js's own reconnect backoff (seconds);
        // drop it so the caller's next attempt (SecretManager backoff) dials afresh.
        if (e.code === GrpcStatus.UNAVAILABLE && this.#channel?.client === client) this.close();
        reject(new ZtunnelError('IDENTITY_UNAVAILABLE', `CreateCertificate failed: ${e.message}`, { cause: e }));
      });
    });

    const chain = (res.cert_chain ?? []).filter((c) => typeof c === 'string');
    const leafBlocks = splitPemCertificates(chain[0] ?? '');
    const leafPem = leafBlocks[0];
    if (!leafPem) throw new ZtunnelError('IDENTITY_UNAVAILABLE', `empty certificate chain for ${uri}`);
    // [0] leaf, middle intermediates, last entry the root(s) (possibly several concatenated).
    const intermediates = [...leafBlocks.slice(1), ...chain.slice(1, -1).flatMap(splitPemCertificates)];
    const rootsPem = chain.length > 1 ? splitPemCertificates(chain[chain.length - 1]!) : [];

    const { x509 } = await loadX509();
    let leaf: InstanceType<typeof x509.X509Certificate>;
    let leafUris: string[];
    try {
      leaf = new x509.X509Certificate(leafPem);
      const san = leaf.getExtension(x509.SubjectAlternativeNameExtension);
      leafUris = (san?.names.items ?? []).filter((n) => n.type === 'url').map((n) => n.value);
    } catch (e) {
      throw new ZtunnelError('IDENTITY_UNAVAILABLE', `CA returned an unreadable certificate for ${uri}: ${(e as Error).message}`, { cause: e });
    }
    const leafId = leafUris.map(parseIdentity).find((x): x is Identity => x !== null);
    if (!leafId || !identityEquals(leafId, id)) {
      throw new ZtunnelError(
        'IDENTITY_UNAVAILABLE',
        `CA returned a certificate for ${leafUris.join(',') || 'no URI SAN'}, expected ${uri}`,
      );
    }
    if (!Buffer.from(leaf.publicKey.rawData).equals(spki)) {
      throw new ZtunnelError('IDENTITY_UNAVAILABLE', `CA returned a certificate for another key (${uri})`);
    }

    return {
      identity: id,
      chainPem: [leafPem, ...intermediates],
      keyPem,
      rootsPem,
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
      serialNumber: leaf.serialNumber,
    };
  }

  /**
   * The channel, rebuilt when CA_ROOT_CA's content changed since it was made: the root file is
   * re-read on every call, which follows ConfigMap symlink swaps that fs.watch would miss.
   */
  #client(): CaServiceClient {
    const cfg = this.#config;
    const root = readRootCa(cfg.caRootCa);
    const rootKey = root ? createHash('sha256').update(root).digest('hex') : 'SYSTEM';
    if (this.#channel && this.#channel.rootKey === rootKey) return this.#channel.client;
    if (this.#channel) {
      this.#logger?.info('CA root certificate changed; rebuilding the CA channel');
      this.#channel.client.close();
    }
    const { target } = controlPlaneTarget(cfg.caAddress!);
    const Ctor = caServiceCtor();
    const client = new Ctor(target, controlPlaneCredentials(root, cfg.altCaHostname), CONTROL_PLANE_CHANNEL_OPTIONS);
    this.#channel = { rootKey, client };
    return client;
  }
}
