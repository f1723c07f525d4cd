// Small statistics helpers: medians of repetitions, percentiles of latency samples.

/** Median of the finite values; NaN when there are none. */
export function median(values: readonly number[]): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/**
 * Nearest-rank percentile (p in 0..100) of an ascending-sorted array: the smallest sample such that
 * at least p% of the samples are ≤ it.
 */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export interface LatencySummary {
  count: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  meanUs: number;
}

/** Summarises round-trip samples given in microseconds (sorts a copy). */
export function summarizeLatency(samplesUs: Float64Array): LatencySummary {
  const s = Float64Array.from(samplesUs).sort();
  let sum = 0;
  for (const x of s) sum += x;
  return {
    count: s.length,
    p50Us: percentileSorted(s, 50),
    p99Us: percentileSorted(s, 99),
    p999Us: percentileSorted(s, 99.9),
    maxUs: s.length ? s[s.length - 1]! : NaN,
    meanUs: s.length ? sum / s.length : NaN,
  };
}

/** Rounds to `digits` decimals, keeping NaN as null for JSON. */
export function round(x: number, digits = 2): number | null {
  if (!Number.isFinite(x)) return null;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
