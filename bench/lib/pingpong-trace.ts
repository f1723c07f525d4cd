// `--vs-istio --pingpong-trace DIR`: which daemon events the slowest round trips of the ping-pong
// overlapped. The load client gives each round trip's start (wall clock) and duration; the
// ztunnel-ts daemons ran with thread-events-preload.ts, which logged every GC and memory call
// per thread. A round trip "overlaps" an event when their intervals intersect.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { percentileSorted } from './stats.js';

export interface ThreadEvent {
  /** Epoch ms at the start. */
  t: number;
  /** Duration, ms. */
  d: number;
  /** scavenge, mark-compact, …, malloc_trim, low-memory */
  k: string;
  /** Which daemon and thread (e.g. `A/0`: daemon A's main thread; `A/1`+ its workers). */
  where: string;
}

/** Every event a daemon's threads logged into `dir` (thread-events-preload.ts); [] when none. */
export function readThreadEvents(dir: string, side: string): ThreadEvent[] {
  if (!existsSync(dir)) return [];
  const out: ThreadEvent[] = [];
  for (const f of readdirSync(dir)) {
    const m = /^events-\d+-(\d+)\.jsonl$/.exec(f);
    if (!m) continue;
    for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      if (!line) continue;
      const e = JSON.parse(line) as Omit<ThreadEvent, 'where'>;
      out.push({ ...e, where: `${side}/${m[1]}` });
    }
  }
  return out.sort((a, b) => a.t - b.t);
}

export interface TraceSummary {
  samples: number;
  p50Us: number;
  p99Us: number;
  /** Round trips at or above p99. */
  slow: number;
  /** Of the slow round trips, how many overlapped an event of each class (a round trip counts once per class). */
  slowOverlapping: Record<string, number>;
  /** Of all round trips, the share overlapping an event of each class (the base rate). */
  allOverlappingShare: Record<string, number>;
  /** Slow round trips that overlapped no logged event. */
  slowUnexplained: number;
  /** Events during the measured round trips, by class: count and total / max ms. */
  events: Record<string, { n: number; totalMs: number; maxMs: number }>;
}

/** `A scavenge`, `B malloc_trim`, …: the daemon and the event kind (thread left out). */
const classOf = (e: ThreadEvent) => `${e.where.split('/')[0]} ${e.k}${e.where.endsWith('/0') ? ' (main)' : ''}`;

export function summarizeTrace(samplesUs: readonly number[], sentAtMs: readonly number[], events: readonly ThreadEvent[]): TraceSummary {
  const sorted = Float64Array.from(samplesUs).sort();
  const p99 = percentileSorted(sorted, 99);
  const p50 = percentileSorted(sorted, 50);
  const first = sentAtMs[0] ?? 0;
  const last = (sentAtMs[sentAtMs.length - 1] ?? 0) + (samplesUs[samplesUs.length - 1] ?? 0) / 1000;
  const inWindow = events.filter((e) => e.t + e.d >= first && e.t <= last);
  const evs: TraceSummary['events'] = {};
  for (const e of inWindow) {
    const c = (evs[classOf(e)] ??= { n: 0, totalMs: 0, maxMs: 0 });
    c.n++;
    c.totalMs += e.d;
    c.maxMs = Math.max(c.maxMs, e.d);
  }
  const slowOverlapping: Record<string, number> = {};
  const allOverlapping: Record<string, number> = {};
  let slow = 0;
  let slowUnexplained = 0;
  // Both lists are in time order: walk the events with a moving start index.
  let j = 0;
  for (let i = 0; i < sentAtMs.length; i++) {
    const s = sentAtMs[i]!;
    const end = s + samplesUs[i]! / 1000;
    while (j < inWindow.length && inWindow[j]!.t + inWindow[j]!.d < s - 1000) j++;
    const hit = new Set<string>();
    for (let k = j; k < inWindow.length && inWindow[k]!.t <= end; k++) {
      const e = inWindow[k]!;
      if (e.t + e.d >= s) hit.add(classOf(e));
    }
    for (const c of hit) allOverlapping[c] = (allOverlapping[c] ?? 0) + 1;
    if (samplesUs[i]! >= p99) {
      slow++;
      if (!hit.size) slowUnexplained++;
      for (const c of hit) slowOverlapping[c] = (slowOverlapping[c] ?? 0) + 1;
    }
  }
  const allOverlappingShare: Record<string, number> = {};
  for (const [c, n] of Object.entries(allOverlapping)) allOverlappingShare[c] = n / sentAtMs.length;
  return { samples: samplesUs.length, p50Us: p50, p99Us: p99, slow, slowOverlapping, allOverlappingShare, slowUnexplained, events: evs };
}

export function formatTraceSummary(s: TraceSummary): string {
  const over = Object.entries(s.slowOverlapping)
    .sort((a, b) => b[1] - a[1])
    .map(([c, n]) => `${c} ${n} (${(100 * (s.allOverlappingShare[c] ?? 0)).toFixed(2)}% of all)`);
  const evs = Object.entries(s.events)
    .sort((a, b) => b[1].totalMs - a[1].totalMs)
    .map(([c, e]) => `${c} ×${e.n} ${e.totalMs.toFixed(1)} ms (max ${e.maxMs.toFixed(2)})`);
  return (
    `${s.samples} round trips, p50 ${s.p50Us.toFixed(0)} µs, p99 ${s.p99Us.toFixed(0)} µs; of the ${s.slow} at or above p99: ` +
    `${over.join(', ') || 'none overlapped an event'}; ${s.slowUnexplained} overlapped none. Events meanwhile: ${evs.join(', ') || 'none'}`
  );
}
