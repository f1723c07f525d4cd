// A plain TCP relay for the interop suite: `node tcp-relay.js <listen ip:port> <target ip:port>`.
// Started and killed by the test to cut ztunnel-ts off istiod (and let it back) without touching
// istiod, whose state lives only in memory. Not a test file.
import net from 'node:net';

const [listen, target] = process.argv.slice(2);
const split = (s: string | undefined) => {
  const i = (s ?? '').lastIndexOf(':');
  return { host: (s ?? '').slice(0, i), port: Number((s ?? '').slice(i + 1)) };
};
const l = split(listen);
const dst = split(target);
net.createServer((c) => {
  const u = net.connect(dst.port, dst.host);
  c.on('error', () => u.destroy());
  u.on('error', () => c.destroy());
  c.pipe(u).pipe(c);
}).listen(l.port, l.host, () => console.log(`relay ${listen} -> ${target}`));
