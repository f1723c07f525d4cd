// LinuxSocketFactory against real network namespaces and iptables (capture.md §2-§5). Root only.
import t, { type Test } from 'tap';
import { once } from 'node:events';
import type { AddressInfo, Server, Socket } from 'node:net';
import { canonicalIp } from '../../src/core/net.js';
import { loadNativeAddon, type NativeAddon } from '../../src/platform/native-addon.js';
import { LinuxSocketFactory, SOCKOPT } from '../../src/platform/linux-socket-factory.js';
import type { KeepaliveOptions } from '../../src/platform/socket-factory.js';
import { createNetns, requireRoot, ruleCounter, type Netns } from './netns-fixture.js';

type T = Test;

const TIMEOUT_MS = 5000;

function fdOf(s: Socket | Server): number {
  return (s as unknown as { _handle: { fd: number } })._handle.fd;
}

function readN(s: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let len = 0;
    const cleanup = () => {
      s.off('data', onData);
      s.off('end', onEnd);
      s.off('error', reject);
    };
    const onData = (c: Buffer) => {
      chunks.push(c);
      len += c.length;
      if (len >= n) {
        cleanup();
        resolve(Buffer.concat(chunks));
      }
    };
    const onEnd = () => {
      cleanup();
      reject(new Error(`stream ended after ${len} of ${n} bytes`));
    };
    s.on('data', onData);
    s.once('end', onEnd);
    s.once('error', reject);
  });
}

/** Client says ping, server answers pong: bytes flow both ways over the adopted fds. */
async function exchange(t: T, client: Socket, accepted: Socket): Promise<void> {
  client.write('ping');
  t.equal((await readN(accepted, 4)).toString(), 'ping', 'server got the client bytes');
  accepted.write('pong');
  t.equal((await readN(client, 4)).toString(), 'pong', 'client got the server bytes');
}

async function listenIn(t: T, f: LinuxSocketFactory, host: string, extra: Partial<Parameters<LinuxSocketFactory['listen']>[0]> = {}) {
  const r = await f.listen({ host, port: 0, ...extra });
  t.teardown(() => new Promise<void>((resolve) => r.server.close(() => resolve())));
  const port = (r.server.address() as AddressInfo).port;
  return { ...r, port };
}

async function dial(t: T, f: LinuxSocketFactory, opts: Omit<Parameters<LinuxSocketFactory['connect']>[0], 'timeoutMs'> & { timeoutMs?: number }) {
  const s = await f.connect({ timeoutMs: TIMEOUT_MS, ...opts });
  t.teardown(() => {
    s.destroy();
  });
  return s;
}

async function accepted(t: T, server: Server): Promise<Socket> {
  const [s] = (await once(server, 'connection')) as [Socket];
  t.teardown(() => {
    s.destroy();
  });
  return s;
}

if (requireRoot(t)) {
  const loaded = loadNativeAddon();
  if (!loaded.ok) {
    t.fail(`native addon unavailable: ${loaded.error.message}`);
  } else {
    const addon: NativeAddon = loaded.value;
    const factoryIn = (ns: Netns) => new LinuxSocketFactory(addon, { netnsFd: ns.fd });

    t.test('shared-mode startup check: this process can setns and set SO_MARK', async (t) => {
      const r = await LinuxSocketFactory.checkCapabilities(addon);
      t.equal(r.ok, true, r.ok ? 'capabilities present' : r.error.message);
    });

    t.test('a listener made in a pod netns with SO_REUSEPORT lives there, shares its port and carries bytes to a socket dialed in that netns', async (t) => {
      const ns = createNetns(t);
      const f = factoryIn(ns);
      const { server, port, transparent } = await listenIn(t, f, '127.0.0.1', { reusePort: true });
      t.equal(transparent, false, 'not transparent unless asked');
      t.match(ns.exec('ss', ['-Hltn']), new RegExp(`127\\.0\\.0\\.1:${port}\\s`), 'ss inside the pod netns lists the listener');
      t.equal(addon.getSockOptInt(fdOf(server), SOCKOPT.SOL_SOCKET, SOCKOPT.SO_REUSEPORT), 1, 'SO_REUSEPORT is set');

      const twin = await f.listen({ host: '127.0.0.1', port, reusePort: true });
      t.pass('a second SO_REUSEPORT listener binds the same port (upgrade hand-over)');
      await new Promise<void>((resolve) => twin.server.close(() => resolve()));
      await t.rejects(f.listen({ host: '127.0.0.1', port }), { code: 'EADDRINUSE' }, 'without SO_REUSEPORT the port is taken');

      const next = accepted(t, server);
      const client = await dial(t, f, { host: '127.0.0.1', port });
      const conn = await next;
      t.equal(client.remotePort, port, 'the adopted client socket knows its peer');
      await exchange(t, client, conn);
      t.equal(addon.getSockOptInt(fdOf(client), SOCKOPT.IPPROTO_TCP, SOCKOPT.TCP_NODELAY), 1, 'dialed sockets have TCP_NODELAY');
      // No nat rules in this netns, so conntrack keeps no record: capture.md §3 step 3.
      t.equal(f.netfilterOriginalDst(conn), null, 'netfilter knows no original destination');
      t.same(f.originalDst(conn), { ip: '127.0.0.1', port }, 'the original destination falls back to the local address');

      client.end();
      await once(conn, 'end');
      conn.write('after-fin');
      t.equal((await readN(client, 9)).toString(), 'after-fin', 'half-close: the server can still answer after the client FIN');
    });

    for (const host of ['0.0.0.0', '::']) {
      t.test(`on a ${host} listener the original destination of an iptables-REDIRECTed IPv4 connection is the address the client dialed`, async (t) => {
        const ns = createNetns(t);
        ns.exec('ip', ['addr', 'add', '10.99.0.1/24', 'dev', 'lo']);
        const f = factoryIn(ns);
        const { server, port } = await listenIn(t, f, host);
        ns.exec('iptables', ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', '10.99.0.9', '--dport', '80', '-j', 'REDIRECT', '--to-ports', String(port)]);

        let next = accepted(t, server);
        const client = await dial(t, f, { host: '10.99.0.9', port: 80 });
        let conn = await next;
        t.same(f.originalDst(conn), { ip: '10.99.0.9', port: 80 }, 'SO_ORIGINAL_DST, canonical IPv4');
        t.same(f.netfilterOriginalDst(conn), { ip: '10.99.0.9', port: 80 });
        await exchange(t, client, conn);

        next = accepted(t, server);
        await dial(t, f, { host: '127.0.0.1', port });
        conn = await next;
        t.same(f.originalDst(conn), { ip: '127.0.0.1', port }, 'a direct connection: the address it was made to (::ffff: stripped)');
      });
    }

    t.test('the original destination of an ip6tables-REDIRECTed IPv6 connection is the address the client dialed', async (t) => {
      const ns = createNetns(t);
      ns.exec('ip', ['-6', 'addr', 'add', 'fd00:99::1/64', 'dev', 'lo', 'nodad']);
      const f = factoryIn(ns);
      const { server, port } = await listenIn(t, f, '::');
      try {
        ns.exec('ip6tables', ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', 'fd00:99::9', '--dport', '80', '-j', 'REDIRECT', '--to-ports', String(port)]);
      } catch (e) {
        t.comment(`ip6tables nat is not available here, IPv6 original destination NOT tested: ${(e as Error).message}`);
        t.plan(0, 'ip6tables nat unavailable');
        return;
      }
      const next = accepted(t, server);
      const client = await dial(t, f, { host: 'fd00:99::9', port: 80 });
      const conn = await next;
      t.same(f.originalDst(conn), { ip: 'fd00:99::9', port: 80 }, 'IP6T_SO_ORIGINAL_DST');
      await exchange(t, client, conn);
    });

    t.test('SO_MARK on a dialed socket is what iptables sees on its packets; unmarked sockets are not matched', async (t) => {
      const ns = createNetns(t);
      const f = factoryIn(ns);
      const { server, port } = await listenIn(t, f, '127.0.0.1');
      ns.exec('iptables', ['-t', 'mangle', '-A', 'OUTPUT', '-p', 'tcp', '-m', 'mark', '--mark', '0x539', '-m', 'comment', '--comment', 'zt-mark', '-j', 'RETURN']);

      let next = accepted(t, server);
      let client = await dial(t, f, { host: '127.0.0.1', port });
      await exchange(t, client, await next);
      t.equal(ruleCounter(ns, 'iptables', 'mangle', 'OUTPUT', 'zt-mark'), 0, 'no marked packets from an unmarked socket');

      next = accepted(t, server);
      client = await dial(t, f, { host: '127.0.0.1', port, mark: 0x539 });
      t.equal(addon.getSockOptInt(fdOf(client), SOCKOPT.SOL_SOCKET, SOCKOPT.SO_MARK), 0x539, 'getsockopt reads the mark back');
      await exchange(t, client, await next);
      t.ok(ruleCounter(ns, 'iptables', 'mangle', 'OUTPUT', 'zt-mark') >= 3, 'SYN, ACK and data of the marked socket matched --mark 0x539');
    });

    t.test('a transparent source connect reaches the server from a non-local client IP; without transparency that IP cannot be bound', async (t) => {
      const ns = createNetns(t);
      // 10.99.0.77 is not local; replies to it are routed back into the local stack via table 100,
      // as istio-cni does for ztunnel's spoofed connections (capture.md §1).
      ns.exec('ip', ['addr', 'add', '10.99.0.1/32', 'dev', 'lo']);
      ns.exec('ip', ['route', 'add', 'local', '10.99.0.77/32', 'dev', 'lo', 'table', '100']);
      ns.exec('ip', ['rule', 'add', 'to', '10.99.0.77', 'lookup', '100', 'priority', '100']);
      const f = factoryIn(ns);
      const { server, port, transparent } = await listenIn(t, f, '10.99.0.1', { transparent: 'force' });
      t.equal(transparent, true, 'forced IP_TRANSPARENT is in force on the listener');
      t.equal(addon.getSockOptInt(fdOf(server), SOCKOPT.SOL_IP, SOCKOPT.IP_TRANSPARENT), 1);

      await t.rejects(
        f.connect({ host: '10.99.0.1', port, sourceIp: '10.99.0.77', timeoutMs: TIMEOUT_MS }),
        { code: 'EADDRNOTAVAIL', syscall: 'bind' },
        'a plain bind to the client IP fails: it is not local',
      );

      const next = accepted(t, server);
      const client = await dial(t, f, { host: '10.99.0.1', port, sourceIp: '10.99.0.77', transparentSource: true });
      const conn = await next;
      t.equal(canonicalIp(conn.remoteAddress ?? ''), '10.99.0.77', 'the server sees the spoofed client IP as source');
      t.equal(client.localAddress, '10.99.0.77');
      await exchange(t, client, conn);
    });

    t.test('keepalive and user timeout of capture.md §5 are applied to dialed and accepted sockets', async (t) => {
      const ns = createNetns(t);
      const f = factoryIn(ns);
      const { server, port } = await listenIn(t, f, '127.0.0.1');
      const ka: KeepaliveOptions = { enabled: true, timeMs: 180_000, intervalMs: 180_000, retries: 9, userTimeout: true };
      const next = accepted(t, server);
      const client = await dial(t, f, { host: '127.0.0.1', port, keepalive: ka });
      const conn = await next;
      f.configureAccepted(conn, ka);
      for (const [name, s] of [['dialed', client], ['accepted', conn]] as const) {
        const fd = fdOf(s);
        t.equal(addon.getSockOptInt(fd, SOCKOPT.SOL_SOCKET, SOCKOPT.SO_KEEPALIVE), 1, `${name}: SO_KEEPALIVE`);
        t.equal(addon.getSockOptInt(fd, SOCKOPT.IPPROTO_TCP, SOCKOPT.TCP_KEEPIDLE), 180, `${name}: idle 180 s`);
        t.equal(addon.getSockOptInt(fd, SOCKOPT.IPPROTO_TCP, SOCKOPT.TCP_KEEPINTVL), 180, `${name}: interval 180 s`);
        t.equal(addon.getSockOptInt(fd, SOCKOPT.IPPROTO_TCP, SOCKOPT.TCP_KEEPCNT), 9, `${name}: 9 probes`);
        t.equal(addon.getSockOptInt(fd, SOCKOPT.IPPROTO_TCP, SOCKOPT.TCP_USER_TIMEOUT), 1_800_000, `${name}: user timeout 1800 s`);
        t.equal(addon.getSockOptInt(fd, SOCKOPT.IPPROTO_TCP, SOCKOPT.TCP_NODELAY), 1, `${name}: TCP_NODELAY`);
      }
      await exchange(t, client, conn);
    });

    t.test('a connect to a closed port in the pod netns rejects with ECONNREFUSED', async (t) => {
      const ns = createNetns(t);
      const f = factoryIn(ns);
      await t.rejects(f.connect({ host: '127.0.0.1', port: 9, timeoutMs: TIMEOUT_MS }), { code: 'ECONNREFUSED', syscall: 'connect', errno: -111 });
    });

    t.test('a connect whose SYN is dropped times out (or is aborted) while the event loop keeps running', async (t) => {
      const ns = createNetns(t);
      ns.exec('ip', ['addr', 'add', '10.99.0.1/32', 'dev', 'lo']);
      ns.exec('iptables', ['-A', 'OUTPUT', '-p', 'tcp', '-d', '10.99.0.1', '--dport', '9', '-j', 'DROP']);
      const f = factoryIn(ns);

      const pending = f.connect({ host: '10.99.0.1', port: 9, timeoutMs: 300 });
      let settled = false;
      let turns = 0;
      pending.then(() => (settled = true), () => (settled = true));
      const spin = () => {
        if (settled) return;
        turns++;
        setImmediate(spin);
      };
      spin();
      await t.rejects(pending, { code: 'ETIMEDOUT' });
      t.ok(turns > 1, `the event loop turned ${turns} times while the connect was pending`);

      const ac = new AbortController();
      const aborted = f.connect({ host: '10.99.0.1', port: 9, timeoutMs: 60_000, signal: ac.signal });
      setImmediate(() => ac.abort());
      await t.rejects(aborted, { name: 'AbortError' }, 'an abort signal ends the pending connect');
    });

    t.test('a socket created with the netns fd of another pod is isolated from the first pod', async (t) => {
      const a = createNetns(t);
      const b = createNetns(t);
      const { port } = await listenIn(t, factoryIn(a), '127.0.0.1');
      await t.rejects(factoryIn(b).connect({ host: '127.0.0.1', port, timeoutMs: TIMEOUT_MS }), { code: 'ECONNREFUSED' }, "pod B's loopback has no such listener");
      t.not(a.inode, b.inode, 'the two netns have different identities');
      t.equal(addon.netnsInode(a.fd), a.inode, 'netnsInode reads the identity from the fd');
    });
  }
}
