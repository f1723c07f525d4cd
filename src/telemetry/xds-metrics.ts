// istio_xds_* metrics (telemetry.md §2), behind the small interface the ADS client reports to.
// Help texts are Istio ztunnel's, with the period its Prometheus library appends to every help text.
import { Counter, type Registry } from 'prom-client';

export interface XdsMetricsSink {
  connectionTerminated(reason: 'ConnectionError' | 'Error' | 'Reconnect' | 'Complete'): void;
  message(typeUrl: string, bytes: number): void;
}

export function createXdsMetrics(registry: Registry): XdsMetricsSink {
  const terminations = new Counter({ name: 'istio_xds_connection_terminations', help: 'The total number of completed connections to xds server (unstable).', labelNames: ['reason'], registers: [registry] });
  const messages = new Counter({ name: 'istio_xds_message', help: 'Total number of messages received (unstable).', labelNames: ['url'], registers: [registry] });
  const bytes = new Counter({ name: 'istio_xds_message_bytes', help: 'Total number of bytes received (unstable).', labelNames: ['url'], registers: [registry] });
  return {
    connectionTerminated: (reason) => terminations.inc({ reason }),
    message: (url, n) => {
      messages.inc({ url });
      bytes.inc({ url }, n);
    },
  };
}
