// Content negotiation of :15020 (telemetry.md §1).
import t from 'tap';
import { wantsOpenMetrics } from './metrics-server.js';

const rows: [string | undefined, boolean][] = [
  [undefined, false],
  ['', false],
  ['text/plain', false],
  ['*/*', false],
  ['application/openmetrics-text', true],
  ['application/openmetrics-text; version=1.0.0; charset=utf-8', true],
  ['APPLICATION/OpenMetrics-Text', true],
  ['text/plain;version=0.0.4;q=0.3,application/openmetrics-text;version=0.0.1;q=0.2,*/*;q=0.1', true],
  ['application/openmetrics-textx', false],
  ['text/plain; note=application/openmetrics-text', false],
];
for (const [accept, want] of rows) {
  t.test(`Accept ${JSON.stringify(accept)} → ${want ? 'OpenMetrics' : 'text/plain'} Content-Type`, async (t) => {
    t.equal(wantsOpenMetrics(accept), want);
  });
}
