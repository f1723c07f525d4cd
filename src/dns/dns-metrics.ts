// The DNS proxy's metrics: Istio ztunnel's four (src/dns/metrics.rs: names, help texts, labels,
// histogram buckets), plus one ztunnel-ts counter for packets dropped before they became a request.
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Workload } from '../state/model.js';

const LABELS = ['request_query_type', 'request_protocol', 'source_canonical_service', 'source_canonical_revision'] as const;
type DnsLabels = Record<(typeof LABELS)[number], string>;

export type DnsProtocol = 'udp' | 'tcp';
export type DropReason = 'malformed' | 'oversized' | 'overloaded';

export interface DnsMetrics {
  /** Every request that reached the resolver (answered locally or forwarded). */
  request(type: string, protocol: DnsProtocol, source: Workload | undefined): void;
  forwarded(type: string, protocol: DnsProtocol, source: Workload | undefined): void;
  forwardFailed(type: string, protocol: DnsProtocol, source: Workload | undefined): void;
  forwardDuration(type: string, protocol: DnsProtocol, source: Workload | undefined, seconds: number): void;
  dropped(reason: DropReason, protocol: DnsProtocol): void;
}

const u = (v: string | undefined) => (v ? v : 'unknown');

function labelsOf(type: string, protocol: DnsProtocol, source: Workload | undefined): DnsLabels {
  return {
    request_query_type: type ? type.toLowerCase() : 'unknown',
    request_protocol: protocol,
    source_canonical_service: u(source?.canonicalName),
    source_canonical_revision: u(source?.canonicalRevision),
  };
}

/** Registers the DNS metrics on `registry` (once per process; every DNS listener shares them). */
export function createDnsMetrics(registry: Registry): DnsMetrics {
  const registers = [registry];
  const requests = new Counter({ name: 'istio_dns_requests', help: 'Total number of DNS requests (unstable)', labelNames: LABELS, registers });
  const upstream = new Counter({ name: 'istio_dns_upstream_requests', help: 'Total number of DNS requests forwarded to upstream (unstable)', labelNames: LABELS, registers });
  const failures = new Counter({ name: 'istio_dns_upstream_failures', help: 'Total number of DNS requests that failed to forward upstream (unstable)', labelNames: LABELS, registers });
  const duration = new Histogram({
    name: 'istio_dns_upstream_request_duration_seconds',
    help: 'Total time in seconds Istio takes to get DNS response from upstream (unstable)',
    labelNames: LABELS,
    buckets: [0.0005, 0.001, 0.01, 0.1, 1, 5],
    registers,
  });
  const dropped = new Counter({
    name: 'ztunnel_ts_dns_dropped_packets',
    help: 'DNS packets dropped without an answer: malformed, oversized, or over the in-flight limit (ztunnel-ts only)',
    labelNames: ['reason', 'request_protocol'],
    registers,
  });
  return {
    request: (t, p, s) => requests.inc(labelsOf(t, p, s)),
    forwarded: (t, p, s) => upstream.inc(labelsOf(t, p, s)),
    forwardFailed: (t, p, s) => failures.inc(labelsOf(t, p, s)),
    forwardDuration: (t, p, s, sec) => duration.observe(labelsOf(t, p, s), sec),
    dropped: (reason, protocol) => dropped.inc({ reason, request_protocol: protocol }),
  };
}
