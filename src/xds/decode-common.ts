// Small pure helpers shared by the xDS decoders (spec/xds.md §5): proto3 scalars with defaults,
// enum numbers, raw IP bytes, gateway addresses and port lists. Bad input is a Result, not a throw.
import { bytesToIp, canonicalIp, isPort } from '../core/net.js';
import { err, ok, type Result } from '../core/errors.js';
import type { GatewayAddress, NetworkAddress, PortMap } from '../state/model.js';
import type { ProtoBytes, ProtoEnum, ProtoGatewayAddress, ProtoNetworkAddress, ProtoPort } from './decode-types.js';

/** proto3 string: unset → ''. */
export function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/** proto3 bool: unset → false. */
export function bool(v: unknown): boolean {
  return v === true;
}

/** proto3 uint32: unset → 0; anything that is not a non-negative integer → null. */
export function uint(v: unknown): number | null {
  if (v === undefined || v === null) return 0;
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : null;
}

export function list<T>(v: readonly T[] | null | undefined): readonly T[] {
  return Array.isArray(v) ? v : [];
}

/**
 * An enum value as its number: unset → 0; a known name → its index in `names` (the enums here
 * number their values 0..n-1); an unknown number or name → null (proto3 open enums can carry
 * numbers this build does not know).
 */
export function enumNumber(v: ProtoEnum, names: readonly string[]): number | null {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'string') {
    const i = names.indexOf(v);
    return i >= 0 ? i : null;
  }
  return Number.isInteger(v) && v >= 0 && v < names.length ? v : null;
}

/** 4 or 16 raw bytes → canonical IP text; other lengths rejected (Rust `byte_to_ip`). */
export function ipFromBytes(b: ProtoBytes): Result<string, string> {
  if (!(b instanceof Uint8Array)) return err('address bytes missing');
  if (b.length !== 4 && b.length !== 16) return err(`invalid IP address length ${b.length} (want 4 or 16 bytes)`);
  const text = bytesToIp(b);
  const ip = text === null ? null : canonicalIp(text);
  return ip === null ? err('invalid IP address bytes') : ok(ip);
}

export function decodeNetworkAddress(a: ProtoNetworkAddress): Result<NetworkAddress, string> {
  const ip = ipFromBytes(a.address);
  if (!ip.ok) return ip;
  return ok({ network: str(a.network), ip: ip.value });
}

/** GatewayAddress oneof destination {hostname=1, address=2}; no destination → rejected. */
export function decodeGatewayAddress(g: ProtoGatewayAddress, what: string): Result<GatewayAddress, string> {
  const port = uint(g.hbone_mtls_port);
  if (port === null || !isPort(port)) return err(`${what}: invalid hbone_mtls_port ${String(g.hbone_mtls_port)}`);
  if (g.hostname != null) {
    return ok({
      destination: { kind: 'hostname', namespace: str(g.hostname.namespace), hostname: str(g.hostname.hostname) },
      hboneMtlsPort: port,
    });
  }
  if (g.address != null) {
    const a = decodeNetworkAddress(g.address);
    if (!a.ok) return err(`${what}: ${a.error}`);
    return ok({ destination: { kind: 'address', address: a.value }, hboneMtlsPort: port });
  }
  return err(`${what}: gateway address has no destination`);
}

/** Port list → servicePort→targetPort; entries with a port outside 0..65535 are dropped. */
export function portMapFromPorts(ports: readonly ProtoPort[] | null | undefined): PortMap {
  const out = new Map<number, number>();
  for (const p of list(ports)) {
    if (p == null) continue;
    const sp = uint(p.service_port);
    const tp = uint(p.target_port);
    if (sp === null || tp === null || !isPort(sp) || !isPort(tp)) continue;
    out.set(sp, tp);
  }
  return out;
}
