// ZdsClient against a test node agent on a real SOCK_SEQPACKET socket, with real pod netns fds
// passed by SCM_RIGHTS (capture.md §6). Root only (ip netns).
import t, { type Test } from 'tap';
import { fstatSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ZtunnelError } from '../../src/core/errors.js';
import { loadNativeAddon, type NativeAddon } from '../../src/platform/native-addon.js';
import { LinuxSocketFactory } from '../../src/platform/linux-socket-factory.js';
import { ZdsClient, type ZdsHandler } from '../../src/inpod/zds-client.js';
import { encodeWorkloadRequest, type WorkloadInfo, type WorkloadRequest } from '../../src/inpod/zds-messages.js';
import { createNetns, requireRoot } from './netns-fixture.js';
import { ZdsTestServer, type ZdsTestConnection } from './zds-test-server.js';
import { createLogger } from '../../src/telemetry/logger.js';

const INFO: WorkloadInfo = { name: 'productpage-v1-abc', namespace: 'bookinfo', serviceAccount: 'bookinfo-productpage' };

/** How many of this process's fds point at the netns with that inode. */
function fdsOpenOn(inode: number): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const st = fstatSync(Number(fd));
      if (st.ino === inode && readlinkSync(`/proc/self/fd/${fd}`).startsWith('/run/netns/')) n++;
    } catch {
      // closed meanwhile (the readdir fd itself)
    }
  }
  return n;
}

class RecordingHandler implements ZdsHandler {
  readonly calls: string[] = [];
  readonly fds: number[] = [];
  readonly failing = new Set<string>();
  constructor(private readonly addon: NativeAddon) {}
  async add(uid: string, info: WorkloadInfo, netnsFd: number): Promise<void> {
    this.calls.push(`add ${uid} ${info.namespace}/${info.name}/${info.serviceAccount}`);
    this.fds.push(netnsFd);
    if (this.failing.has(uid)) throw new Error(`proxy for ${uid} failed to start`);
  }
  async keep(uid: string): Promise<void> {
    this.calls.push(`keep ${uid}`);
  }
  async del(uid: string): Promise<void> {
    this.calls.push(`del ${uid}`);
  }
  async snapshotSent(): Promise<void> {
    this.calls.push('snapshot-sent');
  }
  closeFds(): void {
    for (const fd of this.fds.splice(0)) this.addon.closeFd(fd);
  }
}

interface Rig {
  server: ZdsTestServer;
  client: ZdsClient;
  handler: RecordingHandler;
  fatal: Promise<ZtunnelError>;
  disconnects: () => number;
  path: string;
  /** WARN and above, as logged by the client. */
  warnings: Array<Record<string, unknown>>;
  /** Resolves once `n` warnings were logged. */
  warned: (n: number) => Promise<void>;
}

/** A test agent on a fresh path and a started ZdsClient; everything is torn down after the test. */
function rig(t: Test, addon: NativeAddon, opts: { serverFirst?: boolean } = {}): Rig {
  const dir = mkdtempSync(join(tmpdir(), 'zt-zds-'));
  const path = join(dir, 'ztunnel.sock');
  const handler = new RecordingHandler(addon);
  let disconnects = 0;
  let onFatal!: (e: ZtunnelError) => void;
  const fatal = new Promise<ZtunnelError>((resolve) => (onFatal = resolve));
  const server = opts.serverFirst === false ? (null as unknown as ZdsTestServer) : ZdsTestServer.start(addon, path);
  const warnings: Array<Record<string, unknown>> = [];
  let waiters: Array<{ n: number; resolve: () => void }> = [];
  const logger = createLogger({
    level: 'warn',
    destination: {
      write(line: string) {
        warnings.push(JSON.parse(line) as Record<string, unknown>);
        waiters = waiters.filter((w) => (warnings.length >= w.n ? (w.resolve(), false) : true));
      },
    },
  });
  const warned = (n: number) => (warnings.length >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve })));
  const client = new ZdsClient({ addon, path, handler, onFatal, onDisconnected: () => disconnects++, logger });
  client.start();
  const r: Rig = { server, client, handler, fatal, disconnects: () => disconnects, path, warnings, warned };
  t.teardown(async () => {
    await client.stop();
    r.server?.close();
    handler.closeFds();
    rmSync(dir, { recursive: true, force: true });
  });
  return r;
}

if (requireRoot(t)) {
  const loaded = loadNativeAddon();
  if (!loaded.ok) {
    t.fail(`native addon unavailable: ${loaded.error.message}`);
  } else {
    const addon = loaded.value;

    t.test('snapshot (Add, Keep, SnapshotSent) then Add and Del: every request is ACKed in order and each pod netns arrives as its own fd', async (t) => {
      const ns1 = createNetns(t);
      const ns2 = createNetns(t);
      const { server, handler } = rig(t, addon);
      const conn = await server.accept();
      t.equal(conn.helloVersion, 1, 'ztunnel said hello V1 first');

      t.same(await conn.request({ kind: 'add', uid: 'uid-1', workloadInfo: INFO }, [ns1.fd]), { error: '' });
      t.same(await conn.request({ kind: 'keep', uid: 'uid-2' }), { error: '' });
      t.same(await conn.request({ kind: 'snapshotSent' }), { error: '' });
      t.same(await conn.request({ kind: 'add', uid: 'uid-3', workloadInfo: INFO }, [ns2.fd]), { error: '' });
      t.same(await conn.request({ kind: 'del', uid: 'uid-1' }), { error: '' });
      t.same(handler.calls, [
        'add uid-1 bookinfo/productpage-v1-abc/bookinfo-productpage',
        'keep uid-2',
        'snapshot-sent',
        'add uid-3 bookinfo/productpage-v1-abc/bookinfo-productpage',
        'del uid-1',
      ]);
      t.equal(addon.netnsInode(handler.fds[0]!), ns1.inode, 'the first Add carried pod 1 netns');
      t.equal(addon.netnsInode(handler.fds[1]!), ns2.inode, 'the second Add carried pod 2 netns');
      t.not(handler.fds[0], ns1.fd, 'as a new fd of our own');
      t.equal(conn.hasUnread(), false, 'ztunnel sent nothing but acks');

      const f = new LinuxSocketFactory(addon, { netnsFd: handler.fds[0]! });
      const { server: listener } = await f.listen({ host: '127.0.0.1', port: 0 });
      t.teardown(() => {
        listener.close();
      });
      const port = (listener.address() as { port: number }).port;
      t.match(ns1.exec('ss', ['-Hltn']), new RegExp(`127\\.0\\.0\\.1:${port}\\s`), 'a listener made from the received fd lives in pod 1');
    });

    t.test('an Add whose proxy fails is NACKed with the reason and the stream goes on', async (t) => {
      const ns = createNetns(t);
      const { server, handler, disconnects } = rig(t, addon);
      handler.failing.add('uid-bad');
      const conn = await server.accept();
      const nack = await conn.request({ kind: 'add', uid: 'uid-bad', workloadInfo: INFO }, [ns.fd]);
      t.match(nack.error, /proxy for uid-bad failed to start/);
      t.same(await conn.request({ kind: 'snapshotSent' }), { error: '' }, 'the next request is served on the same connection');
      t.equal(disconnects(), 0);
      t.equal(addon.netnsInode(handler.fds[0]!), ns.inode, 'the handler keeps the fd for its retry');
    });

    const violations: Array<[string, (conn: ZdsTestConnection, fd: number) => Promise<string>, boolean]> = [
      [
        'a Keep after the snapshot',
        async (conn) => {
          await conn.request({ kind: 'snapshotSent' });
          return (await conn.request({ kind: 'keep', uid: 'uid-1' })).error;
        },
        false,
      ],
      [
        'a second SnapshotSent',
        async (conn) => {
          await conn.request({ kind: 'snapshotSent' });
          return (await conn.request({ kind: 'snapshotSent' })).error;
        },
        false,
      ],
      ['an Add without workload_info', async (conn, fd) => (await conn.request({ kind: 'add', uid: 'uid-1', workloadInfo: null }, [fd])).error, true],
    ];
    for (const [name, act, sendsFd] of violations) {
      t.test(`${name} is NACKed, then reported as fatal and the connection is closed`, async (t) => {
        const ns = createNetns(t);
        const { server, fatal } = rig(t, addon);
        const conn = await server.accept();
        const error = await act(conn, ns.fd);
        t.not(error, '', `NACK: ${error}`);
        const e = await fatal;
        t.equal(e.code, 'ZDS_PROTOCOL', e.message);
        await conn.closedByPeer();
        if (sendsFd) t.equal(fdsOpenOn(ns.inode), 1, 'the received netns fd was closed (only ours is left)');
      });
    }

    const unreadable: Array<[string, (fd: number) => [Uint8Array, number[]]]> = [
      ['bytes that are not a WorkloadRequest', () => [Buffer.from('deadbeefcafe', 'hex'), []]],
      ['a request with no payload (the retired field 4)', () => [Buffer.from('2200', 'hex'), []]],
      ['an Add carrying two fds', (fd) => [encodeWorkloadRequest({ kind: 'add', uid: 'u', workloadInfo: INFO }), [fd, fd]]],
      ['an Add carrying no fd', () => [encodeWorkloadRequest({ kind: 'add', uid: 'u', workloadInfo: INFO }), []]],
      ['a Keep carrying an fd', (fd) => [encodeWorkloadRequest({ kind: 'keep', uid: 'u' }), [fd]]],
      ['a datagram longer than 1024 bytes', (fd) => [encodeWorkloadRequest({ kind: 'add', uid: 'u'.repeat(2000), workloadInfo: INFO }), [fd]]],
    ];
    for (const [name, make] of unreadable) {
      t.test(`${name} is NACKed, its fds are closed and the client reconnects with a new hello`, async (t) => {
        const ns = createNetns(t);
        const { server, handler, disconnects } = rig(t, addon);
        const conn = await server.accept();
        const [bytes, fds] = make(ns.fd);
        const ack = await conn.sendRaw(bytes, fds);
        t.not(ack.error, '', `NACK: ${ack.error}`);
        await conn.closedByPeer();
        t.equal(fdsOpenOn(ns.inode), 1, 'no received fd is left open');
        const again = await server.accept();
        t.equal(again.helloVersion, 1, 'reconnected and said hello again');
        t.equal(disconnects(), 1, 'readiness was told the stream ended');
        t.same(handler.calls, [], 'the handler saw nothing');
      });
    }

    t.test('when the agent closes the stream the client reconnects and takes a fresh snapshot', async (t) => {
      const { server, handler, disconnects } = rig(t, addon);
      const first = await server.accept();
      t.same(await first.request({ kind: 'snapshotSent' }), { error: '' });
      first.close();
      const second = await server.accept();
      t.equal(disconnects(), 1, 'onDisconnected ran before the reconnect');
      t.same(await second.request({ kind: 'keep', uid: 'uid-1' }), { error: '' }, 'a Keep is fine in the new snapshot');
      t.same(await second.request({ kind: 'snapshotSent' }), { error: '' }, 'so is a new SnapshotSent');
      t.same(handler.calls, ['snapshot-sent', 'keep uid-1', 'snapshot-sent']);
    });

    t.test('without the agent socket the client warns with its path and keeps retrying until the agent listens', async (t) => {
      const r = rig(t, addon, { serverFirst: false });
      await r.warned(2); // two attempts failed, each a WARN
      for (const w of r.warnings.slice(0, 2)) {
        t.equal(w['level'], 'warn');
        t.equal(w['path'], r.path, 'the WARN names the socket path');
        t.match(String(w['msg']), /failed to connect to the Istio CNI node agent .*retrying/);
        t.match(String(w['err']), /ENOENT/);
        t.type(w['retryInMs'], 'number');
      }
      r.server = ZdsTestServer.start(addon, r.path);
      const conn = await r.server.accept();
      t.equal(conn.helloVersion, 1);
      const req: WorkloadRequest = { kind: 'snapshotSent' };
      t.same(await conn.request(req), { error: '' });
    });

    t.test('stop() closes the connection and ends the client', async (t) => {
      const { server, client } = rig(t, addon);
      const conn = await server.accept();
      await client.stop();
      await conn.closedByPeer();
      t.pass('the agent saw the connection close');
    });
  }
}
