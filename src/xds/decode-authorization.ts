// istio.security.Authorization (spec/xds.md §6) → the internal Authorization model
// (rules → clauses → matches). As in Rust ztunnel, unknown scope/action numbers reject the
// policy, while a StringMatch with no oneof set or an Address that is not a valid IP/prefix is
// silently dropped from its Match; ports outside 0..65535 are dropped too (istiod never sends
// them). Never throws.
import { cidrFromBytes, type Cidr } from '../core/net.js';
import { err, ok, type Result } from '../core/errors.js';
import type {
  Authorization, Match, PolicyAction, PolicyScope, ServiceAccountMatch, StringMatch,
} from '../policy/model.js';
import { bool, enumNumber, list, str, uint } from './decode-common.js';
import type {
  ProtoAuthorization, ProtoMatch, ProtoSecurityAddress, ProtoServiceAccountMatch, ProtoStringMatch,
} from './decode-types.js';

const SCOPES = ['GLOBAL', 'NAMESPACE', 'WORKLOAD_SELECTOR'] as const;
const SCOPE_MODEL: readonly PolicyScope[] = ['Global', 'Namespace', 'WorkloadSelector'];
const ACTIONS = ['ALLOW', 'DENY'] as const;
const ACTION_MODEL: readonly PolicyAction[] = ['Allow', 'Deny'];

export function decodeAuthorization(a: ProtoAuthorization): Result<Authorization, string> {
  if (a == null || typeof a !== 'object') return err('authorization missing');
  const scope = enumNumber(a.scope, SCOPES);
  if (scope === null) return err(`unknown scope ${String(a.scope)}`);
  const action = enumNumber(a.action, ACTIONS);
  if (action === null) return err(`unknown action ${String(a.action)}`);

  const rules = list(a.rules).map((rule) =>
    list(rule?.clauses).map((clause) => list(clause?.matches).map((m) => decodeMatch(m ?? {}))),
  );
  return ok(Object.freeze({
    name: str(a.name),
    namespace: str(a.namespace),
    scope: SCOPE_MODEL[scope]!,
    action: ACTION_MODEL[action]!,
    dryRun: bool(a.dry_run),
    rules,
  }));
}

function decodeMatch(m: ProtoMatch): Match {
  return {
    namespaces: stringMatches(m.namespaces),
    notNamespaces: stringMatches(m.not_namespaces),
    principals: stringMatches(m.principals),
    notPrincipals: stringMatches(m.not_principals),
    serviceAccounts: serviceAccounts(m.service_accounts),
    notServiceAccounts: serviceAccounts(m.not_service_accounts),
    sourceIps: cidrs(m.source_ips),
    notSourceIps: cidrs(m.not_source_ips),
    destinationIps: cidrs(m.destination_ips),
    notDestinationIps: cidrs(m.not_destination_ips),
    destinationPorts: ports(m.destination_ports),
    notDestinationPorts: ports(m.not_destination_ports),
  };
}

function stringMatches(v: readonly ProtoStringMatch[] | null | undefined): StringMatch[] {
  const out: StringMatch[] = [];
  for (const s of list(v)) {
    if (s == null) continue;
    // oneof match_type: at most one is set; none set → dropped.
    if (typeof s.exact === 'string') out.push({ kind: 'exact', value: s.exact });
    else if (typeof s.prefix === 'string') out.push({ kind: 'prefix', value: s.prefix });
    else if (typeof s.suffix === 'string') out.push({ kind: 'suffix', value: s.suffix });
    else if (s.presence != null) out.push({ kind: 'presence' });
  }
  return out;
}

function serviceAccounts(v: readonly ProtoServiceAccountMatch[] | null | undefined): ServiceAccountMatch[] {
  return list(v)
    .filter((s) => s != null)
    .map((s) => ({ namespace: str(s.namespace), serviceAccount: str(s.serviceAccount) }));
}

function cidrs(v: readonly ProtoSecurityAddress[] | null | undefined): Cidr[] {
  const out: Cidr[] = [];
  for (const a of list(v)) {
    if (a == null || !(a.address instanceof Uint8Array)) continue;
    if (a.address.length !== 4 && a.address.length !== 16) continue;
    const len = uint(a.length);
    if (len === null) continue;
    const c = cidrFromBytes(a.address, len);
    if (c) out.push(c);
  }
  return out;
}

function ports(v: readonly number[] | null | undefined): number[] {
  return list(v).filter((p) => Number.isInteger(p) && p >= 0 && p <= 65535);
}
