// The HELP lines of the istio_xds_*, workload_manager_* and traffic metrics are Istio ztunnel's
// texts with the period its Prometheus library appends to every help text: scrapers and dashboards
// that show help texts see the same words from both.
import { Registry } from 'prom-client';
import t from 'tap';
import { WorkloadProxyManager } from '../inpod/workload-proxy-manager.js';
import { createTrafficMetrics } from './traffic-metrics.js';
import { createXdsMetrics } from './xds-metrics.js';

const registry = new Registry();
createXdsMetrics(registry);
createTrafficMetrics(registry, { istioVersion: '1.0.0', processMetrics: false });
new WorkloadProxyManager({
  registry,
  readiness: { pending: () => {}, done: () => {} },
  logger: { info: () => {}, warn: () => {}, debug: () => {} },
} as never);
const text = await registry.metrics();
const help = new Map(
  text.split('\n').filter((l) => l.startsWith('# HELP ')).map((l) => {
    const rest = l.slice('# HELP '.length);
    const i = rest.indexOf(' ');
    return [rest.slice(0, i), rest.slice(i + 1)] as const;
  }),
);

const expected: [string, string][] = [
  ['istio_xds_connection_terminations', 'The total number of completed connections to xds server (unstable).'],
  ['istio_xds_message', 'Total number of messages received (unstable).'],
  ['istio_xds_message_bytes', 'Total number of bytes received (unstable).'],
  ['workload_manager_active_proxy_count', 'The total number current workloads with active proxies (unstable).'],
  ['workload_manager_pending_proxy_count', 'The total number current workloads with pending proxies (unstable).'],
  ['workload_manager_proxies_started', 'The total number of proxies that were started (unstable).'],
  ['workload_manager_proxies_stopped', 'The total number of proxies that were stopped (unstable).'],
  ['istio_tcp_connections_opened', 'The total number of TCP connections opened.'],
  ['istio_tcp_connections_closed', 'The total number of TCP connections closed.'],
  ['istio_tcp_received_bytes', 'The size of total bytes received during request in case of a TCP connection.'],
  ['istio_tcp_sent_bytes', 'The size of total bytes sent during response in case of a TCP connection.'],
  ['istio_tcp_connections_failed', 'The total number of TCP connections that failed to establish (unstable).'],
  ['istio_tcp_sockets_open', 'The current number of open TCP sockets (unstable).'],
  ['istio_build', 'Istio component build info.'],
];
for (const [name, want] of expected) {
  t.test(`# HELP ${name} is Istio's text`, async (t) => {
    t.equal(help.get(name), want);
  });
}
