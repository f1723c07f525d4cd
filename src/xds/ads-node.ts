// The xDS Node sent in every initial DeltaDiscoveryRequest (spec/xds.md §1), as a plain object
// for the protobufjs `envoy.config.core.v3.Node` type (snake_case field names).
import type { Config } from '../config/config.js';

export type NodeConfig = Pick<Config, 'instanceIp' | 'podName' | 'podNamespace' | 'nodeName' | 'proxyMetadata' | 'metaJson'>;

const DEFAULT_IP = '1.1.1.1';

/**
 * google.protobuf.Value for a JSON value. The well-known types come from protobufjs's bundled
 * definitions, whose field names are camelCase (`stringValue`) even with `keepCase`.
 */
export function toProtoValue(v: unknown): Record<string, unknown> {
  if (v === null || v === undefined) return { nullValue: 0 };
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toProtoValue) } };
  if (typeof v === 'object') return { structValue: toProtoStruct(Object.entries(v as Record<string, unknown>)) };
  return { stringValue: String(v) };
}

export function toProtoStruct(entries: Iterable<[string, unknown]>): { fields: Record<string, unknown> } {
  const fields: Record<string, unknown> = {};
  for (const [k, v] of entries) fields[k] = toProtoValue(v);
  return { fields };
}

/**
 * id `ztunnel~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`; metadata NAME, NAMESPACE, INSTANCE_IPS,
 * NODE_NAME, then proxy metadata (strings), then ISTIO_METAJSON_* values (JSON), later keys
 * overriding earlier ones as in Rust ztunnel.
 */
export function buildNode(cfg: NodeConfig): { id: string; metadata: { fields: Record<string, unknown> } } {
  const ip = cfg.instanceIp || DEFAULT_IP;
  const pod = cfg.podName ?? '';
  const ns = cfg.podNamespace ?? '';
  const entries: [string, unknown][] = [
    ['NAME', pod],
    ['NAMESPACE', ns],
    ['INSTANCE_IPS', ip],
    ['NODE_NAME', cfg.nodeName ?? ''],
    ...[...cfg.proxyMetadata].map(([k, v]): [string, unknown] => [k, String(v)]),
    ...cfg.metaJson,
  ];
  return { id: `ztunnel~${ip}~${pod}.${ns}~${ns}.svc.cluster.local`, metadata: toProtoStruct(entries) };
}
