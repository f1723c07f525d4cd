// `ztunnel explain` (policy.md "Beyond the reference"): would this connection be allowed, and why?
// It builds a State exactly as the daemon does — from a local file (parse + Istio translation) or
// from a running daemon's /config_dump — and judges the connection with the same code the inbound
// path uses (State.resolvePolicies → policy/explain.ts, which walks policy/compile.ts).
//
// Conventions (docs/explain-json.md):
// - the source is `--src-ip` plus `--src-identity spiffe://…` (an HBONE peer) or `--plaintext`;
//   giving neither means plaintext, i.e. what inbound 15006 sees (policy.md §4: no identity);
// - `--dst IP:PORT` naming a Service VIP is expanded to every endpoint the Service may send to, each
//   with its resolved target port (load-balance.ts rules); otherwise it names a workload IP;
// - exit status: 0 every judged destination allowed, 1 any denied, 2 input or config error.
import { readFile } from 'node:fs/promises';
import { ZtunnelError } from './core/errors.js';
import { canonicalIp, formatAddr, parseSocketAddr } from './core/net.js';
import { formatIdentity, parseIdentity, type Identity } from './core/spiffe.js';
import { explainDecision, formatExplanation, type Explanation } from './policy/explain.js';
import { endpointTargets, pickWorkloadIp } from './state/load-balance.js';
import { serviceKey, type Service, type Workload } from './state/model.js';
import { State } from './state/state.js';
import { identityOf } from './state/workload-identity.js';
import { istioTransform } from './xds/istio-transform.js';
import { formatProblem, parseLocalConfig, type LocalConfigProblem, type LocalConfigSnapshot } from './xds/local-file.js';

export interface ExplainArgs {
  readonly config?: string;
  readonly admin?: string;
  readonly srcIp: string;
  readonly srcIdentity?: string;
  readonly plaintext?: boolean;
  readonly dst: string;
  readonly json?: boolean;
}

export interface ExplainIo {
  stdout(s: string): void;
  stderr(s: string): void;
  readonly fetch?: typeof fetch;
}

export const EXIT_ALLOWED = 0;
export const EXIT_DENIED = 1;
export const EXIT_INPUT_ERROR = 2;

const ADMIN_TIMEOUT_MS = 10_000;
const HBONE_PORT = 15008;

/** One judged destination: a workload at the resolved target port. */
export interface ExplainedDestination {
  readonly workload: {
    readonly uid: string;
    readonly name: string;
    readonly namespace: string;
    readonly serviceAccount: string;
    readonly identity: string;
  };
  readonly ip: string;
  readonly port: number;
  /** Keys listed in the workload's `authorizationPolicies` that the store does not hold (skipped, policy.md §3). */
  readonly skippedPolicies: readonly string[];
  readonly explanation: Explanation;
}

/** The `--json` document (version 1, docs/explain-json.md). */
export interface ExplainOutput {
  readonly version: 1;
  readonly query: {
    readonly srcIp: string;
    readonly srcIdentity: string | null;
    readonly dst: string;
  };
  /** Set when `--dst` is a Service VIP. */
  readonly service: {
    readonly key: string;
    readonly name: string;
    readonly namespace: string;
    readonly hostname: string;
    readonly port: number;
  } | null;
  readonly allowed: boolean;
  readonly destinations: readonly ExplainedDestination[];
}

/** Bad flags, an unreadable or invalid config, an unknown destination: exit 2. */
const inputError = (message: string): ZtunnelError => new ZtunnelError('CONFIG_INVALID', message);

const EMPTY_SNAPSHOT_KEYS = ['workloads', 'services', 'policies'] as const;

function problemsText(problems: readonly LocalConfigProblem[]): string {
  return problems.map((p) => `  ${formatProblem(p)}\n`).join('');
}

/** Parses the local file and applies the Istio translation, as LocalConfigSource does. */
function snapshotFromFile(text: string, fileName: string, warn: (s: string) => void): LocalConfigSnapshot {
  const parsed = parseLocalConfig(text, fileName);
  for (const w of parsed.warnings) warn(formatProblem(w));
  if (!parsed.ok) throw inputError(`invalid config ${fileName}:\n${problemsText(parsed.errors)}`);
  const t = istioTransform(fileName)(parsed.value);
  if (!t.ok) throw inputError(`invalid config ${fileName}:\n${problemsText(t.errors)}`);
  for (const w of t.warnings) warn(formatProblem(w));
  return t.value;
}

/**
 * /config_dump uses the local-file schema for workloads, services and policies (admin/config-dump.ts),
 * so those three lists go back through the local-file parser; dump-only keys (a Service's
 * `endpoints`, which are rebuilt from the workloads) are dropped first, and a workload's list of
 * service names becomes the local-file map again (ports from the matching endpoint).
 */
function snapshotFromDump(dump: unknown, source: string, warn: (s: string) => void): LocalConfigSnapshot {
  if (typeof dump !== 'object' || dump === null || Array.isArray(dump)) throw inputError(`${source}: not a config_dump (expected a JSON object)`);
  const d = dump as Record<string, unknown>;
  const doc: Record<string, unknown> = {};
  for (const k of EMPTY_SNAPSHOT_KEYS) {
    const v = d[k] ?? [];
    if (!Array.isArray(v)) throw inputError(`${source}: "${k}" is not a list`);
    doc[k] = v;
  }
  // A workload's `services` is a list of `namespace/hostname` in the dump (Istio's shape); its
  // port map for each comes back from that Service's (or the staged) endpoint entry.
  const endpointPorts = new Map<string, unknown>();
  const note = (key: string, endpoints: unknown) => {
    if (typeof endpoints !== 'object' || endpoints === null) return;
    for (const [uid, e] of Object.entries(endpoints)) endpointPorts.set(`${uid}\n${key}`, (e as { port?: unknown } | null)?.port ?? {});
  };
  doc.services = (doc.services as unknown[]).map((s) => {
    if (typeof s !== 'object' || s === null) return s;
    const { endpoints, ...rest } = s as Record<string, unknown>;
    note(`${String(rest['namespace'])}/${String(rest['hostname'])}`, endpoints);
    return rest;
  });
  const staged = d['stagedServices'];
  if (typeof staged === 'object' && staged !== null) for (const [key, eps] of Object.entries(staged)) note(key, eps);
  doc.workloads = (doc.workloads as unknown[]).map((w) => {
    if (typeof w !== 'object' || w === null) return w;
    const r = w as Record<string, unknown>;
    const names = r['services'] ?? []; // left out when empty
    if (!Array.isArray(names)) return w;
    return { ...r, services: Object.fromEntries(names.map((k) => [String(k), endpointPorts.get(`${String(r['uid'])}\n${String(k)}`) ?? {}])) };
  });
  // Indented so that problems point at a useful line of this text.
  const parsed = parseLocalConfig(JSON.stringify(doc, null, 2), source);
  for (const w of parsed.warnings) warn(formatProblem(w));
  if (!parsed.ok) throw inputError(`cannot read ${source}:\n${problemsText(parsed.errors)}`);
  return parsed.value;
}

async function fetchDump(admin: string, fetchFn: typeof fetch): Promise<{ dump: unknown; source: string }> {
  let url: URL;
  try {
    url = new URL('config_dump', admin.endsWith('/') ? admin : `${admin}/`);
  } catch {
    throw inputError(`--admin ${JSON.stringify(admin)} is not a URL (e.g. http://127.0.0.1:15000)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw inputError(`--admin ${admin}: only http:// and https:// URLs are supported`);
  const source = url.toString();
  let res: Response;
  try {
    res = await fetchFn(url, { signal: AbortSignal.timeout(ADMIN_TIMEOUT_MS) });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw inputError(`cannot fetch ${source}: ${cause?.code ?? cause?.message ?? (e instanceof Error ? e.message : String(e))}`);
  }
  let body: string;
  try {
    body = await res.text();
  } catch (e) {
    throw inputError(`cannot read the response of ${source}: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (res.status !== 200) throw inputError(`${source} answered HTTP ${res.status}`);
  try {
    return { dump: JSON.parse(body) as unknown, source };
  } catch {
    throw inputError(`${source} did not return JSON`);
  }
}

function buildState(snap: LocalConfigSnapshot, warn: (s: string) => void): State {
  const state = new State();
  const result = state.apply({
    workloads: { upsert: snap.workloads, remove: [] },
    services: { upsert: snap.services, remove: [] },
    policies: { upsert: snap.policies, remove: [] },
  });
  // The daemon runs without a rejected resource too; say so, since it may explain a surprise.
  for (const r of result.rejected) warn(`${r.kind} ${r.key} rejected by the state store: ${r.reason}`);
  return state;
}

function parseSource(args: ExplainArgs): { srcIp: string; identity: Identity | null } {
  const srcIp = canonicalIp(args.srcIp);
  if (!srcIp) throw inputError(`--src-ip ${JSON.stringify(args.srcIp)} is not an IP address`);
  if (args.srcIdentity !== undefined && args.plaintext) throw inputError('give --src-identity or --plaintext, not both');
  if (args.srcIdentity === undefined) return { srcIp, identity: null };
  const identity = parseIdentity(args.srcIdentity);
  if (!identity) {
    throw inputError(`--src-identity ${JSON.stringify(args.srcIdentity)} is not a SPIFFE identity (spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>)`);
  }
  return { srcIp, identity };
}

/** Distinct networks in the state, the default network first (`--dst` carries no network). */
function networksOf(state: State): string[] {
  const nets = new Set<string>(['']);
  for (const w of state.workloads()) nets.add(w.network);
  for (const s of state.services()) for (const v of s.vips) nets.add(v.network);
  return [...nets];
}

interface Target {
  readonly workload: Workload;
  readonly ip: string;
  readonly port: number;
}

/**
 * xds.md §8 "Outbound upstream": a Service on the VIP (not Passthrough) → its endpoints; else the
 * workload with that IP, same port.
 */
function resolveTargets(state: State, dst: { ip: string; port: number }, srcIp: string, identity: Identity | null): { service: Service | null; targets: Target[] } {
  const networks = networksOf(state);
  let source: Workload | undefined;
  for (const n of networks) source ??= state.findWorkloadByAddr(n, srcIp);
  const clientNamespace = source?.namespace ?? identity?.namespace;

  for (const n of networks) {
    const svc = state.findServiceByVip(n, dst.ip, clientNamespace);
    if (!svc || svc.loadBalancer?.mode === 'Passthrough') continue;
    if (!svc.ports.has(dst.port)) {
      const ports = [...svc.ports.keys()].sort((a, b) => a - b).join(', ') || 'none';
      throw inputError(`${formatAddr(dst)} is Service ${serviceKey(svc)}, which has no port ${dst.port} (its ports: ${ports})`);
    }
    const targets: Target[] = [];
    for (const e of endpointTargets(state, svc, dst.port, source)) {
      const ip = pickWorkloadIp(e.workload, dst.ip, svc.ipFamilies);
      if (ip !== undefined) targets.push({ workload: e.workload, ip, port: e.targetPort });
    }
    if (targets.length === 0) throw inputError(`${formatAddr(dst)} is Service ${serviceKey(svc)}, which has no usable endpoint for port ${dst.port}`);
    return { service: svc, targets };
  }
  for (const n of networks) {
    const w = state.findWorkloadByAddr(n, dst.ip);
    if (w) return { service: null, targets: [{ workload: w, ip: dst.ip, port: dst.port }] };
  }
  throw inputError(`no workload or Service VIP has the address ${dst.ip} in this config`);
}

function judge(state: State, t: Target, srcIp: string, identity: Identity | null): ExplainedDestination {
  const { policies, skippedKeys } = state.resolvePolicies(t.workload);
  const explanation = explainDecision({ srcIp, srcIdentity: identity, dstIp: t.ip, dstPort: t.port }, policies);
  const w = t.workload;
  return {
    workload: {
      uid: w.uid,
      name: w.name,
      namespace: w.namespace,
      serviceAccount: w.serviceAccount,
      identity: formatIdentity(identityOf(w)),
    },
    ip: t.ip,
    port: t.port,
    skippedPolicies: skippedKeys,
    explanation,
  };
}

function formatText(out: ExplainOutput): string {
  const parts: string[] = [];
  const n = out.destinations.length;
  if (out.service) {
    parts.push(`destination ${out.query.dst} is Service ${out.service.key} port ${out.service.port}: ${n} endpoint${n === 1 ? '' : 's'}\n`);
  }
  out.destinations.forEach((d, i) => {
    const head = out.service ? `endpoint ${i + 1}/${n}: ` : 'destination ';
    parts.push(`${out.service || i > 0 ? '\n' : ''}${head}workload ${d.workload.uid || '(no uid)'} (${d.workload.namespace}/${d.workload.name}, ${d.workload.identity}) at ${formatAddr({ ip: d.ip, port: d.port })}\n`);
    parts.push(formatExplanation(d.explanation));
    for (const k of d.skippedPolicies) parts.push(`skipping unknown policy ${k} (listed by the workload, not in the config)\n`);
  });
  const denied = out.destinations.filter((d) => !d.explanation.decision.allowed).length;
  parts.push(
    out.allowed
      ? `\nresult: ALLOW${n > 1 ? ` (all ${n} endpoints allowed)` : ''}\n`
      : `\nresult: DENY${n > 1 ? ` (${denied} of ${n} endpoints denied)` : ''}\n`,
  );
  return parts.join('');
}

async function explain(args: ExplainArgs, io: ExplainIo): Promise<number> {
  if ((args.config === undefined) === (args.admin === undefined)) throw inputError('give exactly one of --config FILE and --admin URL');
  const { srcIp, identity } = parseSource(args);
  const dst = parseSocketAddr(args.dst);
  if (!dst) throw inputError(`--dst ${JSON.stringify(args.dst)} is not IP:PORT (e.g. 10.244.2.45:8080 or [fd00::1]:8080)`);
  const warn = (s: string): void => io.stderr(`warning: ${s}\n`);

  let snap: LocalConfigSnapshot;
  if (args.config !== undefined) {
    let text: string;
    try {
      text = await readFile(args.config, 'utf8');
    } catch (e) {
      throw inputError(`cannot read --config ${args.config}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    snap = snapshotFromFile(text, args.config, warn);
  } else {
    const { dump, source } = await fetchDump(args.admin!, io.fetch ?? fetch);
    snap = snapshotFromDump(dump, source, warn);
  }
  const state = buildState(snap, warn);
  const { service, targets } = resolveTargets(state, dst, srcIp, identity);
  if (!service && dst.port === HBONE_PORT) {
    warn(`${HBONE_PORT} is the HBONE port; inbound policies see the target port inside the tunnel (policy.md §4), so give that port`);
  }
  const destinations = targets.map((t) => judge(state, t, srcIp, identity));
  const out: ExplainOutput = {
    version: 1,
    query: { srcIp, srcIdentity: identity ? formatIdentity(identity) : null, dst: formatAddr(dst) },
    service: service
      ? { key: serviceKey(service), name: service.name, namespace: service.namespace, hostname: service.hostname, port: dst.port }
      : null,
    allowed: destinations.every((d) => d.explanation.decision.allowed),
    destinations,
  };
  io.stdout(args.json ? `${JSON.stringify(out, null, 2)}\n` : formatText(out));
  return out.allowed ? EXIT_ALLOWED : EXIT_DENIED;
}

/** `ztunnel explain`; returns the exit status and never throws. */
export async function runExplain(args: ExplainArgs, io: ExplainIo): Promise<number> {
  try {
    return await explain(args, io);
  } catch (e) {
    if (e instanceof ZtunnelError) io.stderr(`ztunnel explain: ${e.message}${e.message.endsWith('\n') ? '' : '\n'}`);
    else io.stderr(`ztunnel explain: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return EXIT_INPUT_ERROR;
  }
}
