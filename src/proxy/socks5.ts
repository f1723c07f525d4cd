// SOCKS5 listener handler (15080, dedicated mode's traffic entry): negotiate, resolve the target,
// then hand the socket to the outbound proxy exactly as if it had been captured on 15001.
import { lookup } from 'node:dns/promises';
import type { Socket } from 'node:net';
import { canonicalIp, type SocketAddr } from '../core/net.js';
import { logConnectionFailed } from '../telemetry/connection-record.js';
import type { Logger } from '../telemetry/logger.js';
import { SOCKS_REPLY, parseGreeting, parseRequest, reply, type SocksTarget } from './socks5-protocol.js';

const MAX_HANDSHAKE_BYTES = 1024;
const HANDSHAKE_TIMEOUT_MS = 10_000;

export interface Socks5Deps {
  readonly logger: Logger;
  readonly outbound: { handle(downstream: Socket, dst: SocketAddr): Promise<void> };
  readonly resolve?: (host: string) => Promise<string>;
}

export class Socks5Handler {
  constructor(private readonly deps: Socks5Deps) {}

  async handle(socket: Socket): Promise<void> {
    if (socket.listenerCount('error') === 0) socket.on('error', ignoreError);
    const src: SocketAddr = { ip: canonicalIp(socket.remoteAddress ?? '') ?? '0.0.0.0', port: socket.remotePort ?? 0 };
    const fail = (message: string, dst: SocketAddr = { ip: '0.0.0.0', port: 0 }) => {
      logConnectionFailed(this.deps.logger, src, dst, 'outbound', new Error(`socks5: ${message}`));
      socket.destroy();
    };
    const target = await this.negotiate(socket).catch((e: Error) => e);
    if (target instanceof Error) return fail(target.message);
    let ip: string | null;
    if (target.kind === 'ip') ip = target.ip;
    else {
      try {
        ip = canonicalIp(await (this.deps.resolve ?? defaultResolve)(target.host));
      } catch (e) {
        socket.end(reply(SOCKS_REPLY.generalFailure));
        return fail(`cannot resolve ${target.host}: ${(e as Error).message}`);
      }
    }
    if (!ip) return fail('bad target address');
    // Success is answered before dialing: an upstream failure then closes the socket, as a
    // captured connection would see it (hbone.md §6 "Outbound failure before the tunnel is up").
    socket.write(reply(SOCKS_REPLY.succeeded));
    // Returned, not awaited: this frame is not kept alive for the connection's lifetime (issue 7).
    return this.deps.outbound.handle(socket, { ip, port: target.port });
  }

  private negotiate(socket: Socket): Promise<SocksTarget> {
    return new Promise((resolve, reject) => {
      let buf = Buffer.alloc(0);
      let stage: 'greeting' | 'request' = 'greeting';
      const timer = setTimeout(() => done(new Error('handshake timed out')), HANDSHAKE_TIMEOUT_MS);
      const done = (err: Error | null, target?: SocksTarget, rest?: Buffer) => {
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('end', onEnd);
        socket.pause();
        if (err) return reject(err);
        if (rest && rest.length) socket.unshift(rest);
        resolve(target!);
      };
      const onEnd = () => done(new Error('client closed during handshake'));
      const onData = (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length > MAX_HANDSHAKE_BYTES) return done(new Error('handshake too large'));
        if (stage === 'greeting') {
          const g = parseGreeting(buf);
          if (g.kind === 'more') return;
          if (g.kind === 'error') return done(new Error(g.message));
          if (!g.noAuthOffered) {
            socket.write(Buffer.from([0x05, 0xff]));
            return done(new Error('client did not offer method 0 (no authentication)'));
          }
          socket.write(Buffer.from([0x05, 0x00]));
          buf = buf.subarray(g.consumed);
          stage = 'request';
        }
        const r = parseRequest(buf);
        if (r.kind === 'more') return;
        if (r.kind === 'error') {
          socket.write(reply(r.reply));
          return done(new Error(r.message));
        }
        done(null, r.target, buf.subarray(r.consumed));
      };
      socket.on('data', onData);
      socket.on('end', onEnd);
    });
  }
}

/** Errors surface through the handshake, the relay and the connect results. */
function ignoreError(): void {}

async function defaultResolve(host: string): Promise<string> {
  const r = await lookup(host);
  return r.address;
}
