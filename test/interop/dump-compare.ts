// Field-by-field comparison of two /config_dump documents (ztunnel-ts and Istio's ztunnel fed by
// the same istiod). Workloads, services and policies are matched by key and compared leaf by
// leaf; certificates by identity (shape, state, root); top-level keys by name. Every difference
// left must be one of KNOWN_DIFFERENCES, each explained in docs/interop.md.

export interface Difference {
  readonly path: string;
  /** ztunnel-ts' value (undefined: absent). */
  readonly ts: unknown;
  /** Istio's ztunnel's value (undefined: absent). */
  readonly istio: unknown;
}

/** Differences that are expected, by path pattern, with the reason (docs/interop.md lists them). */
export const KNOWN_DIFFERENCES: readonly { readonly path: RegExp; readonly reason: string }[] = [
  { path: /^\.config(\.|$)/, reason: 'settings are named after ztunnel-ts\' own Config (telemetry.md /config_dump); compared setting by setting in test/integration/istio-settings' },
  { path: /^\.version\./, reason: 'build information of each implementation' },
  { path: /^\.localConfigErrors$/, reason: 'ztunnel-ts only: rejected local-file edits' },
  { path: /^\.dns$/, reason: 'ztunnel-ts only: the DNS proxy state (on/off, upstreams, open listeners; docs/dns.md)' },
];

export function isKnown(d: Difference): string | undefined {
  return KNOWN_DIFFERENCES.find((k) => k.path.test(d.path))?.reason;
}

function leafDiff(a: unknown, b: unknown, at: string, out: Difference[]): void {
  if (isObject(a) && isObject(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) leafDiff(a[k], b[k], `${at}.${k}`, out);
    return;
  }
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    // Order-free where the element is a plain value (VIPs, SANs, policy names).
    if (a.every((x) => !isObject(x) && !Array.isArray(x)) && b.every((x) => !isObject(x) && !Array.isArray(x))) {
      const sa = [...a].map(String).sort();
      const sb = [...b].map(String).sort();
      if (sa.join('\u0000') !== sb.join('\u0000')) out.push({ path: at, ts: a, istio: b });
      return;
    }
    a.forEach((x, i) => leafDiff(x, b[i], `${at}[${i}]`, out));
    return;
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push({ path: at, ts: a, istio: b });
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function byKey(list: unknown, key: (x: Record<string, unknown>) => string): Map<string, Record<string, unknown>> {
  const m = new Map<string, Record<string, unknown>>();
  if (Array.isArray(list)) for (const x of list) if (isObject(x)) m.set(key(x), x);
  return m;
}

/** Certificates reduced to what two implementations with their own keys must share. */
function certShape(c: Record<string, unknown>): Record<string, unknown> {
  const chain = Array.isArray(c['certChain']) ? (c['certChain'] as Record<string, unknown>[]) : [];
  const roots = Array.isArray(c['rootCerts']) ? (c['rootCerts'] as Record<string, unknown>[]) : [];
  return {
    state: c['state'],
    chainLength: chain.length,
    chainKeys: chain.map((x) => Object.keys(x).sort().join(',')),
    serialsDecimal: chain.every((x) => /^\d+$/.test(String(x['serialNumber']))),
    // The same istiod root: equal PEMs (base64 of the PEM text; compared decoded, whitespace-free).
    roots: roots.map((x) => Buffer.from(String(x['pem']), 'base64').toString('utf8').replace(/\s+/g, '')),
    rootSerials: roots.map((x) => x['serialNumber']),
  };
}

/** Every difference between ztunnel-ts' dump (`ts`) and Istio's ztunnel's (`istio`). */
export function compareDumps(ts: Record<string, unknown>, istio: Record<string, unknown>): Difference[] {
  const out: Difference[] = [];
  for (const k of new Set([...Object.keys(ts), ...Object.keys(istio)])) {
    if (!(k in ts) || !(k in istio)) out.push({ path: `.${k}`, ts: k in ts ? '(present)' : undefined, istio: k in istio ? '(present)' : undefined });
  }
  const lists: [string, (x: Record<string, unknown>) => string][] = [
    ['workloads', (w) => String(w['uid'])],
    ['services', (s) => `${String(s['namespace'])}/${String(s['hostname'])}`],
    ['policies', (p) => `${String(p['namespace'])}/${String(p['name'])}`],
  ];
  for (const [k, key] of lists) {
    const a = byKey(ts[k], key);
    const b = byKey(istio[k], key);
    for (const name of new Set([...a.keys(), ...b.keys()])) leafDiff(a.get(name), b.get(name), `.${k}[${name}]`, out);
  }
  leafDiff(ts['stagedServices'], istio['stagedServices'], '.stagedServices', out);
  leafDiff(ts['staticConfig'], istio['staticConfig'], '.staticConfig', out);
  const ca = byKey(ts['certificates'], (c) => String(c['identity']));
  const cb = byKey(istio['certificates'], (c) => String(c['identity']));
  for (const id of new Set([...ca.keys(), ...cb.keys()])) {
    const x = ca.get(id);
    const y = cb.get(id);
    leafDiff(x ? certShape(x) : undefined, y ? certShape(y) : undefined, `.certificates[${id}]`, out);
  }
  if (isObject(ts['config']) && isObject(istio['config'])) out.push({ path: '.config', ts: '(ztunnel-ts settings)', istio: '(Istio settings)' });
  if (isObject(ts['version']) && isObject(istio['version'])) leafDiff(ts['version'], istio['version'], '.version', out);
  return out;
}
