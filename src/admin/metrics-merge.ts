// /metrics across threads (docs/workers.md): the main thread's registry plus the traffic metrics of
// every data-plane worker, read when the scrape arrives (exact at that moment) and summed per
// series. The main thread's exposition is kept as it is; only the families the workers report
// (istio_tcp_*, istio_crl_*) are replaced by their sums over the main thread and every worker.
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client';

export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

export async function mergedMetrics(main: Registry, others: readonly MetricsJson[]): Promise<string> {
  const text = await main.metrics();
  const summed = new Set<string>();
  for (const list of others) for (const f of list) summed.add(f.name);
  if (summed.size === 0) return text;
  const own = ((await main.getMetricsAsJSON()) as MetricsJson).filter((f) => summed.has(f.name));
  const sum = (l: MetricsJson) => l.map((f) => ({ ...f, aggregator: 'sum' as const }));
  // prom-client's typings omit aggregate()'s second argument (the content type) its runtime takes.
  const aggregate = AggregatorRegistry.aggregate as unknown as (m: MetricsJson[], contentType: string) => Registry;
  const merged = families(await aggregate([sum(own), ...others.map(sum)], main.contentType).metrics());
  const out: string[] = [];
  for (const [name, block] of families(text)) {
    out.push(merged.get(name) ?? block);
    merged.delete(name);
  }
  // Families only the workers have go before the end marker.
  const eof = out.length && out[out.length - 1]!.startsWith('# EOF') ? out.pop() : undefined;
  out.push(...merged.values());
  if (eof !== undefined) out.push(eof);
  return out.join('');
}

/** The exposition split into family blocks (from `# HELP name` to the next), keyed by name; `# EOF` last. */
function families(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let name = '';
  let block = '';
  const flush = () => {
    if (block) out.set(name, block);
    block = '';
  };
  for (const line of text.split(/(?<=\n)/)) {
    if (line.startsWith('# HELP ') || line.startsWith('# EOF')) {
      flush();
      name = line.startsWith('# EOF') ? '# EOF' : line.slice(7, line.indexOf(' ', 7));
    }
    block += line;
  }
  flush();
  return out;
}
