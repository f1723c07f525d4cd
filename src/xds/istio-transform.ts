// The local-file transform that turns Istio `AuthorizationPolicy` / `PeerAuthentication` documents
// into ztunnel-form policies and workload attachments (config.md "Beyond the reference" (b),
// policy.md §5–§6). It plugs into LocalConfigSource as its `transform` and into `ztunnel explain`.
//
// Translation is istio-translate.ts; this module only adapts the parsed snapshot to it and merges
// the result back: generated policies are appended after the ztunnel-form ones, and each
// workload's attached keys are appended to its own `authorizationPolicies` (its own entries first,
// no duplicates). A generated key that a ztunnel-form policy already uses is an error: two
// different policies under one key would silently shadow each other.
import { derivedPeerAuthName, STATIC_STRICT_NAME, translateIstio, type IstioDocument, type TranslateIssue } from '../policy/istio-translate.js';
import { policyKey } from '../policy/model.js';
import type { Workload } from '../state/model.js';
import type { LocalConfigProblem, LocalConfigSnapshot } from './local-file.js';
import type { LocalConfigTransform } from './local-source.js';

export interface TransformWarning {
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

const problem = (i: TranslateIssue, severity: 'error' | 'warning'): LocalConfigProblem => ({
  file: i.file,
  line: i.line,
  path: '',
  message: i.message,
  severity,
});

function metaOf(doc: unknown): { name: string; namespace: string } | undefined {
  if (typeof doc !== 'object' || doc === null) return undefined;
  const md = (doc as Record<string, unknown>).metadata;
  if (typeof md !== 'object' || md === null) return undefined;
  const { name, namespace } = md as Record<string, unknown>;
  return typeof name === 'string' && typeof namespace === 'string' ? { name, namespace } : undefined;
}

/**
 * Which document produced each generated key, for error lines: an AuthorizationPolicy keeps its
 * own key; a PeerAuthentication may produce `<ns>/converted_peer_authentication_<name>`; the static
 * strict policy is attributed to the first PeerAuthentication (policy.md §6).
 */
function sourcesOf(docs: readonly IstioDocument[], root: string): Map<string, IstioDocument> {
  const out = new Map<string, IstioDocument>();
  for (const d of docs) {
    const m = metaOf(d.doc);
    if (!m) continue;
    const key = d.kind === 'AuthorizationPolicy' ? `${m.namespace}/${m.name}` : `${m.namespace}/${derivedPeerAuthName(m.name)}`;
    if (!out.has(key)) out.set(key, d);
    if (d.kind === 'PeerAuthentication' && !out.has(`${root}/${STATIC_STRICT_NAME}`)) out.set(`${root}/${STATIC_STRICT_NAME}`, d);
  }
  return out;
}

/**
 * @param fileName the name problems carry (the watched path, or `LOCAL_XDS`).
 * @param log called once per translation warning, in addition to returning it (for callers that
 *   do not log returned warnings themselves).
 */
export function istioTransform(fileName: string, log?: (w: TransformWarning) => void): LocalConfigTransform {
  return (snap: LocalConfigSnapshot) => {
    if (snap.istioDocuments.length === 0) return { ok: true, value: snap, warnings: [] };

    const documents: IstioDocument[] = snap.istioDocuments.map((d, index) => ({
      // local-file.ts only lets these two kinds through (config.md "Beyond" (b)).
      kind: d.kind as IstioDocument['kind'],
      doc: d.doc,
      line: d.line,
      file: fileName,
      index,
    }));
    const root = snap.rootNamespace;
    const result = translateIstio({
      documents,
      workloads: snap.workloads.map((w) => ({ uid: w.uid, namespace: w.namespace, labels: w.labels })),
      rootNamespace: root,
    });

    const errors = result.errors.map((e) => problem(e, 'error'));
    const existing = new Set(snap.policies.map(policyKey));
    const sources = sourcesOf(documents, root);
    for (const p of result.policies) {
      const key = policyKey(p);
      if (!existing.has(key)) continue;
      const src = sources.get(key) ?? documents[0]!;
      errors.push({
        file: fileName,
        line: src.line,
        path: '',
        message: `the ${src.kind} document generates policy ${key}, which a policy in the ztunnel form (policies:) already uses; rename one of them`,
        severity: 'error',
      });
    }
    if (errors.length > 0) return { ok: false, errors };

    for (const w of result.warnings) log?.(w);
    const workloads = snap.workloads.map((w): Workload => {
      const attached = result.attachments.get(w.uid) ?? [];
      const extra = attached.filter((k, i) => !w.authorizationPolicies.includes(k) && attached.indexOf(k) === i);
      if (extra.length === 0) return w;
      return Object.freeze({ ...w, authorizationPolicies: Object.freeze([...w.authorizationPolicies, ...extra]) });
    });
    const value: LocalConfigSnapshot = {
      ...snap,
      workloads,
      policies: [...snap.policies, ...result.policies],
    };
    return { ok: true, value, warnings: result.warnings.map((w) => problem(w, 'warning')) };
  };
}
