// :15021 GET /healthz/ready (ports-and-modes.md §4).
import type { Server } from 'node:http';
import type { BindAddr } from '../config/config.js';
import { send, startHttpServer } from './http-util.js';
import type { Readiness } from './readiness.js';

export function startReadinessServer(addr: BindAddr, readiness: Readiness): Promise<Server> {
  return startHttpServer(addr, (req, res, url) => {
    if (url.pathname !== '/healthz/ready') return send(res, 404);
    if (req.method !== 'GET') return send(res, 405);
    const pending = readiness.pending();
    if (pending.length === 0) return send(res, 200, 'ready\n');
    send(res, 500, `not ready, pending: ${pending.join(', ')}\n`);
  });
}
