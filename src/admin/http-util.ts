// Small shared pieces of the three HTTP/1.1 servers (admin, metrics, readiness).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BindAddr } from '../config/config.js';

export type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

export function send(res: ServerResponse, status: number, body = '', contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Starts an HTTP server; handler errors become 500s, never crashes. */
export async function startHttpServer(addr: BindAddr, handler: Handler): Promise<Server> {
  const server = createServer((req, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return send(res, 400, 'bad request\n');
    }
    Promise.resolve()
      .then(() => handler(req, res, url))
      .catch((e: unknown) => {
        if (!res.headersSent) send(res, 500, `${e instanceof Error ? e.message : String(e)}\n`);
        else res.destroy();
      });
  });
  const host = addr.host.startsWith('[') ? addr.host.slice(1, -1) : addr.host;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: addr.port, ipv6Only: false }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

export function boundPort(server: Server): number {
  return (server.address() as AddressInfo).port;
}
