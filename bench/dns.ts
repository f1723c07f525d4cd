// DNS proxy throughput: queries per second one ztunnel-ts process (one thread) answers, for a mesh
// name (answered from the state) and for a forwarded name (answered by a local upstream resolver).
// Closed loop: CONCURRENCY UDP sockets, each sending its next question when its answer arrives, for
// SECONDS per case. Bounded: about 2 × SECONDS + start-up. Numbers are machine-dependent; the load
// generator and the upstream share this process, so "forwarded" includes their cost.
//
//   node dist/bench/dns.js [--seconds 5] [--concurrency 32]
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as packet from 'dns-packet';
import { TestUpstream } from '../test/helpers/dns-upstream.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const SECONDS = arg('seconds', 5);
const CONCURRENCY = arg('concurrency', 32);
const MAIN_JS = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'main.js');

const CONFIG = `workloads:
- uid: Kubernetes//Pod/default/bench
  name: bench
  namespace: default
  serviceAccount: default
  trustDomain: cluster.local
  clusterId: Kubernetes
  workloadIps: ["127.0.0.1"]
  protocol: HBONE
  canonicalName: bench
  services: {}
services:
- name: web
  namespace: default
  hostname: web.default.svc.cluster.local
  vips: ["/10.96.0.10"]
  ports: {80: 8080}
  subjectAltNames: []
  canonical: true
`;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'zt-dns-bench-'));
  const upstream = await TestUpstream.start('127.0.0.1', 0);
  upstream.records.set('www.example.org', ['93.184.216.34']);
  writeFileSync(join(dir, 'config.yaml'), CONFIG);
  writeFileSync(join(dir, 'resolv.conf'), `nameserver 127.0.0.1:${upstream.port}\n`);
  const port = 20000 + Math.floor(Math.random() * 20000);
  const child = spawn(process.execPath, [MAIN_JS, 'run'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      XDS_ADDRESS: '',
      FAKE_CA: 'true',
      ZTUNNEL_STATE_DIR: join(dir, 'state'),
      LOCAL_XDS_PATH: join(dir, 'config.yaml'),
      PROXY_MODE: 'dedicated',
      PROXY_WORKLOAD_INFO: 'default/bench/default',
      ZTUNNEL_INBOUND_ADDR: '127.0.0.1:0',
      ZTUNNEL_INBOUND_PLAINTEXT_ADDR: '127.0.0.1:0',
      ZTUNNEL_OUTBOUND_ADDR: '127.0.0.1:0',
      ZTUNNEL_ADMIN_ADDR: '127.0.0.1:0',
      ZTUNNEL_STATS_ADDR: '127.0.0.1:0',
      ZTUNNEL_READINESS_ADDR: '127.0.0.1:0',
      ZTUNNEL_DNS_ADDR: `127.0.0.1:${port}`,
      ZTUNNEL_TS_DNS_RESOLV_CONF: join(dir, 'resolv.conf'),
      RUST_LOG: 'warn',
    },
  });
  try {
    if (!(await waitAnswer(port, 15_000))) throw new Error('the daemon did not answer DNS within 15 s');
    const rows: string[] = [];
    for (const [label, name] of [['mesh name (web, from the state)', 'web'], ['forwarded name (www.example.org, local upstream)', 'www.example.org']] as const) {
      const r = await load(port, name);
      rows.push(`| ${label} | ${Math.round(r.answered / SECONDS)} |`);
    }
    console.log(`DNS proxy, one ztunnel-ts process, UDP, ${CONCURRENCY} questions in flight, ${SECONDS} s per case\n`);
    console.log('| case | answers/s |\n|---|---|');
    for (const r of rows) console.log(r);
  } finally {
    child.kill('SIGTERM');
    await upstream.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function query(name: string, id: number): Buffer {
  return packet.encode({ type: 'query', id, flags: packet.RECURSION_DESIRED, questions: [{ name, type: 'A' }] });
}

async function waitAnswer(port: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = createSocket('udp4');
      const timer = setTimeout(() => (s.close(), resolve(false)), 300);
      s.on('message', () => (clearTimeout(timer), s.close(), resolve(true)));
      s.send(query('web', 1), port, '127.0.0.1');
    });
    if (ok) return true;
  }
  return false;
}

/** Closed-loop load for SECONDS; a socket whose answer is lost re-sends after 200 ms. */
function load(port: number, name: string): Promise<{ answered: number }> {
  return new Promise((resolve) => {
    let answered = 0;
    let running = true;
    const sockets = Array.from({ length: CONCURRENCY }, (_, i) => {
      const s = createSocket('udp4');
      let retry: NodeJS.Timeout | undefined;
      const send = () => {
        if (!running) return;
        clearTimeout(retry);
        retry = setTimeout(send, 200);
        s.send(query(name, i), port, '127.0.0.1');
      };
      s.on('message', () => {
        answered++;
        send();
      });
      return { s, send, stop: () => clearTimeout(retry) };
    });
    for (const x of sockets) x.send();
    setTimeout(() => {
      running = false;
      for (const x of sockets) {
        x.stop();
        x.s.close();
      }
      resolve({ answered });
    }, SECONDS * 1000);
  });
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
