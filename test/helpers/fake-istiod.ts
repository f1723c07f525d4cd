// A stand-in istiod for tests: a real grpc-js server on 127.0.0.1 with TLS from a test root,
// speaking delta ADS (envoy.service.discovery.v3.AggregatedDiscoveryService) and the Istio CA
// (istio.v1.auth.IstioCertificateService) with the .proto files in proto/, loaded here through
// @grpc/proto-loader (the client side uses protobufjs directly, so the two codecs cross-check).
//
// Tests push/update/remove resources at any time; every request is recorded (ACK/NACK, nonces,
// initial_resource_versions, node, metadata headers); certificates are issued from the test root
// (honouring ImpersonatedIdentity and validity_duration); CA calls can be made to fail; the server
// can be stopped and restarted on the same port.
import { webcrypto } from 'node:crypto';
import path from 'node:path';
import {
  Server, ServerCredentials, status as GrpcStatus, loadPackageDefinition,
  type Metadata, type ServerDuplexStream, type ServerUnaryCall, type ServiceDefinition,
  type sendUnaryData, type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { loadX509, type X509Module } from './x509.js';
import {
  ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL, encodeMessage, loadXdsProto, protoDir,
} from '../../src/xds/xds-proto.js';

type KeyPair = webcrypto.CryptoKeyPair;

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface TestCa {
  readonly certPem: string;
  readonly keys: KeyPair;
  readonly cert: InstanceType<X509Module['X509Certificate']>;
}

/** A self-signed ECDSA P-256 CA (or one signed by `issuer`, for intermediates). */
export async function mintCa(name: string, issuer?: TestCa): Promise<TestCa> {
  const { x509 } = await loadX509();
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as KeyPair;
  const now = Date.now();
  const exts = [
    new x509.BasicConstraintsExtension(true, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  const cert = issuer
    ? await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(), subject: `CN=${name}`, issuer: issuer.cert.subject,
      notBefore: new Date(now - 60_000), notAfter: new Date(now + 86_400_000),
      publicKey: keys.publicKey, signingKey: issuer.keys.privateKey, signingAlgorithm: EC, extensions: exts,
    })
    : await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(), name: `CN=${name}`,
      notBefore: new Date(now - 60_000), notAfter: new Date(now + 86_400_000),
      keys, signingAlgorithm: EC, extensions: exts,
    });
  return { certPem: cert.toString('pem') + '\n', keys, cert };
}

function randomSerial(): string {
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f; // positive
  return Buffer.from(b).toString('hex');
}

async function pkcs8Pem(key: webcrypto.CryptoKey): Promise<string> {
  const { x509 } = await loadX509();
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

export interface RecordedRequest {
  /** 1-based id of the ADS stream (a reconnect opens a new one). */
  readonly stream: number;
  readonly typeUrl: string;
  /** response_nonce: '' for subscription requests. */
  readonly nonce: string;
  /** error_detail when this is a NACK. */
  readonly errorDetail?: { readonly code: number; readonly message: string };
  readonly subscribe: readonly string[];
  readonly unsubscribe: readonly string[];
  readonly initialResourceVersions: Readonly<Record<string, string>>;
  readonly node?: { readonly id: string; readonly metadata: Readonly<Record<string, unknown>> };
  /** Call metadata of the stream (lower-case names). */
  readonly headers: Readonly<Record<string, string>>;
}

export interface RecordedResponse {
  readonly stream: number;
  readonly typeUrl: string;
  readonly nonce: string;
  readonly names: readonly string[];
  readonly removed: readonly string[];
}

export interface RecordedCaRequest {
  readonly csrPem: string;
  readonly validitySeconds: number;
  readonly metadata?: Readonly<Record<string, unknown>>;
  readonly headers: Readonly<Record<string, string>>;
}

export interface CaResponderContext {
  readonly request: RecordedCaRequest;
  /** The identity the fake would issue for. */
  readonly identity: string;
  /** Issues a chain for any identity with the CSR's key: [leaf, (intermediate), roots]. */
  issue(identity: string): Promise<string[]>;
}

export interface FakeIstiodOptions {
  /** Port to bind on 127.0.0.1 (default: ephemeral). */
  readonly port?: number;
  /** Sign leaves with an intermediate (chain = [leaf, intermediate, roots]). */
  readonly intermediate?: boolean;
  /** Extra root PEMs appended to the last chain entry (several concatenated roots). */
  readonly extraRootsPem?: readonly string[];
  /** SANs of istiod's serving certificate (default: istiod.istio-system.svc, localhost, 127.0.0.1). */
  readonly serverSans?: readonly { readonly type: 'dns' | 'ip'; readonly value: string }[];
  /** Serve plaintext gRPC (as istiod's 15010) instead of TLS; `address` is then `http://`. */
  readonly plaintext?: boolean;
}

interface StoredResource {
  readonly name: string;
  readonly version: string;
  readonly value: Uint8Array;
}

interface Subscription {
  wildcard: boolean;
  readonly names: Set<string>;
}

interface StreamState {
  readonly id: number;
  readonly call: ServerDuplexStream<Record<string, unknown>, Record<string, unknown>>;
  readonly headers: Record<string, string>;
  readonly subs: Map<string, Subscription>;
}

interface Waiter<T> {
  readonly pred: (x: T) => boolean;
  readonly resolve: (x: T) => void;
}

const LOADER_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true } as const;

export class FakeIstiod {
  readonly root: TestCa;
  readonly rootPem: string;
  readonly requests: RecordedRequest[] = [];
  readonly responses: RecordedResponse[] = [];
  readonly caRequests: RecordedCaRequest[] = [];
  /** When set, CreateCertificate fails with this status. */
  caFailure: { code: GrpcStatus; details: string } | undefined;
  /** When set, decides the cert_chain returned (e.g. a wrong identity). */
  caResponder: ((ctx: CaResponderContext) => Promise<string[]> | string[]) | undefined;

  #port: number;
  readonly #plaintext: boolean;
  #server: Server | undefined;
  readonly #serverKeyPem: string;
  readonly #serverCertPem: string;
  readonly #intermediate: TestCa | undefined;
  readonly #extraRootsPem: readonly string[];
  readonly #store = new Map<string, Map<string, StoredResource>>([
    [ADDRESS_TYPE_URL, new Map()],
    [AUTHORIZATION_TYPE_URL, new Map()],
  ]);
  readonly #streams = new Set<StreamState>();
  #streamCount = 0;
  #nonceCount = 0;
  #versionCount = 0;
  #batching: Map<string, { upserts: Set<string>; removes: Set<string> }> | undefined;
  readonly #reqWaiters: Waiter<RecordedRequest>[] = [];
  readonly #caWaiters: Waiter<RecordedCaRequest>[] = [];

  private constructor(
    root: TestCa, serverKeyPem: string, serverCertPem: string, intermediate: TestCa | undefined,
    opts: FakeIstiodOptions,
  ) {
    this.root = root;
    this.rootPem = root.certPem;
    this.#serverKeyPem = serverKeyPem;
    this.#serverCertPem = serverCertPem;
    this.#intermediate = intermediate;
    this.#extraRootsPem = opts.extraRootsPem ?? [];
    this.#port = opts.port ?? 0;
    this.#plaintext = opts.plaintext ?? false;
  }

  static async start(opts: FakeIstiodOptions = {}): Promise<FakeIstiod> {
    const { x509 } = await loadX509();
    const root = await mintCa('fake-istiod test root');
    const intermediate = opts.intermediate ? await mintCa('fake-istiod intermediate', root) : undefined;
    // istiod's serving certificate: the Service DNS name plus 127.0.0.1 so tests can dial the IP.
    const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as KeyPair;
    const now = Date.now();
    const serverCert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(), subject: 'CN=istiod', issuer: root.cert.subject,
      notBefore: new Date(now - 60_000), notAfter: new Date(now + 86_400_000),
      publicKey: keys.publicKey, signingKey: root.keys.privateKey, signingAlgorithm: EC,
      extensions: [
        new x509.SubjectAlternativeNameExtension(opts.serverSans?.map((n) => ({ ...n })) ?? [
          { type: 'dns', value: 'istiod.istio-system.svc' },
          { type: 'dns', value: 'localhost' },
          { type: 'ip', value: '127.0.0.1' },
        ]),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      ],
    });
    const fake = new FakeIstiod(root, await pkcs8Pem(keys.privateKey), serverCert.toString('pem') + '\n', intermediate, opts);
    await fake.#listen();
    return fake;
  }

  get port(): number {
    return this.#port;
  }

  /** `https://127.0.0.1:<port>`, for XDS_ADDRESS / CA_ADDRESS. */
  get address(): string {
    return `${this.#plaintext ? 'http' : 'https'}://127.0.0.1:${this.#port}`;
  }

  /** Number of ADS streams currently open. */
  get openStreams(): number {
    return this.#streams.size;
  }

  // ---- resources ------------------------------------------------------------------------------

  /** Upserts a Workload (istio.workload.Workload as a snake_case object); name = uid. */
  setWorkload(w: Record<string, unknown>, version?: string): void {
    const proto = loadXdsProto();
    this.setRaw(ADDRESS_TYPE_URL, String(w['uid'] ?? ''), encodeMessage(proto.address, { workload: w }), version);
  }

  /** Upserts a Service; name = `<namespace>/<hostname>`. */
  setService(s: Record<string, unknown>, version?: string): void {
    const proto = loadXdsProto();
    const name = `${String(s['namespace'] ?? '')}/${String(s['hostname'] ?? '')}`;
    this.setRaw(ADDRESS_TYPE_URL, name, encodeMessage(proto.address, { service: s }), version);
  }

  /** Upserts an Authorization; name = `<namespace>/<name>`. */
  setAuthorization(a: Record<string, unknown>, version?: string): void {
    const proto = loadXdsProto();
    const name = `${String(a['namespace'] ?? '')}/${String(a['name'] ?? '')}`;
    this.setRaw(AUTHORIZATION_TYPE_URL, name, encodeMessage(proto.authorization, a), version);
  }

  /** Upserts a resource with arbitrary Any.value bytes (e.g. malformed ones). */
  setRaw(typeUrl: string, name: string, value: Uint8Array, version?: string): void {
    const v = version ?? `v${++this.#versionCount}`;
    this.#typeStore(typeUrl).set(name, { name, version: v, value });
    this.#changed(typeUrl, name, false);
  }

  remove(typeUrl: string, name: string): void {
    this.#typeStore(typeUrl).delete(name);
    this.#changed(typeUrl, name, true);
  }

  /** Runs `fn` and pushes all its changes as one response per type. */
  batch(fn: () => void): void {
    this.#batching = new Map();
    try {
      fn();
    } finally {
      const pending = this.#batching;
      this.#batching = undefined;
      for (const [typeUrl, ch] of pending) this.#pushChanges(typeUrl, ch.upserts, ch.removes);
    }
  }

  // ---- waiting ------------------------------------------------------------------------------

  /** Resolves with the first recorded request (past or future) matching `pred`. */
  waitForRequest(pred: (r: RecordedRequest) => boolean, timeoutMs = 10_000): Promise<RecordedRequest> {
    return waitFor(this.requests, this.#reqWaiters, pred, timeoutMs, 'ADS request');
  }

  waitForCaRequest(pred: (r: RecordedCaRequest) => boolean = () => true, timeoutMs = 10_000): Promise<RecordedCaRequest> {
    return waitFor(this.caRequests, this.#caWaiters, pred, timeoutMs, 'CA request');
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  /** Ends every open ADS stream with `code` (default UNAVAILABLE) — clients reconnect. */
  endStreams(code: GrpcStatus = GrpcStatus.UNAVAILABLE, details = 'fake-istiod ended the stream'): void {
    for (const s of [...this.#streams]) {
      this.#streams.delete(s);
      // grpc-js turns an 'error' event on a server stream into the trailing status.
      if (code === GrpcStatus.OK) s.call.end();
      else s.call.emit('error', Object.assign(new Error(details), { code, details }));
    }
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    this.#streams.clear();
    if (server) server.forceShutdown();
  }

  /** Starts again on the same port (resources kept). */
  async restart(): Promise<void> {
    await this.stop();
    await this.#listen();
  }

  // ---- internals ----------------------------------------------------------------------------

  #typeStore(typeUrl: string): Map<string, StoredResource> {
    let m = this.#store.get(typeUrl);
    if (!m) this.#store.set(typeUrl, (m = new Map()));
    return m;
  }

  async #listen(): Promise<void> {
    const dir = protoDir();
    const adsDef = loadSync(path.join(dir, 'envoy/service/discovery/v3/discovery.proto'), { ...LOADER_OPTIONS, includeDirs: [dir] });
    const caDef = loadSync(path.join(dir, 'citadel.proto'), { ...LOADER_OPTIONS, includeDirs: [dir] });
    const ads = (loadPackageDefinition(adsDef) as unknown as {
      envoy: { service: { discovery: { v3: { AggregatedDiscoveryService: { service: ServiceDefinition } } } } };
    }).envoy.service.discovery.v3.AggregatedDiscoveryService.service;
    const ca = (loadPackageDefinition(caDef) as unknown as {
      istio: { v1: { auth: { IstioCertificateService: { service: ServiceDefinition } } } };
    }).istio.v1.auth.IstioCertificateService.service;

    const server = new Server();
    server.addService(ads, {
      DeltaAggregatedResources: (call: ServerDuplexStream<Record<string, unknown>, Record<string, unknown>>) => this.#onStream(call),
    } as UntypedServiceImplementation);
    server.addService(ca, {
      CreateCertificate: (call: ServerUnaryCall<Record<string, unknown>, unknown>, cb: sendUnaryData<unknown>) => {
        this.#onCreateCertificate(call, cb).catch((e: unknown) => cb({ code: GrpcStatus.INTERNAL, details: String(e) }));
      },
    } as UntypedServiceImplementation);
    const creds = this.#plaintext ? ServerCredentials.createInsecure() : ServerCredentials.createSsl(null, [
      { private_key: Buffer.from(this.#serverKeyPem), cert_chain: Buffer.from(this.#serverCertPem) },
    ], false);
    this.#port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`127.0.0.1:${this.#port}`, creds, (e, port) => (e ? reject(e) : resolve(port)));
    });
    this.#server = server;
  }

  #onStream(call: ServerDuplexStream<Record<string, unknown>, Record<string, unknown>>): void {
    const st: StreamState = { id: ++this.#streamCount, call, headers: headersOf(call.metadata), subs: new Map() };
    this.#streams.add(st);
    call.on('data', (req: Record<string, unknown>) => this.#onRequest(st, req));
    call.on('end', () => {
      this.#streams.delete(st);
      call.end();
    });
    call.on('error', () => this.#streams.delete(st));
    call.on('cancelled', () => this.#streams.delete(st));
  }

  #onRequest(st: StreamState, req: Record<string, unknown>): void {
    const typeUrl = String(req['type_url'] ?? '');
    const node = req['node'] as { id?: string; metadata?: unknown } | null | undefined;
    const errorDetail = req['error_detail'] as { code?: number; message?: string } | null | undefined;
    const rec: RecordedRequest = {
      stream: st.id,
      typeUrl,
      nonce: String(req['response_nonce'] ?? ''),
      ...(errorDetail ? { errorDetail: { code: errorDetail.code ?? 0, message: errorDetail.message ?? '' } } : {}),
      subscribe: (req['resource_names_subscribe'] as string[] | undefined) ?? [],
      unsubscribe: (req['resource_names_unsubscribe'] as string[] | undefined) ?? [],
      initialResourceVersions: { ...((req['initial_resource_versions'] as Record<string, string> | undefined) ?? {}) },
      ...(node ? { node: { id: node.id ?? '', metadata: structToJson(node.metadata) } } : {}),
      headers: st.headers,
    };
    this.requests.push(rec);
    notify(this.#reqWaiters, rec);
    if (rec.nonce !== '') return; // ACK or NACK: recorded only

    const store = this.#typeStore(typeUrl);
    let sub = st.subs.get(typeUrl);
    if (!sub) {
      // First request of this type on this stream: wildcard unless "*" was also unsubscribed.
      const explicit = rec.subscribe.filter((n) => n !== '*');
      const wildcard = (rec.subscribe.length === 0 || rec.subscribe.includes('*')) && !rec.unsubscribe.includes('*');
      sub = { wildcard, names: new Set(explicit) };
      st.subs.set(typeUrl, sub);
      const known = rec.initialResourceVersions;
      const send = [...store.values()].filter(
        (r) => (sub!.wildcard || sub!.names.has(r.name)) && known[r.name] !== r.version,
      );
      const removed = Object.keys(known).filter((n) => !store.has(n));
      // istiod always answers the initial request, even with nothing to send.
      this.#send(st, typeUrl, send, removed);
      return;
    }
    for (const n of rec.unsubscribe) sub.names.delete(n);
    const added = rec.subscribe.filter((n) => n !== '*' && !sub!.names.has(n));
    for (const n of added) sub.names.add(n);
    if (added.length > 0) {
      this.#send(st, typeUrl, added.map((n) => store.get(n)).filter((r): r is StoredResource => !!r),
        added.filter((n) => !store.has(n)));
    }
  }

  #changed(typeUrl: string, name: string, removed: boolean): void {
    if (this.#batching) {
      let ch = this.#batching.get(typeUrl);
      if (!ch) this.#batching.set(typeUrl, (ch = { upserts: new Set(), removes: new Set() }));
      (removed ? ch.removes : ch.upserts).add(name);
      (removed ? ch.upserts : ch.removes).delete(name);
      return;
    }
    this.#pushChanges(typeUrl, removed ? new Set() : new Set([name]), removed ? new Set([name]) : new Set());
  }

  #pushChanges(typeUrl: string, upserts: Set<string>, removes: Set<string>): void {
    const store = this.#typeStore(typeUrl);
    for (const st of this.#streams) {
      const sub = st.subs.get(typeUrl);
      if (!sub) continue;
      const wants = (n: string) => sub.wildcard || sub.names.has(n);
      const send = [...upserts].filter(wants).map((n) => store.get(n)).filter((r): r is StoredResource => !!r);
      const rm = [...removes].filter(wants);
      if (send.length || rm.length) this.#send(st, typeUrl, send, rm);
    }
  }

  #send(st: StreamState, typeUrl: string, resources: readonly StoredResource[], removed: readonly string[]): void {
    const nonce = `n${++this.#nonceCount}`;
    this.responses.push({ stream: st.id, typeUrl, nonce, names: resources.map((r) => r.name), removed: [...removed] });
    st.call.write({
      type_url: typeUrl,
      nonce,
      system_version_info: '',
      resources: resources.map((r) => ({
        name: r.name,
        version: r.version,
        resource: { type_url: typeUrl, value: Buffer.from(r.value) },
      })),
      removed_resources: [...removed],
    });
  }

  async #onCreateCertificate(call: ServerUnaryCall<Record<string, unknown>, unknown>, cb: sendUnaryData<unknown>): Promise<void> {
    const req = call.request;
    const metadata = req['metadata'] ? structToJson(req['metadata']) : undefined;
    const rec: RecordedCaRequest = {
      csrPem: String(req['csr'] ?? ''),
      validitySeconds: Number(req['validity_duration'] ?? 0),
      ...(metadata ? { metadata } : {}),
      headers: headersOf(call.metadata),
    };
    this.caRequests.push(rec);
    notify(this.#caWaiters, rec);
    if (this.caFailure) {
      cb({ code: this.caFailure.code, details: this.caFailure.details });
      return;
    }
    const { x509 } = await loadX509();
    const csr = new x509.Pkcs10CertificateRequest(rec.csrPem);
    if (!(await csr.verify())) {
      cb({ code: GrpcStatus.INVALID_ARGUMENT, details: 'CSR signature invalid' });
      return;
    }
    const csrSan = csr.extensions.find((e) => e.type === '2.5.29.17');
    const csrUri = csrSan
      ? new x509.SubjectAlternativeNameExtension(csrSan.rawData).names.items.find((n) => n.type === 'url')?.value ?? ''
      : '';
    const impersonated = metadata?.['ImpersonatedIdentity'];
    const identity = typeof impersonated === 'string' ? impersonated : csrUri;
    const validity = rec.validitySeconds > 0 ? rec.validitySeconds : 86_400;
    const issue = async (id: string): Promise<string[]> => {
      const signer = this.#intermediate ?? this.root;
      const now = Date.now();
      const leaf = await x509.X509CertificateGenerator.create({
        serialNumber: randomSerial(), issuer: signer.cert.subject,
        notBefore: new Date(now - 1000), notAfter: new Date(now + validity * 1000),
        publicKey: csr.publicKey, signingKey: signer.keys.privateKey, signingAlgorithm: EC,
        extensions: [
          new x509.SubjectAlternativeNameExtension([{ type: 'url', value: id }], true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        ],
      });
      return [
        leaf.toString('pem') + '\n',
        ...(this.#intermediate ? [this.#intermediate.certPem] : []),
        [this.rootPem, ...this.#extraRootsPem].join(''),
      ];
    };
    const chain = this.caResponder
      ? await this.caResponder({ request: rec, identity, issue })
      : await issue(identity);
    cb(null, { cert_chain: chain });
  }
}

function headersOf(md: Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(md.getMap())) out[k] = typeof v === 'string' ? v : v.toString('utf8');
  return out;
}

/** google.protobuf.Struct as decoded by proto-loader (bundled camelCase names, oneofs) → plain JSON. */
function structToJson(s: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const fields = (s as { fields?: Record<string, unknown> } | null | undefined)?.fields ?? {};
  for (const [k, v] of Object.entries(fields)) out[k] = valueToJson(v);
  return out;
}

function valueToJson(v: unknown): unknown {
  const val = v as Record<string, unknown> | null | undefined;
  if (!val) return null;
  switch (val['kind']) {
    case 'stringValue': return val['stringValue'];
    case 'numberValue': return val['numberValue'];
    case 'boolValue': return val['boolValue'];
    case 'structValue': return structToJson(val['structValue']);
    case 'listValue': return ((val['listValue'] as { values?: unknown[] })?.values ?? []).map(valueToJson);
    default: return null;
  }
}

function notify<T>(waiters: Waiter<T>[], x: T): void {
  for (let i = waiters.length - 1; i >= 0; i--) {
    const w = waiters[i]!;
    if (w.pred(x)) {
      waiters.splice(i, 1);
      w.resolve(x);
    }
  }
}

function waitFor<T>(past: readonly T[], waiters: Waiter<T>[], pred: (x: T) => boolean, timeoutMs: number, what: string): Promise<T> {
  const hit = past.find(pred);
  if (hit) return Promise.resolve(hit);
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      const i = waiters.indexOf(w);
      if (i >= 0) waiters.splice(i, 1);
      reject(new Error(`fake-istiod: no matching ${what} within ${timeoutMs} ms`));
    }, timeoutMs);
    const w: Waiter<T> = { pred, resolve: (x) => { clearTimeout(timer); resolve(x); } };
    waiters.push(w);
  });
}
