// SOCKS5 listener handler (15080, dedicated mode's traffic entry): negotiate, resolve the target,
// then hand the socket to the outbound proxy exactly as if it had been captured on 15001.
import { lookup } from 'node:dns/promises';
import type { Socket } from 'node:net';
import { ZtunnelError, asZtunnelError } from '../core/errors.js';
import { canonicalIp, type SocketAddr } from '../core/net.js';
import { logConnectionFailed } from '../telemetry/connection-record.js';
import type { Logger } from '../telemetry/logger.js';
import { failureAnswer, parseGreeting, parseRequest, successReply, type SocksTarget } from './socks5-protocol.js';

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
    // Every failure answers the catalogue's byte for its code, is logged, and closes (docs/errors.md).
    const fail = (error: ZtunnelError, dst: SocketAddr = { ip: '0.0.0.0', port: 0 }) => {
      logConnectionFailed(this.deps.logger, src, dst, 'outbound', new ZtunnelError(error.code, `socks5: ${error.message}`, { cause: error.cause }));
      if (socket.writable) socket.end(failureAnswer(error));
      socket.destroySoon();
    };
    const target = await this.negotiate(socket).catch((e: unknown) => asZtunnelError(e, 'SOCKS_PROTOCOL'));
    if (target instanceof ZtunnelError) return fail(target);
    let ip: string | null;
    if (target.kind === 'ip') ip = target.ip;
    else {
      try {
        ip = canonicalIp(await (this.deps.resolve ?? defaultResolve)(target.host));
      } catch (e) {
        return fail(new ZtunnelError('SOCKS_RESOLVE', `cannot resolve ${target.host}: ${(e as Error).message}`, { cause: e }));
      }
      if (!ip) return fail(new ZtunnelError('SOCKS_RESOLVE', `${target.host} resolved to no usable address`));
    }
    // Success is answered before dialing: an upstream failure then closes the socket, as a
    // captured connection would see it (hbone.md §6 "Outbound failure before the tunnel is up").
    socket.write(successReply());
    // Returned, not awaited: this frame is not kept alive for the connection's lifetime (issue 7).
    return this.deps.outbound.handle(socket, { ip, port: target.port });
  }

  private negotiate(socket: Socket): Promise<SocksTarget> {
    return new Promise((resolve, reject) => {
      let buf = Buffer.alloc(0);
      let stage: 'greeting' | 'request' = 'greeting';
      const timer = setTimeout(() => done(new ZtunnelError('SOCKS_PROTOCOL', 'handshake timed out')), HANDSHAKE_TIMEOUT_MS);
      const done = (err: ZtunnelError | null, target?: SocksTarget, rest?: Buffer) => {
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('end', onEnd);
        socket.pause();
        if (err) return reject(err);
        if (rest && rest.length) socket.unshift(rest);
        resolve(target!);
      };
      const onEnd = () => done(new ZtunnelError('SOCKS_PROTOCOL', 'client closed during handshake'));
      const onData = (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length > MAX_HANDSHAKE_BYTES) return done(new ZtunnelError('SOCKS_PROTOCOL', 'handshake too large'));
        if (stage === 'greeting') {
          const g = parseGreeting(buf);
          if (g.kind === 'more') return;
          if (g.kind === 'error') return done(g.error);
          if (!g.noAuthOffered) return done(new ZtunnelError('SOCKS_AUTH', 'client did not offer method 0 (no authentication)'));
          socket.write(Buffer.from([0x05, 0x00]));
          buf = buf.subarray(g.consumed);
          stage = 'request';
        }
        const r = parseRequest(buf);
        if (r.kind === 'more') return;
        if (r.kind === 'error') return done(r.error);
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
