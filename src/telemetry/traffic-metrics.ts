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

export function createTrafficMetrics(registry: Registry, opts: { istioVersion: string; processMetrics?: boolean }): TrafficMetricsSink {
  // Byte counts move per copied chunk; prom-client hashes the 27 labels on every inc(). So bytes
  // are added to a per-connection tally and moved into the counters when a scrape collects them
  // (prom-client calls `collect` before reading a metric) or when the connection closes (issue 7).
  const collect = () => flush();
  const mk = (name: string, help: string, flushOnCollect = false) =>
    new Counter({ name, help, labelNames: TRAFFIC_LABELS, registers: [registry], ...(flushOnCollect ? { collect } : {}) });
  const opened = mk('istio_tcp_connections_opened', 'The total number of TCP connections opened');
  const closed = mk('istio_tcp_connections_closed', 'The total number of TCP connections closed');
  const received = mk('istio_tcp_received_bytes', 'The size of total bytes received during request in case of a TCP connection', true);
  const sent = mk('istio_tcp_sent_bytes', 'The size of total bytes sent during response in case of a TCP connection', true);
  const failed = mk('istio_tcp_connections_failed', 'The total number of TCP connections that failed to establish (unstable)');
  const socketsOpen = new Gauge({ name: 'istio_tcp_sockets_open', help: 'The current number of open TCP sockets (unstable)', labelNames: ['reporter'], registers: [registry] });
  const build = new Gauge({ name: 'istio_build', help: 'Istio component build info', labelNames: ['component', 'tag'], registers: [registry] });
  build.set({ component: 'ztunnel', tag: opts.istioVersion || 'unknown' }, 1);
  if (opts.processMetrics !== false) collectDefaultMetrics({ register: registry });

  // Per connection description: its label object (built once) and the bytes not yet counted
  // (null: nothing pending in that direction).
  interface Tally { readonly labels: Labels; rx: number | null; tx: number | null }
  const tallies = new WeakMap<ConnectionDescription, Tally>();
  const pending = new Set<Tally>();
  const tallyOf = (d: ConnectionDescription): Tally => {
    let e = tallies.get(d);
    if (!e) tallies.set(d, (e = { labels: trafficLabels(d, '-'), rx: null, tx: null }));
    return e;
  };
  const flushOne = (e: Tally): void => {
    if (e.rx !== null) received.inc(e.labels, e.rx);
    if (e.tx !== null) sent.inc(e.labels, e.tx);
    e.rx = e.tx = null;
  };
  function flush(): void {
    for (const e of pending) flushOne(e);
    pending.clear();
  }
  return {
    opened: (d) => opened.inc(tallyOf(d).labels),
    bytes: (d, dir, n) => {
      const e = tallyOf(d);
      if (dir === 'clientToServer') e.rx = (e.rx ?? 0) + n;
      else e.tx = (e.tx ?? 0) + n;
      pending.add(e);
    },
    closed: (d, flag) => {
      const e = tallyOf(d);
      if (pending.delete(e)) flushOne(e);
      const l = flag === '-' ? e.labels : trafficLabels(d, flag);
      closed.inc(l);
      if (flag !== '-') failed.inc(l);
    },
    socketsOpen: (reporter, delta) => socketsOpen.inc({ reporter }, delta),
  };
}
