// Admin server on localhost:15000 (telemetry.md §5): /config_dump, /logging, /quitquitquit,
// /debug/connections (ztunnel-ts), and an index at /. Read-only views, except level changes and
// the shutdown trigger.
import type { Server } from 'node:http';
import type { BindAddr } from '../config/config.js';
import { logSafe } from '../core/log-safe.js';
import { formatAddr } from '../core/net.js';
import { formatIdentity } from '../core/spiffe.js';
import type { LiveConnection } from '../telemetry/connection-record.js';
import type { LogControl } from '../telemetry/log-control.js';
import { buildConfigDump, type ConfigDumpSources } from './config-dump.js';
import { send, startHttpServer } from './http-util.js';

export interface AdminDeps {
  readonly dump: ConfigDumpSources;
  readonly logs: LogControl;
  /**
   * Starts the graceful drain (ports-and-modes.md §5) and resolves when the process is about to
   * stop. `reply` runs once the drain finished (bounded by the drain deadline) and before the
   * admin server closes its connections, so /quitquitquit can still answer.
   */
  readonly shutdown: (reply: () => Promise<void>) => Promise<void>;
  /** Live connections of every workload proxy, on every data-plane worker. */
  readonly connections: () => Promise<LiveConnection[]>;
  /**
   * Test-only (docs/workers.md): `POST /debug/crash-worker?worker=N` makes worker N fail with an
   * uncaught error. Present only when ZTUNNEL_TS_TEST_WORKER_CRASH=1 was set at start.
   */
  readonly crashWorker?: (worker: number) => boolean;
}

const INDEX = `<!doctype html><html><head><title>ztunnel-ts admin</title></head><body><h1>ztunnel-ts admin</h1><ul>
<li><a href="/config_dump">/config_dump</a>: workloads, services, policies, certificates, config</li>
<li>POST /logging[?level=&lt;level&gt;|&lt;scope&gt;=&lt;level&gt;,...][&amp;reset]: log levels</li>
<li><a href="/debug/connections">/debug/connections</a>: live connections (?format=json, ?workload=&lt;uid&gt;, ?direction=inbound|outbound)</li>
<li>POST /quitquitquit: graceful drain, then exit</li>
</ul></body></html>
`;

const LOGGING_HELP = `usage: POST /logging?level=<level> or ?level=<scope>=<level>,<scope>=<level> [&reset]
levels: error, warn, info, debug, trace, off
scopes: the components named in log lines (access, proxy, xds, ...)
`;

export function startAdminServer(addr: BindAddr, deps: AdminDeps): Promise<Server> {
  return startHttpServer(addr, async (req, res, url) => {
    switch (url.pathname) {
      case '/':
        return send(res, 200, INDEX, 'text/html; charset=utf-8');
      case '/config_dump':
        return send(res, 200, JSON.stringify(buildConfigDump(deps.dump, deps.dump.workloadState ? await deps.connections() : []), null, 2) + '\n', 'application/json');
      case '/logging': {
        if (req.method !== 'POST') return send(res, 405);
        if (url.searchParams.has('reset')) deps.logs.reset();
        const level = url.searchParams.get('level');
        if (level !== null && level !== '' && !deps.logs.apply(level)) return send(res, 400, `Invalid level provided: ${logSafe(level)}\n${LOGGING_HELP}`);
        return send(res, 200, `current log level is ${deps.logs.describe()}\n`);
      }
      case '/quitquitquit':
        if (req.method !== 'POST') return send(res, 405);
        // Answer after the drain, and wait until the answer is written: right after it the
        // servers close and the process exits.
        await deps.shutdown(
          () =>
            new Promise<void>((resolve) => {
              res.once('finish', resolve);
              res.once('close', resolve);
              send(res, 200, 'shutdown now\n');
            }),
        );
        return;
      case '/debug/connections':
        return connectionsTable(await deps.connections(), url, res);
      case '/debug/crash-worker': {
        if (!deps.crashWorker) return send(res, 404);
        if (req.method !== 'POST') return send(res, 405);
        const n = Number(url.searchParams.get('worker'));
        return deps.crashWorker(n) ? send(res, 200, `worker ${n} crashing\n`) : send(res, 400, 'no such worker\n');
      }
      default:
        return send(res, 404);
    }
  });
}

export interface ConnectionRow {
  id: number;
  direction: string;
  src: string;
  dst: string;
  hbone?: string;
  srcIdentity?: string;
  dstIdentity?: string;
  srcWorkload?: string;
  dstWorkload?: string;
  bytesSent: number;
  bytesRecv: number;
  ageMs: number;
  pod?: string;
  allowedBy?: string;
  /** The data-plane worker thread holding the connection (docs/workers.md). */
  worker?: number;
}

export function connectionRows(conns: LiveConnection[], now = Date.now()): ConnectionRow[] {
  return conns.map((c) => {
    const d = c.description;
    const out = d.direction === 'outbound';
    return {
      id: c.id,
      direction: d.direction,
      src: formatAddr(d.srcAddr),
      dst: formatAddr(d.dstAddr),
      ...(d.hboneAddr ? { hbone: d.hboneAddr } : {}),
      ...(d.srcIdentity ? { srcIdentity: formatIdentity(d.srcIdentity) } : {}),
      ...(d.mtls && d.dstIdentity ? { dstIdentity: formatIdentity(d.dstIdentity) } : {}),
      ...(d.source ? { srcWorkload: `${d.source.namespace}/${d.source.podName || d.source.canonicalName}` } : {}),
      ...(d.destination ? { dstWorkload: `${d.destination.namespace}/${d.destination.podName || d.destination.canonicalName}` } : {}),
      // reporter's viewpoint, as in the access log
      bytesSent: out ? c.clientToServerBytes : c.serverToClientBytes,
      bytesRecv: out ? c.serverToClientBytes : c.clientToServerBytes,
      ageMs: now - c.startedAtMs,
      ...(d.ownerUid ? { pod: d.ownerUid } : {}),
      ...(c.allowedBy ? { allowedBy: c.allowedBy } : {}),
      ...(c.worker !== undefined ? { worker: c.worker } : {}),
    };
  });
}

function connectionsTable(conns: LiveConnection[], url: URL, res: import('node:http').ServerResponse): void {
  const workload = url.searchParams.get('workload');
  const direction = url.searchParams.get('direction');
  let rows = connectionRows(conns);
  if (workload) rows = rows.filter((r) => r.pod === workload);
  if (direction) rows = rows.filter((r) => r.direction === direction);
  if (url.searchParams.get('format') === 'json') return send(res, 200, JSON.stringify(rows, null, 2) + '\n', 'application/json');
  const cols: (keyof ConnectionRow)[] = ['direction', 'src', 'dst', 'hbone', 'srcIdentity', 'dstIdentity', 'bytesSent', 'bytesRecv', 'ageMs', 'pod', 'allowedBy', 'worker'];
  const header = ['DIRECTION', 'SRC', 'DST', 'HBONE', 'SRC_IDENTITY', 'DST_IDENTITY', 'BYTES_SENT', 'BYTES_RECV', 'AGE', 'POD', 'ALLOWED_BY', 'WORKER'];
  const table = [header, ...rows.map((r) => cols.map((c) => (c === 'ageMs' ? `${Math.round(r.ageMs / 1000)}s` : String(r[c] ?? '-'))))];
  const widths = header.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  const text = table.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
  send(res, 200, text);
}
