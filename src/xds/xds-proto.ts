// Loads the .proto files in `proto/` (written from the field numbers in spec/xds.md §4–§6) into
// one protobufjs Root, once, on first use (nothing runs at import time). Field names keep the
// proto's snake_case (`keepCase`), so decoded objects match src/xds/decode-types.ts.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

export const ADDRESS_TYPE_URL = 'type.googleapis.com/istio.workload.Address';
export const AUTHORIZATION_TYPE_URL = 'type.googleapis.com/istio.security.Authorization';
export const ADS_METHOD_PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources';

/** The message types ztunnel speaks. */
export interface XdsProto {
  readonly root: protobuf.Root;
  readonly deltaRequest: protobuf.Type;
  readonly deltaResponse: protobuf.Type;
  readonly address: protobuf.Type;
  readonly workload: protobuf.Type;
  readonly service: protobuf.Type;
  readonly authorization: protobuf.Type;
}

/** Options for `Type.toObject` that every decoder here assumes. */
export const TO_OBJECT_OPTIONS: protobuf.IConversionOptions = {
  longs: Number,
  arrays: true,
  objects: true,
  oneofs: true,
};

const PROTO_FILES = [
  'workload.proto',
  'authorization.proto',
  'envoy/service/discovery/v3/discovery.proto',
  'citadel.proto',
];

let cached: XdsProto | undefined;

/**
 * Directory holding `workload.proto` etc. Found by walking up from this module, so it works from
 * `src/xds` and from the compiled `dist/src/xds` (the Docker image must ship `proto/`).
 */
export function protoDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, 'proto');
    if (existsSync(path.join(candidate, 'workload.proto'))) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error('proto/ directory (workload.proto) not found above ' + fileURLToPath(import.meta.url));
}

export function loadXdsProto(): XdsProto {
  if (cached) return cached;
  const dir = protoDir();
  const root = new protobuf.Root();
  // Imports are written relative to proto/ (e.g. "google/rpc/status.proto"); protobufjs serves
  // google/protobuf/* from its bundled well-known types before calling this.
  root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(dir, target));
  root.loadSync(PROTO_FILES, { keepCase: true });
  root.resolveAll();
  cached = {
    root,
    deltaRequest: root.lookupType('envoy.service.discovery.v3.DeltaDiscoveryRequest'),
    deltaResponse: root.lookupType('envoy.service.discovery.v3.DeltaDiscoveryResponse'),
    address: root.lookupType('istio.workload.Address'),
    workload: root.lookupType('istio.workload.Workload'),
    service: root.lookupType('istio.workload.Service'),
    authorization: root.lookupType('istio.security.Authorization'),
  };
  return cached;
}

/** Decodes bytes of `type` into a plain object (TO_OBJECT_OPTIONS). Throws on malformed bytes. */
export function decodeMessage(type: protobuf.Type, bytes: Uint8Array): Record<string, unknown> {
  return type.toObject(type.decode(bytes), TO_OBJECT_OPTIONS);
}

/** Encodes a plain object (snake_case field names) as `type`. */
export function encodeMessage(type: protobuf.Type, value: Record<string, unknown>): Uint8Array {
  return type.encode(type.fromObject(value)).finish();
}
