// Connects in ztunnel's own netns without mark or transparent source go through node:net (the
// fast path of LinuxSocketFactory.connect), with them through a socket the addon creates at once;
// these check both keep the factory's contract.
import t from 'tap';
import net, { type AddressInfo, type Socket } from 'node:net';
import { once } from 'node:events';
import { loadNativeAddon } from './native-addon.js';
import { LinuxSocketFactory, SOCKOPT } from './linux-socket-factory.js';

const loaded = loadNativeAddon();
if (!loaded.ok) {
  t.fail(`native addon unavailable (build it with npm run build:native): ${loaded.error.message}`);
} else {
  const addon = loaded.value;
  const f = new LinuxSocketFactory(addon);
  const fdOf = (s: Socket): number => (s as unknown as { _handle: { fd: number } })._handle.fd;
  const readAll = async (s: Socket): Promise<string> => {
    let got = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (got += d));
    await once(s, 'end');
    return got;
  };

  t.test('a dialed socket in the own netns is connected, half-open capable, no-delay and keeps alive as asked', async (t) => {
    const server = net.createServer({ allowHalfOpen: true }, (c) => c.end('hello'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.teardown(() => server.close());
    const port = (server.address() as AddressInfo).port;
    const s = await f.connect({
      host: '127.0.0.1',
      port,
      timeoutMs: 5000,
      keepalive: { enabled: true, timeMs: 180_000, intervalMs: 180_000, retries: 9, userTimeout: true },
    });
    t.teardown(() => s.destroy());
    t.equal(s.allowHalfOpen, true, 'allowHalfOpen');
    const fd = fdOf(s);
    t.equal(addon.getSockOptInt(fd, SOCKOPT.IPPROTO_TCP, SOCKOPT.TCP_NODELAY), 1, 'TCP_NODELAY');
    t.equal(addon.getSockOptInt(fd, SOCKOPT.SOL_SOCKET, SOCKOPT.SO_KEEPALIVE), 1, 'SO_KEEPALIVE');
    t.equal(addon.getSockOptInt(fd, SOCKOPT.IPPROTO_TCP, SOCKOPT.TCP_KEEPINTVL), 180, 'interval 180 s');
    t.equal(addon.getSockOptInt(fd, SOCKOPT.IPPROTO_TCP, SOCKOPT.TCP_KEEPCNT), 9, '9 probes');
    t.equal(addon.getSockOptInt(fd, SOCKOPT.IPPROTO_TCP, SOCKOPT.TCP_USER_TIMEOUT), 1_800_000, 'user timeout');
    t.equal(await readAll(s), 'hello', 'bytes from the server arrive');
  });

  t.test('a dial in the own netns to a closed port rejects with ECONNREFUSED', async (t) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((r) => server.close(() => r()));
    await t.rejects(f.connect({ host: '127.0.0.1', port, timeoutMs: 5000 }), { code: 'ECONNREFUSED', syscall: 'connect' });
  });

  t.test('a dial with tos carries it (IP_TOS = DSCP << 2) from the connect on', async (t) => {
    const server = net.createServer((c) => c.end());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.teardown(() => server.close());
    const s = await f.connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, tos: 23 << 2, timeoutMs: 5000 });
    t.teardown(() => s.destroy());
    t.equal(addon.getSockOptInt(fdOf(s), SOCKOPT.SOL_IP, SOCKOPT.IP_TOS), 92, 'DSCP 23 in the DS field');
  });

  t.test('a marked dial from a chosen source in the own netns (the addon socket path) carries the mark, the source and the bytes', async (t) => {
    const server = net.createServer((c) => c.end(`from ${c.remoteAddress}`));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.teardown(() => server.close());
    const s = await f.connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, mark: 1337, sourceIp: '127.0.0.7', transparentSource: true, timeoutMs: 5000 });
    t.teardown(() => s.destroy());
    t.equal(addon.getSockOptInt(fdOf(s), SOCKOPT.SOL_SOCKET, SOCKOPT.SO_MARK), 1337, 'SO_MARK');
    t.equal(addon.getSockOptInt(fdOf(s), SOCKOPT.IPPROTO_TCP, SOCKOPT.TCP_NODELAY), 1, 'TCP_NODELAY');
    t.equal(await readAll(s), 'from 127.0.0.7', 'the server saw the chosen source');
  });

  t.test('a marked UDP socket in the own netns sends from its bound port', async (t) => {
    const u = await f.udpSocket({ family: 4, mark: 1337, bind: { host: '127.0.0.1', port: 0 } });
    t.teardown(() => u.close());
    const peer = await f.udpSocket({ family: 4, bind: { host: '127.0.0.1', port: 0 } });
    t.teardown(() => peer.close());
    const got = once(peer, 'message');
    u.send('ping', peer.address().port, '127.0.0.1');
    const [msg, rinfo] = (await got) as [Buffer, { port: number }];
    t.equal(msg.toString(), 'ping');
    t.equal(rinfo.port, u.address().port);
  });

  t.test('a dial in the own netns with an aborted signal rejects at once', async (t) => {
    const ac = new AbortController();
    ac.abort();
    await t.rejects(f.connect({ host: '127.0.0.1', port: 9, timeoutMs: 5000, signal: ac.signal }));
  });
}
