// ZDS protobuf messages (capture.md §6; istio/ztunnel proto/zds.proto, package
// istio.workload.zds). The schema is declared here with the spec's field numbers and compiled
// with protobufjs on first use. Decoders return values: bad bytes from the node agent are an
// error value, never an exception.
import protobuf from 'protobufjs';
import { err, ok, type Result } from '../core/errors.js';

const ZDS_PROTO = `
syntax = "proto3";
package istio.workload.zds;

enum Version {
  NOT_USED = 0;
  V1 = 1;
}
message ZdsHello { Version version = 1; }
message WorkloadInfo {
  string name = 1;
  string namespace = 2;
  string service_account = 3;
  reserved 4; // was trust_domain
}
message AddWorkload {
  string uid = 1;
  WorkloadInfo workload_info = 2;
}
message KeepWorkload { string uid = 1; }
message DelWorkload {
  reserved 1;
  string uid = 2;
}
message SnapshotSent {}
message WorkloadRequest {
  reserved 4; // was no_snapshot_present
  oneof payload {
    AddWorkload add = 1;
    DelWorkload del = 2;
    SnapshotSent snapshot_sent = 3;
    KeepWorkload keep = 5;
  }
}
message Ack { string error = 1; }
message WorkloadResponse {
  oneof payload { Ack ack = 1; }
}
`;

export const ZDS_VERSION_V1 = 1;

export interface WorkloadInfo {
  readonly name: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

export type WorkloadRequest =
  | { readonly kind: 'add'; readonly uid: string; readonly workloadInfo: WorkloadInfo | null }
  | { readonly kind: 'keep'; readonly uid: string }
  | { readonly kind: 'del'; readonly uid: string }
  | { readonly kind: 'snapshotSent' };

/** WorkloadResponse.ack: empty `error` = ACK, non-empty = NACK. */
export interface ZdsAck {
  readonly error: string;
}

interface Types {
  hello: protobuf.Type;
  request: protobuf.Type;
  response: protobuf.Type;
}

let types: Types | undefined;

function schema(): Types {
  if (!types) {
    const root = protobuf.parse(ZDS_PROTO, { keepCase: true }).root;
    types = {
      hello: root.lookupType('istio.workload.zds.ZdsHello'),
      request: root.lookupType('istio.workload.zds.WorkloadRequest'),
      response: root.lookupType('istio.workload.zds.WorkloadResponse'),
    };
  }
  return types;
}

// Proto3 leaves default scalars off the wire; protobufjs writes any property that is present,
// so empty strings / zero enums are dropped before encoding to get the canonical bytes.
function str(s: string): string | undefined {
  return s === '' ? undefined : s;
}

export function encodeZdsHello(version: number = ZDS_VERSION_V1): Uint8Array {
  const t = schema().hello;
  return t.encode(t.fromObject(version === 0 ? {} : { version })).finish();
}

export function decodeZdsHello(bytes: Uint8Array): Result<{ version: number }> {
  return decodeWith(schema().hello, bytes, (m) => ok({ version: num(m['version']) }));
}

export function encodeWorkloadRequest(req: WorkloadRequest): Uint8Array {
  const t = schema().request;
  let payload: Record<string, unknown>;
  switch (req.kind) {
    case 'add': {
      const add: Record<string, unknown> = { uid: str(req.uid) };
      if (req.workloadInfo) {
        add['workload_info'] = {
          name: str(req.workloadInfo.name),
          namespace: str(req.workloadInfo.namespace),
          service_account: str(req.workloadInfo.serviceAccount),
        };
      }
      payload = { add };
      break;
    }
    case 'keep':
      payload = { keep: { uid: str(req.uid) } };
      break;
    case 'del':
      payload = { del: { uid: str(req.uid) } };
      break;
    case 'snapshotSent':
      payload = { snapshot_sent: {} };
      break;
  }
  return t.encode(t.fromObject(payload)).finish();
}

export function decodeWorkloadRequest(bytes: Uint8Array): Result<WorkloadRequest> {
  return decodeWith(schema().request, bytes, (m): Result<WorkloadRequest> => {
    switch (m['payload']) {
      case 'add': {
        const a = obj(m['add']);
        const info = m['add'] && a['workload_info'] ? obj(a['workload_info']) : null;
        return ok({
          kind: 'add',
          uid: text(a['uid']),
          workloadInfo: info
            ? { name: text(info['name']), namespace: text(info['namespace']), serviceAccount: text(info['service_account']) }
            : null,
        });
      }
      case 'keep':
        return ok({ kind: 'keep', uid: text(obj(m['keep'])['uid']) });
      case 'del':
        return ok({ kind: 'del', uid: text(obj(m['del'])['uid']) });
      case 'snapshot_sent':
        return ok({ kind: 'snapshotSent' });
      default:
        return err('WorkloadRequest carries no known payload');
    }
  });
}

export function encodeWorkloadResponse(ack: ZdsAck): Uint8Array {
  const t = schema().response;
  return t.encode(t.fromObject({ ack: { error: str(ack.error) } })).finish();
}

export function decodeWorkloadResponse(bytes: Uint8Array): Result<ZdsAck> {
  return decodeWith(schema().response, bytes, (m): Result<ZdsAck> => {
    if (m['payload'] !== 'ack') return err('WorkloadResponse carries no ack');
    return ok({ error: text(obj(m['ack'])['error']) });
  });
}

function decodeWith<T>(
  type: protobuf.Type,
  bytes: Uint8Array,
  map: (m: Record<string, unknown>) => Result<T>,
): Result<T> {
  let message: protobuf.Message;
  try {
    message = type.decode(bytes);
  } catch (e) {
    return err(`malformed ${type.name}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const m = type.toObject(message, { oneofs: true, enums: Number, defaults: false }) as Record<string, unknown>;
  return map(m);
}

function obj(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' ? (v as Record<string, unknown>) : {};
}

function text(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function num(v: unknown): number {
  return typeof v === 'number' ? v : 0;
}
