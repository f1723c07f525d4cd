// The shared-mode test bed (capture.md, ports-and-modes.md): two "nodes" and six "pods" built from
// network namespaces, a real ztunnel-ts process per node (shared mode, from dist/), and a CNI
// stand-in per node that programs the in-pod rules and enrolls the pods over ZDS.
//
//   pod netns <p>-a1 (10.10.1.11, ambient)  ┐                         ┌ <p>-b1 (10.10.2.11, ambient)
//   pod netns <p>-a2 (10.10.1.12, ambient)  ├ br0 in <p>-node-a ══ to-b/to-a ══ br0 in <p>-node-b ┤ <p>-b2 (10.10.2.12, ambient)
//   pod netns <p>-a3 (10.10.1.13, non-mesh) ┘   10.10.1.1     10.10.255.0/30    10.10.2.1       └ <p>-b3 (10.10.2.13 + .99, non-mesh)
//
// Every address lives only inside these namespaces (nothing is routed to or from the host netns).
// The test process reaches into them with the native addon (sockets created inside a netns), so
// apps, clients and admin calls need no helper processes. Names carry the test process pid;
// destroy() — also run from a process 'exit' / signal hook — removes every namespace (and with it
// every veth and bridge) and kills the daemons.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import type { AddressInfo, Server, Socket } from 'node:net';
import { join } from 'node:path';
import { LocalCa } from '../../src/identity/local-ca.js';
import { loadNativeAddon, type NativeAddon } from '../../src/platform/native-addon.js';
import { LinuxSocketFactory } from '../../src/platform/linux-socket-factory.js';
import { startDaemon, tempDir, type Daemon } from '../helpers/daemon.js';
import { CniStandIn } from './cni-stand-in.js';

type Tap = {
  teardown(fn: () => void | Promise<void>): void;
  fail(message: string): void;
  plan(n: number, comment?: string): void;
};

/** The address kubelet probes arrive from after istio-cni's host SNAT (capture.md §1). */
export const PROBE_SOURCE_IP = '169.254.7.127';
export const APP_PORT = 8080;
export const TRUST_DOMAIN = 'cluster.local';

export type NodeName = 'node-a' | 'node-b';

export interface BedPod {
  /** Short name: a1, a2, a3, b1, b2, b3. */
  readonly name: string;
  readonly netns: string;
  readonly node: BedNode;
  readonly ip: string;
  /** Ambient (captured, enrolled over ZDS) or not in the mesh. */
  readonly mesh: boolean;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly uid: string;
  /** SPIFFE identity without the scheme, as policies write principals. */
  readonly principal: string;
  /** An open fd of /run/netns/<netns> (what the CNI stand-in sends over ZDS). */
  readonly netnsFd: number;
  /** Creates sockets inside the pod (apps and clients of the tests). */
  readonly sockets: LinuxSocketFactory;
}

export interface BedNode {
  readonly name: NodeName;
  readonly netns: string;
  /** The node's address on its pod bridge (pods' default gateway). */
  readonly ip: string;
  /** The node's address on the node-to-node link. */
  readonly linkIp: string;
  readonly pods: BedPod[];
  readonly cni: CniStandIn;
  /** Sockets inside the node netns (admin calls, probe-style connections). */
  readonly sockets: LinuxSocketFactory;
  /** The running ztunnel-ts of this node, if started. */
  ztunnel: Daemon | undefined;
}

export interface BedConfig {
  /** YAML items appended under `policies:` (ztunnel form). */
  readonly policies?: string;
  /** Policy keys (`ns/name`) listed on a pod's workload, by pod name. */
  readonly workloadPolicies?: Readonly<Record<string, readonly string[]>>;
  /** Extra YAML documents (Istio AuthorizationPolicy / PeerAuthentication), appended after `---`. */
  readonly documents?: string;
  /** YAML items appended under `services:`. */
  readonly services?: string;
  /** A pod's `services` map (YAML flow map, e.g. `{"shop/web.shop.svc.cluster.local": {80: 8080}}`), by pod name. */
  readonly workloadServices?: Readonly<Record<string, string>>;
  /** Pods (by name) left out of the workload list, e.g. to enroll a pod before its workload exists. */
  readonly omitWorkloads?: readonly string[];
}

export interface BedOptions extends BedConfig {
  /** Extra environment for both ztunnels. */
  readonly env?: Readonly<Record<string, string>>;
  /** Extra arguments for `deploy/inpod-redirect.sh install` (e.g. ['--dscp-mark', '23']). */
  readonly redirectArgs?: readonly string[];
  /** Start both ztunnels and send their snapshots (default true). */
  readonly start?: boolean;
  /** Registers destroy() as a teardown of this test (it also runs on process exit regardless). */
  readonly t?: Pick<Tap, 'teardown'>;
}

export interface StartOptions {
  /** Send the CNI stand-in's snapshot after the hello (default true). */
  readonly snapshot?: boolean;
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Start a second ztunnel-ts while the node's current one still runs (a rolling update): the CNI
   * stand-in keeps the old ZDS connection and enrolls the pods with the new process too, whose
   * in-pod listeners join the old ones with SO_REUSEPORT. `node.ztunnel` becomes the new one.
   */
  readonly takeOver?: boolean;
}

export interface Bed {
  readonly nodes: Readonly<Record<NodeName, BedNode>>;
  readonly pods: Readonly<Record<string, BedPod>>;
  readonly dir: string;
  readonly configPath: string;
  /** Runs a command inside a netns (argv, or a string for `sh -c`); returns stdout. */
  exec(ns: string, cmd: readonly string[] | string): string;
  /** Starts the node's ztunnel-ts; by default waits for its ZDS hello and sends the snapshot. */
  startZtunnel(node: BedNode, opts?: StartOptions): Promise<Daemon>;
  stopZtunnel(node: BedNode): Promise<void>;
  /** Rewrites the local config file both ztunnels watch. */
  writeConfig(cfg: BedConfig): void;
  /** GET/POST on a ztunnel's admin / stats / readiness server (inside the node netns). */
  http(node: BedNode, which: 'admin' | 'stats' | 'readiness', path: string, method?: string): Promise<{ status: number; body: string }>;
  destroy(): Promise<void>;
}

// --- process-wide cleanup ------------------------------------------------------------------------

const liveBeds = new Set<{ netns: string[]; daemons: () => Daemon[] }>();
let hooksInstalled = false;

function cleanupSync(): void {
  for (const b of liveBeds) {
    for (const d of b.daemons()) d.child.kill('SIGKILL');
    for (const ns of b.netns) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
  }
  liveBeds.clear();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', cleanupSync);
  for (const [sig, n] of [['SIGINT', 2], ['SIGTERM', 15]] as const) {
    process.once(sig, () => {
      cleanupSync();
      process.exit(128 + n);
    });
  }
}

/** Deletes namespaces left by an earlier run of this bed whose process is gone. */
function removeStale(): void {
  let list = '';
  try {
    list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  } catch {
    return;
  }
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = /^ztb(\d+)x\d+-/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch (e) {
      alive = (e as NodeJS.ErrnoException).code === 'EPERM';
    }
    if (!alive) {
      try {
        execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
      } catch {
        // raced with someone else
      }
    }
  }
}

/**
 * True when the bed can run. Not root: a failure — unless ZTUNNEL_SKIP_NETNS=1 and CI did not set
 * ZTUNNEL_REQUIRE_NETNS=1, which makes it an explicit, visible skip.
 */
export function netnsAvailable(t: Tap): boolean {
  if (process.getuid?.() === 0) return true;
  if (process.env['ZTUNNEL_SKIP_NETNS'] === '1' && process.env['ZTUNNEL_REQUIRE_NETNS'] !== '1') {
    t.plan(0, 'skipped: the netns suite needs root (ZTUNNEL_SKIP_NETNS=1)');
    return false;
  }
  t.fail('the netns suite needs root (ip netns, iptables, tcpdump); run it as root (CI does), or set ZTUNNEL_SKIP_NETNS=1 to skip it explicitly');
  return false;
}

// --- layout --------------------------------------------------------------------------------------

interface PodSpec {
  readonly name: string;
  readonly node: NodeName;
  readonly host: number;
  readonly mesh: boolean;
  readonly extraIps?: readonly number[];
}

const NODE_SUBNET: Record<NodeName, number> = { 'node-a': 1, 'node-b': 2 };
const LINK_IP: Record<NodeName, string> = { 'node-a': '10.10.255.1', 'node-b': '10.10.255.2' };
const PODS: readonly PodSpec[] = [
  { name: 'a1', node: 'node-a', host: 11, mesh: true },
  { name: 'a2', node: 'node-a', host: 12, mesh: true },
  { name: 'a3', node: 'node-a', host: 13, mesh: false },
  { name: 'b1', node: 'node-b', host: 11, mesh: true },
  { name: 'b2', node: 'node-b', host: 12, mesh: true },
  // .99 is an address no workload claims: traffic to it is passthrough.
  { name: 'b3', node: 'node-b', host: 13, mesh: false, extraIps: [99] },
];

/** An address on b3 that is not in the config: the destination of a passthrough connection. */
export const UNLISTED_IP = '10.10.2.99';

let bedCounter = 0;

export async function createBed(opts: BedOptions = {}): Promise<Bed> {
  const addonResult = loadNativeAddon();
  if (!addonResult.ok) throw addonResult.error;
  const addon: NativeAddon = addonResult.value;
  installHooks();
  removeStale();

  const prefix = `ztb${process.pid}x${++bedCounter}`;
  const dir = tempDir(`${prefix}-`);
  const created: string[] = [];
  const fds: number[] = [];
  const nodes = {} as Record<NodeName, BedNode>;
  const pods: Record<string, BedPod> = {};
  const record = { netns: created, daemons: () => Object.values(nodes).flatMap((n) => (n.ztunnel ? [n.ztunnel] : [])) };
  liveBeds.add(record);

  const exec = (ns: string, cmd: readonly string[] | string): string => {
    const argv = typeof cmd === 'string' ? ['sh', '-c', cmd] : [...cmd];
    return execFileSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  };
  const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const addNetns = (name: string) => {
    ip('netns', 'add', name);
    created.push(name);
    ip('-n', name, 'link', 'set', 'lo', 'up');
    const fd = openSync(`/run/netns/${name}`, 'r');
    fds.push(fd);
    return fd;
  };

  let destroyed: Promise<void> | undefined;
  const destroy = (): Promise<void> => {
    destroyed ??= (async () => {
      await Promise.allSettled(Object.values(nodes).map((n) => n.ztunnel?.stop('SIGTERM', 5000)));
      for (const n of Object.values(nodes)) n.cni.close();
      for (const fd of fds.splice(0)) closeSync(fd);
      for (const ns of created) {
        try {
          ip('netns', 'del', ns);
        } catch {
          // already gone
        }
      }
      liveBeds.delete(record);
      rmSync(dir, { recursive: true, force: true });
    })();
    return destroyed;
  };
  opts.t?.teardown(destroy);

  try {
    // Nodes: a bridge for the pods, forwarding on, and a veth link to the other node.
    for (const name of ['node-a', 'node-b'] as const) {
      const netns = `${prefix}-${name}`;
      const fd = addNetns(netns);
      const subnet = NODE_SUBNET[name];
      ip('-n', netns, 'link', 'add', 'br0', 'type', 'bridge');
      ip('-n', netns, 'addr', 'add', `10.10.${subnet}.1/24`, 'dev', 'br0');
      // The kubelet-probe source (after istio-cni's host SNAT) is a node-local address.
      ip('-n', netns, 'addr', 'add', `${PROBE_SOURCE_IP}/32`, 'dev', 'br0');
      ip('-n', netns, 'link', 'set', 'br0', 'up');
      exec(netns, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      const udsDir = join(dir, name);
      mkdirSync(udsDir);
      nodes[name] = {
        name,
        netns,
        ip: `10.10.${subnet}.1`,
        linkIp: LINK_IP[name],
        pods: [],
        cni: new CniStandIn(join(udsDir, 'ztunnel.sock'), addon, opts.redirectArgs ?? []),
        sockets: new LinuxSocketFactory(addon, { netnsFd: fd }),
        ztunnel: undefined,
      };
    }
    const [na, nb] = [nodes['node-a'], nodes['node-b']];
    ip('-n', na.netns, 'link', 'add', 'to-b', 'type', 'veth', 'peer', 'name', 'to-a', 'netns', nb.netns);
    ip('-n', na.netns, 'addr', 'add', `${na.linkIp}/30`, 'dev', 'to-b');
    ip('-n', nb.netns, 'addr', 'add', `${nb.linkIp}/30`, 'dev', 'to-a');
    ip('-n', na.netns, 'link', 'set', 'to-b', 'up');
    ip('-n', nb.netns, 'link', 'set', 'to-a', 'up');
    ip('-n', na.netns, 'route', 'add', '10.10.2.0/24', 'via', nb.linkIp);
    ip('-n', nb.netns, 'route', 'add', '10.10.1.0/24', 'via', na.linkIp);

    // Pods: eth0 in the pod, p-<name> on the node bridge, default route via the node.
    for (const spec of PODS) {
      const node = nodes[spec.node];
      const netns = `${prefix}-${spec.name}`;
      const fd = addNetns(netns);
      const subnet = NODE_SUBNET[spec.node];
      const podIp = `10.10.${subnet}.${spec.host}`;
      ip('-n', node.netns, 'link', 'add', `p-${spec.name}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns);
      ip('-n', node.netns, 'link', 'set', `p-${spec.name}`, 'master', 'br0', 'up');
      ip('-n', netns, 'addr', 'add', `${podIp}/24`, 'dev', 'eth0');
      for (const extra of spec.extraIps ?? []) ip('-n', netns, 'addr', 'add', `10.10.${subnet}.${extra}/24`, 'dev', 'eth0');
      ip('-n', netns, 'link', 'set', 'eth0', 'up');
      ip('-n', netns, 'route', 'add', 'default', 'via', node.ip);
      const namespace = spec.mesh ? 'shop' : 'legacy';
      const serviceAccount = `sa-${spec.name}`;
      const pod: BedPod = {
        name: spec.name,
        netns,
        node,
        ip: podIp,
        mesh: spec.mesh,
        namespace,
        serviceAccount,
        uid: `Kubernetes//Pod/${namespace}/${spec.name}`,
        principal: `${TRUST_DOMAIN}/ns/${namespace}/sa/${serviceAccount}`,
        netnsFd: fd,
        sockets: new LinuxSocketFactory(addon, { netnsFd: fd }),
      };
      pods[spec.name] = pod;
      node.pods.push(pod);
      if (spec.mesh) {
        // The CNI stand-in programs the rules now; it enrolls the pod when ztunnel connects.
        const enrolled = { uid: pod.uid, info: { name: pod.name, namespace, serviceAccount }, netnsFd: fd, netns };
        node.cni.installRedirect(enrolled);
        node.cni.enrolled.set(pod.uid, enrolled);
      }
    }
  } catch (e) {
    await destroy();
    throw e;
  }

  // One CA root for both ztunnels (FAKE_CA with a shared state dir), as foundation.test.ts does.
  const caDir = join(dir, 'ca');
  await LocalCa.open({ stateDir: caDir, ttlMs: 24 * 3600_000 });
  const configPath = join(dir, 'config.yaml');
  const writeConfig = (cfg: BedConfig) => {
    // Written to a temp file and renamed so a watcher never reads half a file.
    const tmp = `${configPath}.tmp`;
    writeFileSync(tmp, configYaml(Object.values(pods), cfg));
    renameSync(tmp, configPath);
  };
  writeConfig(opts);

  const startZtunnel = async (node: BedNode, s: StartOptions = {}): Promise<Daemon> => {
    if (!s.takeOver && node.ztunnel && node.ztunnel.child.exitCode === null && node.ztunnel.child.signalCode === null) {
      throw new Error(`${node.name}: ztunnel already running`);
    }
    const accepted = node.cni.accept({ keepOld: s.takeOver ?? false });
    const daemon = await startDaemon({
      name: node.name,
      wrapper: ['ip', 'netns', 'exec', node.netns],
      env: {
        XDS_ADDRESS: '',
        FAKE_CA: 'true',
        ZTUNNEL_STATE_DIR: caDir,
        LOCAL_XDS_PATH: configPath,
        PROXY_MODE: 'shared',
        NODE_NAME: node.name,
        INPOD_UDS: node.cni.udsPath,
        ZTUNNEL_ADMIN_ADDR: '127.0.0.1:0',
        ZTUNNEL_STATS_ADDR: '127.0.0.1:0',
        ZTUNNEL_READINESS_ADDR: '127.0.0.1:0',
        CONNECTION_TERMINATION_DEADLINE: '2s',
        RUST_LOG: 'info',
        ...opts.env,
        ...s.env,
      },
    });
    node.ztunnel = daemon;
    await accepted;
    if (s.snapshot ?? true) {
      const acks = await node.cni.snapshot();
      const nacks = acks.filter((a) => a.error !== '');
      if (nacks.length) throw new Error(`${node.name}: snapshot NACKed: ${nacks.map((a) => a.error).join('; ')}`);
    }
    return daemon;
  };

  const bed: Bed = {
    nodes,
    pods,
    dir,
    configPath,
    exec,
    startZtunnel,
    async stopZtunnel(node) {
      await node.ztunnel?.stop('SIGTERM', 10_000);
    },
    writeConfig,
    http: (node, which, path, method = 'GET') => nodeHttp(node, which, path, method),
    destroy,
  };
  if (opts.start ?? true) {
    await Promise.all([startZtunnel(nodes['node-a']), startZtunnel(nodes['node-b'])]);
  }
  return bed;
}

/** The local config (config.md §2): every pod is a workload on its node; ambient ones speak HBONE. */
function configYaml(pods: readonly BedPod[], cfg: BedConfig): string {
  const workloads = pods.filter((p) => !cfg.omitWorkloads?.includes(p.name)).map((p) => {
    const policies = cfg.workloadPolicies?.[p.name] ?? [];
    return `- uid: ${p.uid}
  name: ${p.name}
  namespace: ${p.namespace}
  serviceAccount: ${p.serviceAccount}
  trustDomain: ${TRUST_DOMAIN}
  clusterId: Kubernetes
  workloadIps: ["${p.ip}"]
  protocol: ${p.mesh ? 'HBONE' : 'TCP'}
  node: ${p.node.name}
  workloadName: ${p.name}
  workloadType: pod
  canonicalName: ${p.name}
  canonicalRevision: v1
  labels: {app: ${p.name}}
  authorizationPolicies: [${policies.map((k) => JSON.stringify(k)).join(', ')}]
  services: ${cfg.workloadServices?.[p.name] ?? '{}'}`;
  });
  return `workloads:
${workloads.join('\n')}
services:
${cfg.services ?? ''}
policies:
${cfg.policies ?? ''}
${cfg.documents ? `---\n${cfg.documents}` : ''}
`;
}

/** HTTP/1.1 over a socket created inside the node netns (ztunnel binds its servers on 127.0.0.1 there). */
async function nodeHttp(node: BedNode, which: 'admin' | 'stats' | 'readiness', path: string, method: string): Promise<{ status: number; body: string }> {
  const addr = node.ztunnel?.addresses[which];
  if (!addr) throw new Error(`${node.name}: no ${which} address (is ztunnel running?)`);
  const port = Number(addr.slice(addr.lastIndexOf(':') + 1));
  const socket = await node.sockets.connect({ host: '127.0.0.1', port, timeoutMs: 3000 });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${node.name} ${which} ${path}: no answer within 5 s`));
    }, 5000);
    const req = request({ method, path, host: '127.0.0.1', port, createConnection: () => socket, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end();
  });
}

// --- apps and clients inside pods -------------------------------------------------------------------

export interface PodApp {
  readonly server: Server;
  readonly port: number;
  /** Source IPs of accepted connections, in order. */
  readonly peers: string[];
  /** Bytes received in total. */
  received(): number;
  close(): Promise<void>;
}

/** A TCP echo app listening on 0.0.0.0:<port> inside the pod (half-close aware). */
export async function startPodApp(pod: BedPod, port = APP_PORT): Promise<PodApp> {
  const { server } = await pod.sockets.listen({ host: '0.0.0.0', port });
  const peers: string[] = [];
  const accepted = new Set<Socket>();
  let received = 0;
  server.on('connection', (s: Socket) => {
    peers.push((s.remoteAddress ?? '').replace(/^::ffff:/, ''));
    accepted.add(s);
    s.on('error', () => {});
    s.on('close', () => accepted.delete(s));
    s.on('data', (d: Buffer) => {
      received += d.length;
      s.write(d);
    });
    s.on('end', () => s.end());
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    peers,
    received: () => received,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of accepted) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface Exchange {
  /** Whether the TCP connect itself succeeded. */
  readonly connected: boolean;
  readonly data: Buffer;
  /** errno code of a connect or stream error (ECONNREFUSED, ECONNRESET, ...). */
  readonly error?: string;
  /** The client socket's local port (to find its access-log line). */
  readonly localPort?: number;
}

/**
 * From inside `pod` (an app socket: no mark, so the pod's rules capture it): connect, send
 * `payload`, half-close, collect the reply until the peer ends or resets (bounded).
 */
export async function exchange(
  pod: { readonly sockets: LinuxSocketFactory },
  host: string,
  port: number,
  payload: Buffer | string,
  opts: { sourceIp?: string; timeoutMs?: number } = {},
): Promise<Exchange> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  let socket: Socket;
  try {
    socket = await pod.sockets.connect({ host, port, timeoutMs, ...(opts.sourceIp ? { sourceIp: opts.sourceIp } : {}) });
  } catch (e) {
    return { connected: false, data: Buffer.alloc(0), error: (e as NodeJS.ErrnoException).code ?? String(e) };
  }
  const localPort = socket.localPort;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (error?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ connected: true, data: Buffer.concat(chunks), ...(error ? { error } : {}), ...(localPort !== undefined ? { localPort } : {}) });
    };
    const timer = setTimeout(() => finish('TIMEOUT'), timeoutMs);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('end', () => finish());
    socket.on('error', (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
    socket.on('close', () => finish());
    socket.end(payload);
  });
}

/** Polls `check` every 50 ms until it returns true or `timeoutMs` passes; returns the last answer. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Packet counter of the iptables rule carrying `-m comment --comment <comment>`. */
export function ruleCount(bed: Bed, netns: string, table: 'nat' | 'mangle' | 'raw', chain: string, comment: string): number {
  const out = bed.exec(netns, ['iptables', '-w', '-t', table, '-L', chain, '-v', '-x', '-n']);
  const line = out.split('\n').find((l) => l.includes(`/* ${comment} */`));
  if (!line) throw new Error(`no rule with comment ${comment} in ${table}/${chain} of ${netns}:\n${out}`);
  return Number(line.trim().split(/\s+/)[0]);
}

/** Packet counter of the rule tagged `ztunnel-inpod/<tag>` by deploy/inpod-redirect.sh in a pod. */
export function redirectRuleCount(bed: Bed, pod: BedPod, table: 'nat' | 'mangle' | 'raw', chain: string, tag: string): number {
  return ruleCount(bed, pod.netns, table, chain, `ztunnel-inpod/${tag}`);
}
