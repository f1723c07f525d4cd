// Scrapes a daemon's :15020 with fetch and parses the body with a Prometheus text-format parser
// library (parse-prometheus-text-format), then gives tests samples by name and label set, and the
// difference between two scrapes so a test can assert exactly what one connection moved.
//
// The library reads the classic text format. ztunnel's body is OpenMetrics (telemetry.md §1): it
// tolerates the final `# EOF` (a comment to it), but an OpenMetrics counter family `# TYPE x counter`
// has samples named `x_total`, which the library files under a separate UNTYPED family `x_total`.
// `parseScrape` folds such a family back into its declared counter so types stay checkable.
import { createRequire } from 'node:module';

interface RawFamily {
  name: string;
  help: string;
  type: string;
  metrics: { value?: string; labels?: Record<string, string> }[];
}

const parsePrometheusText = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => RawFamily[];

export interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

export interface Scrape {
  readonly status: number;
  readonly contentType: string | null;
  readonly body: string;
  /** Declared type per family name (`counter`, `gauge`, ...), as in the `# TYPE` lines. */
  readonly types: Map<string, string>;
  readonly samples: Sample[];
}

export function parseScrape(body: string): Pick<Scrape, 'types' | 'samples'> {
  const families = parsePrometheusText(body);
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const f of families) {
    const counterBase = f.name.endsWith('_total') ? f.name.slice(0, -'_total'.length) : undefined;
    const folded = f.type === 'UNTYPED' && counterBase !== undefined && types.get(counterBase) === 'counter';
    if (!folded) types.set(f.name, f.type.toLowerCase());
    for (const m of f.metrics) samples.push({ name: f.name, labels: m.labels ?? {}, value: Number(m.value) });
  }
  return { types, samples };
}

export async function scrape(url: string, accept?: string): Promise<Scrape> {
  const res = await fetch(url, accept ? { headers: { accept } } : {});
  const body = await res.text();
  return { status: res.status, contentType: res.headers.get('content-type'), body, ...parseScrape(body) };
}

const key = (s: Pick<Sample, 'name' | 'labels'>) => `${s.name}${JSON.stringify(s.labels)}`;

/** Samples of `name` (optionally only those whose labels include `where`). */
export function samplesOf(s: Pick<Scrape, 'samples'>, name: string, where: Record<string, string> = {}): Sample[] {
  return s.samples.filter((x) => x.name === name && Object.entries(where).every(([k, v]) => x.labels[k] === v));
}

/**
 * Every sample whose value changed between two scrapes (new samples count from 0), restricted to
 * names matching `names`. Label objects keep the order in which they were emitted.
 */
export function delta(before: Pick<Scrape, 'samples'>, after: Pick<Scrape, 'samples'>, names: RegExp): Sample[] {
  const old = new Map(before.samples.map((s) => [key(s), s.value]));
  return after.samples
    .filter((s) => names.test(s.name))
    .map((s) => ({ name: s.name, labels: s.labels, value: s.value - (old.get(key(s)) ?? 0) }))
    .filter((s) => s.value !== 0);
}
