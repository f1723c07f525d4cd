// The self-proxy (ports-and-modes.md §1; Istio's create_ztunnel_self_proxy_listener): in shared
// mode, when POD_NAMESPACE, SERVICE_ACCOUNT and POD_NAME are all set, ztunnel also serves HBONE
// for itself on the inbound address in its own network namespace ([::]:15008 by default, so its
// pod IP), as the workload named by those three values, with the identity
// spiffe://<TRUST_DOMAIN>/ns/<POD_NAMESPACE>/sa/<SERVICE_ACCOUNT>. Meshed clients (a scraper of
// :15020) reach ztunnel through it, under the same authorization policies as any workload. Only
// the inbound HBONE listener runs; the app side is dialled from ztunnel's own address (no source
// spoofing), with no packet mark, as Istio's plain socket factory does.
import type { Config } from '../config/config.js';
import type { Identity } from '../core/spiffe.js';
import { PlainSocketFactory } from '../platform/plain-socket-factory.js';
import type { SocketFactory } from '../platform/socket-factory.js';
import { WorkloadProxy, type WorkloadProxyOptions } from '../proxy/workload-proxy.js';
import type { StateView } from '../state/view.js';

export type SelfProxyDeps = Pick<WorkloadProxyOptions, 'certs' | 'records' | 'logger' | 'accessLogger' | 'policyLogger'> & {
  readonly config: Config;
  readonly state: StateView;
  readonly sockets?: SocketFactory;
};

/** ztunnel's own identity and workload, or undefined when the self-proxy does not run. */
export function selfIdentity(config: Config): { identity: Identity; namespace: string; name: string; serviceAccount: string } | undefined {
  const { podName, podNamespace, serviceAccount } = config;
  if (config.proxyMode !== 'shared' || !podName || !podNamespace || !serviceAccount) return undefined;
  return {
    identity: { trustDomain: config.trustDomain, namespace: podNamespace, serviceAccount },
    namespace: podNamespace,
    name: podName,
    serviceAccount,
  };
}

/** Binds the self-proxy's inbound listener (not yet accepting); undefined when it does not run. */
export async function bindSelfProxy(deps: SelfProxyDeps): Promise<WorkloadProxy | undefined> {
  const self = selfIdentity(deps.config);
  if (!self) return undefined;
  deps.logger.info({ identity: `spiffe://${self.identity.trustDomain}/ns/${self.namespace}/sa/${self.serviceAccount}` }, 'creating ztunnel self-proxy listener');
  // Own netns, no mark: the config is the same except for the packet mark (Istio's self-proxy
  // uses its default socket factory, which sets none).
  const { packetMark: _mark, ...rest } = deps.config;
  const proxy = new WorkloadProxy({
    name: `${self.namespace}/${self.name}`,
    config: rest as Config,
    sockets: deps.sockets ?? new PlainSocketFactory(),
    state: deps.state,
    certs: deps.certs,
    records: deps.records,
    logger: deps.logger,
    accessLogger: deps.accessLogger,
    policyLogger: deps.policyLogger,
    listeners: { inbound: deps.config.listeners.inbound },
    reusePort: false,
    transparent: 'off',
    localWorkload: () => deps.state.findLocalWorkload(self.namespace, self.name, self.serviceAccount, ''),
    identity: self.identity,
  });
  await proxy.bind();
  return proxy;
}
