// A workload proxy described as plain data (docs/workers.md), so the control plane can have every
// data-plane worker run it: dedicated mode has one (key "dedicated"), shared mode one per enrolled
// pod. DataPlaneHandle is all the control plane (app, inpod/) knows of the data plane.
import type { Identity } from '../core/spiffe.js';
import type { TransparentMode } from '../platform/socket-factory.js';
import type { ListenerKind, ListenerSpec } from './workload-proxy.js';

export interface ProxySpec {
  readonly key: string;
  /** `<namespace>/<name>` of the served workload. */
  readonly name: string;
  /** Extra fields on this proxy's log lines (shared mode: the pod uid). */
  readonly logContext?: Readonly<Record<string, string>>;
  /** Shared mode: the pod's netns fd (owned by the main thread; valid in every worker). */
  readonly netnsFd?: number;
  readonly listeners: Partial<Record<ListenerKind, ListenerSpec>>;
  readonly reusePort: boolean;
  readonly transparent: TransparentMode;
  /** How to find the served workload in the state on each use (it may change with config). */
  readonly localWorkload: { readonly namespace: string; readonly name: string; readonly serviceAccount: string; readonly node: string };
  /** The identity 15008 presents. */
  readonly identity: Identity;
}

/** Bound address of each listener (`ip:port`), e.g. when a port was 0. */
export type ProxyAddresses = Partial<Record<ListenerKind, string>>;

export interface DataPlaneHandle {
  /** Runs the proxy (listeners bound or adopted); its connections wait until startAccepting. */
  addProxy(spec: ProxySpec): Promise<ProxyAddresses>;
  startAccepting(key: string): void;
  /** Drains the proxy (at most `deadlineMs`); afterwards its listener fds may be closed. */
  removeProxy(key: string, deadlineMs: number): Promise<void>;
}
