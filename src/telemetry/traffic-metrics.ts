// Istio's TCP traffic metrics with the exact label set and order of telemetry.md §3, plus
// istio_build. Registered on the registry created in app.ts (the only process-wide object).
import { Counter, Gauge, collectDefaultMetrics, type Registry } from 'prom-client';
import type { ResponseFlag } from '../core/errors.js';
import { formatIdentity } from '../core/spiffe.js';
import type { ConnectionDescription, PeerInfo, TrafficMetricsSink } from './connection-record.js';
import { reporterOf } from './connection-record.js';

const BASE_LABELS = [
  'reporter',
  'source_workload', 'source_canonical_service', 'source_canonical_revision', 'source_workload_namespace',
  'source_principal', 'source_app', 'source_version', 'source_cluster',
  'destination_service', 'destination_service_namespace', 'destination_service_name',
  'destination_workload', 'destination_canonical_service', 'destination_canonical_revision',
  'destination_workload_namespace', 'destination_principal', 'destination_app', 'destination_version',
  'destination_cluster', 'request_protocol', 'response_flags', 'connection_security_policy',
] as const;
const LOCALITY_LABELS = ['source_region', 'source_zone', 'destination_region', 'destination_zone'] as const;
export const TRAFFIC_LABELS = [...BASE_LABELS, ...LOCALITY_LABELS] as const;

type Labels = Record<(typeof TRAFFIC_LABELS)[number], string>;

const u = (v: string | undefined) => (v ? v : 'unknown');

/** Label values per telemetry.md §3; `unknown` for anything missing. */
export function trafficLabels(d: ConnectionDescription, flag: ResponseFlag): Labels {
  const src: PeerInfo | undefined = d.source;
  const dst: PeerInfo | undefined = d.destination;
  const labels: Labels = {
    reporter: reporterOf(d),
    source_workload: u(src?.workloadName),
    source_canonical_service: u(src?.canonicalName),
    source_canonical_revision: u(src?.canonicalRevision),
    source_workload_namespace: u(src?.namespace),
    source_principal: d.srcIdentity ? formatIdentity(d.srcIdentity) : 'unknown',
    source_app: u(src?.app ?? src?.canonicalName),
    source_version: u(src?.canonicalRevision),
    source_cluster: u(src?.clusterId),
    destination_service: u(d.service?.hostname),
    destination_service_namespace: u(d.service?.namespace),
    destination_service_name: u(d.service?.name),
    destination_workload: u(dst?.workloadName),
    destination_canonical_service: u(dst?.canonicalName),
    destination_canonical_revision: u(dst?.canonicalRevision),
    destination_workload_namespace: u(dst?.namespace),
    destination_principal: d.dstIdentity ? formatIdentity(d.dstIdentity) : 'unknown',
    destination_app: u(dst?.app ?? dst?.canonicalName),
    destination_version: u(dst?.canonicalRevision),
    destination_cluster: u(dst?.clusterId),
    request_protocol: 'tcp',
    response_flags: flag,
    connection_security_policy: d.mtls ? 'mutual_tls' : 'unknown',
    source_region: u(src?.region),
    source_zone: u(src?.zone),
    destination_region: u(dst?.region),
    destination_zone: u(dst?.zone),
  };
  // Locality labels exist only once a source or destination workload is known (telemetry.md §3).
  if (!src && !dst) for (const k of LOCALITY_LABELS) delete (labels as Partial<Labels>)[k];
  return labels;
}

/** One time series of the five per-connection counters; shared by every connection with its labels. */
interface Series {
  readonly labels: Labels;
  opened: number;
  closed: number;
  failed: number;
  rx: number;
  tx: number;
}

/** Entries of the per-connection series lookup (by the ids of a description's parts) before it starts over. */
const SERIES_BY_PARTS_MAX = 10_000;

const seriesKey = (l: Labels): string => {
  let k = '';
  for (const name of TRAFFIC_LABELS) k += `${l[name] ?? '\u0001'}\u0000`;
  return k;
};

export function createTrafficMetrics(registry: Registry, opts: { istioVersion: string; processMetrics?: boolean; build?: boolean }): TrafficMetricsSink {
  // Issue 7 (connection rate and memory): prom-client hashes all 27 labels on every inc(), and a
  // label object per connection costs ~0.5 KB while it is open. So connections count into a
  // Series shared by every connection with the same labels, and the counters are brought up to
  // date only when a scrape reads them (prom-client calls `collect` before reading a metric).
  const collect = () => flush();
  const mk = (name: string, help: string) =>
    new Counter({ name, help, labelNames: TRAFFIC_LABELS, registers: [registry], collect });
  const opened = mk('istio_tcp_connections_opened', 'The total number of TCP connections opened.');
  const closed = mk('istio_tcp_connections_closed', 'The total number of TCP connections closed.');
  const received = mk('istio_tcp_received_bytes', 'The size of total bytes received during request in case of a TCP connection.');
  const sent = mk('istio_tcp_sent_bytes', 'The size of total bytes sent during response in case of a TCP connection.');
  const failed = mk('istio_tcp_connections_failed', 'The total number of TCP connections that failed to establish (unstable).');
  const socketsOpen = new Gauge({ name: 'istio_tcp_sockets_open', help: 'The current number of open TCP sockets (unstable).', labelNames: ['reporter'], registers: [registry], collect });
  // Once per process: data-plane workers (docs/workers.md) count traffic only.
  if (opts.build !== false) {
    const build = new Gauge({ name: 'istio_build', help: 'Istio component build info.', labelNames: ['component', 'tag'], registers: [registry] });
    build.set({ component: 'ztunnel', tag: opts.istioVersion || 'unknown' }, 1);
  }
  if (opts.processMetrics !== false) collectDefaultMetrics({ register: registry });
  const sockets = new Map<string, number>();

  const series = new Map<string, Series>();
  /** Series with counts not yet moved into the counters. */
  const pending = new Set<Series>();
  /** The '-' (no failure) series of each open connection, so bytes need no label work. */
  const ofConnection = new WeakMap<ConnectionDescription, Series>();
  const seriesFor = (labels: Labels): Series => {
    const key = seriesKey(labels);
    let s = series.get(key);
    if (!s) series.set(key, (s = { labels, opened: 0, closed: 0, failed: 0, rx: 0, tx: 0 }));
    return s;
  };
  // The labels of a description follow from a few shared values (PeerInfo, ServiceInfo and
  // Identity objects are built once per workload, service or session and shared by their
  // connections), so the '-' series is found by those objects' ids: a short key instead of 27
  // labels and their ~400-character key per connection (issue 12). Bounded: a state churning
  // through workload values starts the cache over.
  const partIds = new WeakMap<object, number>();
  let nextPartId = 1;
  const idOf = (o: object | undefined): number => {
    if (o === undefined) return 0;
    let id = partIds.get(o);
    if (id === undefined) partIds.set(o, (id = nextPartId++));
    return id;
  };
  const byParts = new Map<string, Series>();
  const connectionSeries = (d: ConnectionDescription): Series => {
    let s = ofConnection.get(d);
    if (!s) {
      const key = `${d.direction}${d.mtls ? 1 : 0}:${idOf(d.source)}:${idOf(d.srcIdentity)}:${idOf(d.service)}:${idOf(d.destination)}:${idOf(d.dstIdentity)}`;
      s = byParts.get(key);
      if (!s) {
        if (byParts.size >= SERIES_BY_PARTS_MAX) byParts.clear();
        byParts.set(key, (s = seriesFor(trafficLabels(d, '-'))));
      }
      ofConnection.set(d, s);
    }
    return s;
  };
  function flush(): void {
    for (const s of pending) {
      if (s.opened) opened.inc(s.labels, s.opened);
      if (s.closed) closed.inc(s.labels, s.closed);
      if (s.failed) failed.inc(s.labels, s.failed);
      if (s.rx) received.inc(s.labels, s.rx);
      if (s.tx) sent.inc(s.labels, s.tx);
      s.opened = s.closed = s.failed = s.rx = s.tx = 0;
    }
    pending.clear();
    for (const [reporter, n] of sockets) socketsOpen.set({ reporter }, n);
  }
  return {
    opened: (d) => {
      const s = connectionSeries(d);
      s.opened++;
      pending.add(s);
    },
    bytes: (d, dir, n) => {
      const s = connectionSeries(d);
      if (dir === 'clientToServer') s.rx += n;
      else s.tx += n;
      pending.add(s);
    },
    closed: (d, flag) => {
      const s = flag === '-' ? connectionSeries(d) : seriesFor(trafficLabels(d, flag));
      s.closed++;
      if (flag !== '-') s.failed++;
      pending.add(s);
      ofConnection.delete(d);
    },
    socketsOpen: (reporter, delta) => sockets.set(reporter, (sockets.get(reporter) ?? 0) + delta),
  };
}
