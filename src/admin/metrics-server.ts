// :15020 /metrics and /stats/prometheus, always OpenMetrics text; Content-Type negotiated from
// Accept (telemetry.md §1).
import type { Server } from 'node:http';
import type { Registry } from 'prom-client';
import type { BindAddr } from '../config/config.js';
import { send, startHttpServer } from './http-util.js';

export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text;charset=utf-8;version=1.0.0';
export const TEXT_CONTENT_TYPE = 'text/plain; charset=utf-8';

export function wantsOpenMetrics(accept: string | undefined): boolean {
  if (!accept) return false;
  return accept.split(',').some((entry) => entry.split(';')[0]!.trim().toLowerCase() === 'application/openmetrics-text');
}

/** `render`: the exposition text; a Registry, or a function that gathers it (e.g. across workers). */
export function startMetricsServer(addr: BindAddr, render: Registry | (() => Promise<string>)): Promise<Server> {
  const text = typeof render === 'function' ? render : () => render.metrics();
  return startHttpServer(addr, async (req, res, url) => {
    if (url.pathname !== '/metrics' && url.pathname !== '/stats/prometheus') return send(res, 404);
    if (req.method !== 'GET') return send(res, 405);
    const body = await text();
    send(res, 200, body, wantsOpenMetrics(req.headers.accept) ? OPENMETRICS_CONTENT_TYPE : TEXT_CONTENT_TYPE);
  });
}
