// Delta ADS client (spec/xds.md §1–§3): one bidi DeltaAggregatedResources stream to istiod over
// TLS, watching istio.workload.Address and istio.security.Authorization. Each response is decoded
// resource by resource: good ones go to the StateSink in one batch, bad ones are NACKed by name
// (`"<name>: <reason>; ..."`, error_detail.code 0 as Istio's ztunnel sends it). A rejected
// resource keeps the last version that was accepted under its name (if any) in
// initial_resource_versions, as Istio's ztunnel does: istiod sends removals only for names the
// client reports, so a resource deleted while disconnected is still removed after a reconnect. Reconnects back off per §1; readiness waits for the first ACK of each
// initially watched, non-on-demand type (§2.5).
//
// Messages are (de)serialized with protobufjs from proto/ (xds-proto.ts) so the raw response size
// is known for istio_xds_message_bytes_total; grpc-js carries them.
import { Client, status as GrpcStatus, type ClientDuplexStream, type StatusObject } from '@grpc/grpc-js';
import type { Config } from '../config/config.js';
import { err, type Result } from '../core/errors.js';
import type { Authorization } from '../policy/model.js';
import { policyKey } from '../policy/model.js';
import type { StateBatch, StateSink } from '../state/batch.js';
import { serviceKey, type Service, type Workload } from '../state/model.js';
import type { Logger } from '../telemetry/logger.js';
import {
  CONTROL_PLANE_CHANNEL_OPTIONS, CONTROL_PLANE_CONNECT_TIMEOUT_MS, controlPlaneCredentials, controlPlaneMetadata,
  controlPlaneTarget, readAuthToken, readRootCa, waitForChannelReady,
} from '../identity/istio-ca-client.js';
import { buildNode } from './ads-node.js';
import { decodeAddress } from './decode-address.js';
import { decodeAuthorization } from './decode-authorization.js';
import { list, str } from './decode-common.js';
import type { ProtoAddress, ProtoAuthorization } from './decode-types.js';
import {
  ADDRESS_TYPE_URL, ADS_METHOD_PATH, AUTHORIZATION_TYPE_URL, decodeMessage, encodeMessage, loadXdsProto,
  type XdsProto,
} from './xds-proto.js';

export type AdsConfig = Pick<
  Config,
  | 'xdsAddress' | 'xdsRootCa' | 'altXdsHostname' | 'authToken' | 'clusterId' | 'xdsHeaders' | 'proxyMetadata'
  | 'metaJson' | 'podName' | 'podNamespace' | 'instanceIp' | 'nodeName' | 'xdsOnDemand'
>;

export type TerminationReason = 'ConnectionError' | 'Error' | 'Reconnect' | 'Complete';

/** What the client reports; the composition root backs it with prom-client (telemetry.md §2). */
export interface XdsMetrics {
  /** istio_xds_connection_terminations_total{reason} */
  connectionTerminated(reason: TerminationReason): void;
  /** istio_xds_message_total{url} and istio_xds_message_bytes_total{url} */
  message(typeUrl: string, bytes: number): void;
}

export interface AdsClientOptions {
  readonly config: AdsConfig;
  readonly sink: StateSink;
  readonly metrics?: XdsMetrics;
  readonly logger?: Logger;
  /** Called once per type when its first response is ACKed. */
  readonly onFirstAck?: (typeUrl: string) => void;
  /** Reconnect backoff (xds.md §1: 10 ms doubling to 15 s). */
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
}

const MAX_MESSAGE_BYTES = 200 * 1024 * 1024;
const WATCHED_TYPES = [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL] as const;

interface ProtoResource {
  name?: string;
  version?: string;
  resource?: { type_url?: string; value?: Uint8Array } | null;
}
interface ProtoResponse {
  type_url?: string;
  nonce?: string;
  resources?: ProtoResource[];
  removed_resources?: string[];
}
interface Received {
  readonly bytes: number;
  readonly msg: ProtoResponse;
}

interface Reject {
  readonly name: string;
  readonly reason: string;
}

/** What a resource name stands for in the state (so a removal can be mapped to its key). */
type Held = { readonly kind: 'workload' | 'service' | 'policy'; readonly key: string };

interface TypeState {
  /** name → Resource.version of accepted resources (sent as initial_resource_versions). */
  readonly versions: Map<string, string>;
  readonly held: Map<string, Held>;
}

export class AdsClient {
  readonly #cfg: AdsConfig;
  readonly #sink: StateSink;
  readonly #metrics: XdsMetrics | undefined;
  readonly #log: Logger | undefined;
  readonly #onFirstAck: ((typeUrl: string) => void) | undefined;
  readonly #initialBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #types = new Map<string, TypeState>();
  readonly #ackedOnce = new Set<string>();
  readonly #awaitingReady: Set<string>;
  readonly #onDemandNames = new Set<string>();
  readonly #waiters = new Map<string, (() => void)[]>();
  #proto: XdsProto | undefined;
  #client: Client | undefined;
  #call: ClientDuplexStream<object, Received> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #backoffMs: number;
  #started = false;
  #closed = false;
  #connectionId = 0;
  #resolveReady!: () => void;
  /** Resolves when every initially watched, non-on-demand type has been ACKed once (§2.5). */
  readonly ready: Promise<void>;

  constructor(opts: AdsClientOptions) {
    this.#cfg = opts.config;
    this.#sink = opts.sink;
    this.#metrics = opts.metrics;
    this.#log = opts.logger;
    this.#onFirstAck = opts.onFirstAck;
    this.#initialBackoffMs = opts.initialBackoffMs ?? 10;
    this.#maxBackoffMs = opts.maxBackoffMs ?? 15_000;
    this.#backoffMs = this.#initialBackoffMs;
    for (const t of WATCHED_TYPES) this.#types.set(t, { versions: new Map(), held: new Map() });
    this.#awaitingReady = new Set(WATCHED_TYPES.filter((t) => !this.#isOnDemand(t)));
    this.ready = new Promise((resolve) => { this.#resolveReady = resolve; });
  }

  /** Opens the stream (and keeps reopening it until close()). */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#connect();
  }

  isReady(): boolean {
    return this.#awaitingReady.size === 0;
  }

  /** Accepted resource versions of a type (admin views, tests). */
  resourceVersions(typeUrl: string): ReadonlyMap<string, string> {
    return this.#types.get(typeUrl)?.versions ?? new Map();
  }

  /**
   * On-demand lookup (XDS_ON_DEMAND, §2.4): subscribes to an Address key (`network/ip`, a uid or
   * `ns/hostname`) and resolves when a response mentions it (added, removed or rejected), or at
   * once when on-demand is off. The subscription is repeated after a reconnect.
   */
  demand(name: string): Promise<void> {
    if (!this.#cfg.xdsOnDemand || this.#closed) return Promise.resolve();
    const p = new Promise<void>((resolve) => {
      const w = this.#waiters.get(name) ?? [];
      w.push(resolve);
      this.#waiters.set(name, w);
    });
    this.#onDemandNames.add(name);
    this.#send({ type_url: ADDRESS_TYPE_URL, resource_names_subscribe: [name] });
    return p;
  }

  /** Ends the stream and all timers; pending demand() calls resolve. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#endCall();
    for (const ws of this.#waiters.values()) for (const w of ws) w();
    this.#waiters.clear();
  }

  // ---- connection lifecycle ------------------------------------------------------------------

  #isOnDemand(typeUrl: string): boolean {
    return typeUrl === ADDRESS_TYPE_URL && this.#cfg.xdsOnDemand;
  }

  #connect(): void {
    if (this.#closed) return;
    const id = ++this.#connectionId;
    const cfg = this.#cfg;
    let client: Client;
    try {
      if (!cfg.xdsAddress) throw new Error('XDS_ADDRESS is not set');
      this.#proto ??= loadXdsProto();
      const creds = controlPlaneCredentials(readRootCa(cfg.xdsRootCa), cfg.altXdsHostname);
      // A fresh channel per attempt: our own backoff governs reconnects, not grpc-js's.
      client = new Client(controlPlaneTarget(cfg.xdsAddress).target, creds, {
        ...CONTROL_PLANE_CHANNEL_OPTIONS,
        'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      });
    } catch (e) {
      this.#setupFailed(e);
      return;
    }
    this.#client = client;
    // Connect first, bounded as Istio's ztunnel bounds it (5 s); the stream opens on a live channel.
    waitForChannelReady(client, CONTROL_PLANE_CONNECT_TIMEOUT_MS).then(
      () => {
        if (id === this.#connectionId && !this.#closed) this.#openStream(id, client);
      },
      (e: Error) => {
        if (id !== this.#connectionId || this.#closed) return;
        this.#log?.warn({ err: e.message }, 'xDS connection error');
        this.#endCall();
        this.#terminated('ConnectionError');
      },
    );
  }

  #setupFailed(e: unknown): void {
    this.#log?.warn({ err: (e as Error).message }, 'xDS connection setup failed');
    this.#endCall();
    this.#terminated('ConnectionError');
  }

  #openStream(id: number, client: Client): void {
    const cfg = this.#cfg;
    const proto = this.#proto!;
    let call: ClientDuplexStream<object, Received>;
    try {
      // The token and root are read on every (re)connect so rotated files are picked up.
      const md = controlPlaneMetadata(readAuthToken(cfg.authToken), cfg.clusterId, cfg.xdsHeaders, this.#log);
      call = client.makeBidiStreamRequest(
        ADS_METHOD_PATH,
        (req: object) => toBuffer(encodeMessage(proto.deltaRequest, req as Record<string, unknown>)),
        (buf: Buffer): Received => ({ bytes: buf.length, msg: decodeMessage(proto.deltaResponse, buf) as ProtoResponse }),
        md,
      );
    } catch (e) {
      this.#setupFailed(e);
      return;
    }
    this.#call = call;
    let connected = false;
    call.on('metadata', () => { connected = true; });
    call.on('data', (r: Received) => {
      if (id !== this.#connectionId || this.#closed) return;
      connected = true;
      this.#backoffMs = this.#initialBackoffMs; // a working stream resets the backoff
      this.#handleResponse(r);
    });
    call.on('error', () => { /* reported through 'status' */ });
    call.on('status', (s: StatusObject) => {
      if (id !== this.#connectionId || this.#closed) return;
      this.#onStreamEnd(s, connected);
    });
    this.#log?.info({ connection: id }, 'xDS stream opening');
    for (const t of WATCHED_TYPES) this.#send(this.#initialRequest(t));
  }

  #initialRequest(typeUrl: string): Record<string, unknown> {
    const st = this.#types.get(typeUrl)!;
    const onDemand = this.#isOnDemand(typeUrl);
    return {
      node: buildNode(this.#cfg),
      type_url: typeUrl,
      // Empty = wildcard. On-demand subscribes and unsubscribes "*" at once = nothing (§2.1),
      // plus whatever was demanded before a reconnect.
      resource_names_subscribe: onDemand ? ['*', ...this.#onDemandNames] : [],
      resource_names_unsubscribe: onDemand ? ['*'] : [],
      initial_resource_versions: Object.fromEntries(st.versions),
    };
  }

  #onStreamEnd(s: StatusObject, connected: boolean): void {
    this.#endCall();
    const benign =
      s.code === GrpcStatus.UNKNOWN || s.code === GrpcStatus.CANCELLED || s.code === GrpcStatus.DEADLINE_EXCEEDED ||
      (s.code === GrpcStatus.UNAVAILABLE &&
        (s.details.includes('transport is closing') || s.details.includes('received prior goaway')));
    if (s.code === GrpcStatus.OK) {
      this.#log?.warn('xDS stream completed by the server');
      this.#terminated('Complete', true);
    } else if (!connected && s.code === GrpcStatus.UNAVAILABLE) {
      this.#log?.warn({ code: s.code, details: s.details }, 'xDS connection error');
      this.#terminated('ConnectionError');
    } else if (benign) {
      this.#log?.debug({ code: s.code, details: s.details }, 'xDS stream ended; reconnecting');
      this.#terminated('Reconnect', true);
    } else {
      this.#log?.warn({ code: s.code, details: s.details }, 'xDS stream error');
      this.#terminated('Error');
    }
  }

  /** Counts the termination and schedules the next attempt (§1 backoff). */
  #terminated(reason: TerminationReason, resetBackoff = false): void {
    this.#metrics?.connectionTerminated(reason);
    if (this.#closed) return;
    let delay: number;
    if (resetBackoff) {
      this.#backoffMs = this.#initialBackoffMs;
      delay = this.#initialBackoffMs;
    } else {
      delay = this.#backoffMs;
      this.#backoffMs = Math.min(this.#maxBackoffMs, this.#backoffMs * 2);
    }
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#connect(), delay);
  }

  #endCall(): void {
    const call = this.#call;
    const client = this.#client;
    this.#call = undefined;
    this.#client = undefined;
    if (call) {
      call.removeAllListeners('data');
      call.on('error', () => {});
      call.cancel();
    }
    client?.close();
  }

  #send(req: Record<string, unknown>): void {
    const call = this.#call;
    if (!call || this.#closed) return;
    try {
      call.write(req);
    } catch (e) {
      this.#log?.warn({ err: (e as Error).message }, 'xDS request not sent');
    }
  }

  // ---- responses ----------------------------------------------------------------------------

  #handleResponse({ bytes, msg }: Received): void {
    const typeUrl = str(msg.type_url);
    const nonce = str(msg.nonce);
    this.#metrics?.message(typeUrl, bytes);
    const resources = list(msg.resources);
    const removed = list(msg.removed_resources).filter((n): n is string => typeof n === 'string');
    this.#log?.info({ type_url: typeUrl, size: resources.length, removes: removed.length }, 'received response');

    let rejects: Reject[] = [];
    if (typeUrl === ADDRESS_TYPE_URL) rejects = this.#applyAddresses(resources, removed);
    else if (typeUrl === AUTHORIZATION_TYPE_URL) rejects = this.#applyAuthorizations(resources, removed);
    else this.#log?.error({ type_url: typeUrl }, 'unknown xDS type'); // ACKed, as Rust ztunnel does

    const req: Record<string, unknown> = { type_url: typeUrl, response_nonce: nonce };
    if (rejects.length > 0) {
      const message = rejects.map((r) => `${r.name}: ${r.reason}`).join('; ');
      // Istio's ztunnel leaves the code at its default (0) and puts everything in the message.
      req['error_detail'] = { code: 0, message };
      this.#log?.error({ type_url: typeUrl, nonce, error: req['error_detail'] }, 'sending NACK');
    }
    this.#send(req);
    if (rejects.length === 0) this.#acked(typeUrl);

    for (const r of resources) this.#notify(str(r?.name));
    for (const n of removed) this.#notify(n);
  }

  #acked(typeUrl: string): void {
    if (this.#ackedOnce.has(typeUrl)) return;
    this.#ackedOnce.add(typeUrl);
    this.#onFirstAck?.(typeUrl);
    if (this.#awaitingReady.delete(typeUrl) && this.#awaitingReady.size === 0) this.#resolveReady();
  }

  #notify(name: string): void {
    const ws = this.#waiters.get(name);
    if (!ws) return;
    this.#waiters.delete(name);
    // The name stays in #onDemandNames: it is re-subscribed after a reconnect.
    for (const w of ws) w();
  }

  /** Decodes one Resource's Any.value as `type` (its Any.type_url is not checked, §2). */
  #decodeResource<T>(r: ProtoResource, typeName: 'address' | 'authorization', fn: (o: never) => Result<T, string>): Result<T, string> {
    if (r.resource == null) return err('XDS payload without resource');
    let obj: Record<string, unknown>;
    try {
      obj = decodeMessage(this.#proto![typeName], r.resource.value ?? new Uint8Array(0));
    } catch (e) {
      return err(`decode: ${(e as Error).message}`);
    }
    return fn(obj as never);
  }

  #applyAddresses(resources: readonly ProtoResource[], removed: readonly string[]): Reject[] {
    const st = this.#types.get(ADDRESS_TYPE_URL)!;
    const wUp = new Map<string, Workload>();
    const sUp = new Map<string, Service>();
    const wRm = new Set<string>();
    const sRm = new Set<string>();
    const rejects: Reject[] = [];
    const accepted: [string, string, Held][] = [];

    for (const r of resources) {
      if (r == null) continue;
      const name = str(r.name);
      const d = this.#decodeResource(r, 'address', (o: ProtoAddress) => decodeAddress(o));
      if (!d.ok) {
        rejects.push({ name, reason: d.error });
        continue;
      }
      const held: Held = d.value.kind === 'workload'
        ? { kind: 'workload', key: d.value.workload.uid }
        : { kind: 'service', key: serviceKey(d.value.service) };
      const prev = st.held.get(name);
      // The same name now stands for another key: drop the old one.
      if (prev && (prev.kind !== held.kind || prev.key !== held.key)) (prev.kind === 'workload' ? wRm : sRm).add(prev.key);
      if (d.value.kind === 'workload') wUp.set(held.key, d.value.workload);
      else sUp.set(held.key, d.value.service);
      accepted.push([name, str(r.version), held]);
    }
    for (const name of removed) {
      const prev = st.held.get(name);
      if (prev) {
        (prev.kind === 'workload' ? wRm : sRm).add(prev.key);
      } else {
        // Not ours (e.g. from the local file): as Rust, try it as a workload uid, then as a
        // namespace/hostname Service key (a hostname containing '/' is ignored, §3).
        wRm.add(name);
        const slash = name.indexOf('/');
        if (slash > 0 && !name.slice(slash + 1).includes('/')) sRm.add(name);
      }
    }
    for (const k of wUp.keys()) wRm.delete(k);
    for (const k of sUp.keys()) sRm.delete(k);

    const batch: StateBatch = {
      ...(wUp.size || wRm.size ? { workloads: { upsert: [...wUp.values()], remove: [...wRm] } } : {}),
      ...(sUp.size || sRm.size ? { services: { upsert: [...sUp.values()], remove: [...sRm] } } : {}),
    };
    return this.#commit(st, batch, accepted, removed, rejects, resources);
  }

  #applyAuthorizations(resources: readonly ProtoResource[], removed: readonly string[]): Reject[] {
    const st = this.#types.get(AUTHORIZATION_TYPE_URL)!;
    const up = new Map<string, Authorization>();
    const rm = new Set<string>();
    const rejects: Reject[] = [];
    const accepted: [string, string, Held][] = [];
    for (const r of resources) {
      if (r == null) continue;
      const name = str(r.name);
      const d = this.#decodeResource(r, 'authorization', (o: ProtoAuthorization) => decodeAuthorization(o));
      if (!d.ok) {
        rejects.push({ name, reason: d.error });
        continue;
      }
      const key = policyKey(d.value);
      const prev = st.held.get(name);
      if (prev && prev.key !== key) rm.add(prev.key);
      up.set(key, d.value);
      accepted.push([name, str(r.version), { kind: 'policy', key }]);
    }
    for (const name of removed) rm.add(st.held.get(name)?.key ?? name);
    for (const k of up.keys()) rm.delete(k);
    const batch: StateBatch = up.size || rm.size ? { policies: { upsert: [...up.values()], remove: [...rm] } } : {};
    return this.#commit(st, batch, accepted, removed, rejects, resources);
  }

  /**
   * Applies the batch, then records what is now held. A NACKed name is not recorded; an earlier
   * accepted version under that name stays (the state still holds that version, §2.2).
   */
  #commit(
    st: TypeState,
    batch: StateBatch,
    accepted: readonly [string, string, Held][],
    removed: readonly string[],
    rejects: Reject[],
    resources: readonly ProtoResource[],
  ): Reject[] {
    if (batch.workloads || batch.services || batch.policies) {
      try {
        this.#sink.apply(batch);
      } catch (e) {
        // A sink failure is a bug, but the stream must go on: reject everything in this response.
        this.#log?.error({ err: (e as Error).message }, 'applying xDS batch failed');
        for (const r of resources) st.versions.delete(str(r?.name));
        return resources.map((r) => ({ name: str(r?.name), reason: `state update failed: ${(e as Error).message}` }));
      }
    }
    for (const name of removed) {
      st.versions.delete(name);
      st.held.delete(name);
    }
    for (const [name, version, held] of accepted) {
      st.versions.set(name, version);
      st.held.set(name, held);
    }
    return rejects;
  }
}

function toBuffer(u8: Uint8Array): Buffer {
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}
