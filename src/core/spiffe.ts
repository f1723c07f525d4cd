// SPIFFE identities of the form spiffe://<trust_domain>/ns/<namespace>/sa/<service_account>
// (hbone.md §1 "Identities").

export interface Identity {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

const PREFIX = 'spiffe://';

// Frozen identities (one per workload, state/workload-identity.ts) are formatted once: every
// connection needs the URI for its pool key and metric labels (issue 7).
const formatted = new WeakMap<Identity, string>();

export function formatIdentity(id: Identity): string {
  let uri = formatted.get(id);
  if (uri === undefined) {
    uri = `${PREFIX}${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
    if (Object.isFrozen(id)) formatted.set(id, uri);
  }
  return uri;
}

/** Parses a SPIFFE URI; exactly 4 path segments `ns/<ns>/sa/<sa>` after the trust domain. */
export function parseIdentity(uri: string): Identity | null {
  if (!uri.startsWith(PREFIX)) return null;
  const parts = uri.slice(PREFIX.length).split('/');
  if (parts.length !== 5) return null;
  const [td, ns, nsv, sa, sav] = parts as [string, string, string, string, string];
  if (ns !== 'ns' || sa !== 'sa' || !nsv || !sav) return null;
  return { trustDomain: td, namespace: nsv, serviceAccount: sav };
}

export function identityEquals(a: Identity, b: Identity): boolean {
  return a.trustDomain === b.trustDomain && a.namespace === b.namespace && a.serviceAccount === b.serviceAccount;
}

/** Identity without the `spiffe://` prefix, as policy principals are written (policy.md §4). */
export function principalOf(id: Identity): string {
  return `${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

/**
 * Splits Node's `subjectaltname` text (e.g. `URI:spiffe://a/ns/b/sa/c, DNS:x`) into URI values.
 * Node quotes entries containing special characters (`URI:"spiffe://a,b"`) with JSON string
 * escaping; commas inside quotes do not split.
 */
export function uriSansFromNodeText(text: string | undefined): string[] {
  if (!text) return [];
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (text[i] === ' ' || text[i] === ',') i++;
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const kind = text.slice(i, colon);
    i = colon + 1;
    let value = '';
    if (text[i] === '"') {
      let j = i + 1;
      let raw = '"';
      while (j < text.length) {
        const ch = text[j]!;
        raw += ch;
        if (ch === '\\') { raw += text[j + 1] ?? ''; j += 2; continue; }
        j++;
        if (ch === '"') break;
      }
      try { value = JSON.parse(raw) as string; } catch { value = raw.slice(1, -1); }
      i = j;
    } else {
      const comma = text.indexOf(', ', i);
      const end = comma < 0 ? text.length : comma;
      value = text.slice(i, end);
      i = end;
    }
    if (kind === 'URI') out.push(value);
  }
  return out;
}

/** First URI SAN that parses as a SPIFFE identity (hbone.md §1). */
export function peerIdentityFromSanText(text: string | undefined): Identity | null {
  for (const uri of uriSansFromNodeText(text)) {
    const id = parseIdentity(uri);
    if (id) return id;
  }
  return null;
}
