// The istio-cni node agent's part for the netns test bed (capture.md §1 and §6): it programs the
// in-pod redirect rules with deploy/inpod-redirect.sh and enrolls pods with the node's ztunnel over
// ZDS (Add with the pod's netns fd, Del, SnapshotSent), checking every ack.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { NativeAddon } from '../../src/platform/native-addon.js';
import type { WorkloadInfo, ZdsAck } from '../../src/inpod/zds-messages.js';
import { REPO_ROOT } from '../helpers/daemon.js';
import { ZdsTestServer, type ZdsTestConnection } from './zds-test-server.js';

export const REDIRECT_SCRIPT = join(REPO_ROOT, 'deploy', 'inpod-redirect.sh');

/** What the agent knows about a pod. */
export interface EnrolledPod {
  readonly uid: string;
  readonly info: WorkloadInfo;
  /** An fd of the pod's netns (/run/netns/<name>), sent with every Add. */
  readonly netnsFd: number;
  /** The netns name, for the redirect script. */
  readonly netns: string;
}

export class CniStandIn {
  private readonly server: ZdsTestServer;
  private conn: ZdsTestConnection | undefined;
  /** Pods this agent has enrolled and not deleted: the next connection's snapshot. */
  readonly enrolled = new Map<string, EnrolledPod>();

  constructor(readonly udsPath: string, addon: NativeAddon, private readonly redirectArgs: readonly string[] = []) {
    this.server = ZdsTestServer.start(addon, udsPath);
  }

  /** Installs the in-pod rules (what istio-cni does before it hands the netns to ztunnel). */
  installRedirect(pod: EnrolledPod): void {
    execFileSync(REDIRECT_SCRIPT, ['install', pod.netns, ...this.redirectArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** Waits for the node's ztunnel to connect and say hello (`keepOld`: leave the previous one open). */
  async accept(o: { keepOld?: boolean } = {}): Promise<ZdsTestConnection> {
    if (!o.keepOld) this.conn?.close();
    this.conn = await this.server.accept();
    return this.conn;
  }

  get connection(): ZdsTestConnection {
    if (!this.conn) throw new Error('ztunnel is not connected to the CNI stand-in');
    return this.conn;
  }

  /** Adds a pod (rules first, then the netns over ZDS); returns ztunnel's ack. */
  async add(pod: EnrolledPod): Promise<ZdsAck> {
    this.installRedirect(pod);
    this.enrolled.set(pod.uid, pod);
    return this.connection.request({ kind: 'add', uid: pod.uid, workloadInfo: pod.info }, [pod.netnsFd]);
  }

  async del(uid: string): Promise<ZdsAck> {
    this.enrolled.delete(uid);
    return this.connection.request({ kind: 'del', uid });
  }

  /** The full snapshot for a (new) connection: one Add per enrolled pod, then SnapshotSent. */
  async snapshot(): Promise<ZdsAck[]> {
    const acks: ZdsAck[] = [];
    for (const pod of this.enrolled.values()) {
      acks.push(await this.connection.request({ kind: 'add', uid: pod.uid, workloadInfo: pod.info }, [pod.netnsFd]));
    }
    acks.push(await this.connection.request({ kind: 'snapshotSent' }));
    return acks;
  }

  close(): void {
    this.conn?.close();
    this.server.close();
  }
}
