// Assembles one DNS proxy (docs/dns.md): the handler for one client workload, its upstream
// forwarder and its listeners. Shared mode makes one per enrolled pod (sockets in the pod's netns,
// upstream queries with the ztunnel mark, the pod's namespace search domains); dedicated mode makes
// one on the configured address with the search list of the resolv.conf.
import { readFileSync } from 'node:fs';
import type { Registry } from 'prom-client';
import type { BindAddr, Config } from '../config/config.js';
import { ZtunnelError } from '../core/errors.js';
import type { SocketFactory } from '../platform/socket-factory.js';
import type { Workload } from '../state/model.js';
import type { Logger } from '../telemetry/logger.js';
import { DnsHandler } from './dns-handler.js';
import { createDnsMetrics, type DnsMetrics } from './dns-metrics.js';
import { DnsServer } from './dns-server.js';
import { parseResolvConf, type ResolvConf } from './resolv-conf.js';
import { kubeSearchDomains, type DnsStateView } from './resolver.js';
import { Upstream } from './upstream.js';

/** What every DNS proxy of the process shares. */
export interface DnsProxyDeps {
  readonly clusterDomain: string;
  readonly ipv6Enabled: boolean;
  readonly preferedServiceNamespace?: string;
  readonly resolvConf: ResolvConf;
  readonly state: DnsStateView;
  readonly metrics: DnsMetrics;
  readonly logger: Logger;
}

export interface DnsProxyOptions {
  readonly deps: DnsProxyDeps;
  readonly sockets: SocketFactory;
  readonly addresses: readonly BindAddr[];
  readonly client: () => Workload | undefined;
  /** Shared mode: search domains of the client's namespace; dedicated: the resolv.conf search list. */
  readonly perPodSearch: boolean;
  /** SO_MARK for upstream queries (shared mode: the ztunnel packet mark). */
  readonly mark?: number;
}

/** Reads the resolver config once at start, as Istio does; a missing file or no nameserver is fatal. */
export function loadResolvConf(path: string): ResolvConf {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ZtunnelError('CONFIG_INVALID', `DNS proxy: cannot read ${path}: ${(e as Error).message} (turn the DNS proxy off with ISTIO_META_DNS_CAPTURE=false)`, { cause: e });
  }
  const conf = parseResolvConf(text);
  if (conf.nameservers.length === 0) {
    throw new ZtunnelError('CONFIG_INVALID', `DNS proxy: no nameservers found in ${path} (turn the DNS proxy off with ISTIO_META_DNS_CAPTURE=false)`);
  }
  return conf;
}

/** The shared parts from the config: reads the resolv.conf (fatal when unusable) and registers the metrics. */
export function createDnsDeps(config: Config, state: DnsStateView, registry: Registry, logger: Logger): DnsProxyDeps {
  return {
    clusterDomain: config.clusterDomain,
    ipv6Enabled: config.ipv6Enabled,
    ...(config.preferedServiceNamespace !== undefined ? { preferedServiceNamespace: config.preferedServiceNamespace } : {}),
    resolvConf: loadResolvConf(config.dnsResolvConf),
    state,
    metrics: createDnsMetrics(registry),
    logger,
  };
}

/** The `dns` section of /config_dump: what the DNS proxy forwards with. */
export function dumpDnsDeps(d: DnsProxyDeps | undefined): Record<string, unknown> {
  if (!d) return { enabled: false };
  const c = d.resolvConf;
  return {
    enabled: true,
    nameservers: c.nameservers.map((n) => (n.ip.includes(':') ? `[${n.ip}]:${n.port}` : `${n.ip}:${n.port}`)),
    search: c.search,
    timeoutMs: c.timeoutMs,
    attempts: c.attempts,
    edns0: c.edns0,
  };
}

/** Binds the listeners; the returned server is closed with the pod's other listeners. */
export async function startDnsProxy(o: DnsProxyOptions): Promise<DnsServer> {
  const d = o.deps;
  const upstream = new Upstream({ conf: d.resolvConf, sockets: o.sockets, ...(o.mark !== undefined ? { mark: o.mark } : {}) });
  const handler = new DnsHandler({
    state: d.state,
    settings: {
      clusterDomain: d.clusterDomain,
      ipv6Enabled: d.ipv6Enabled,
      ...(d.preferedServiceNamespace !== undefined ? { preferedServiceNamespace: d.preferedServiceNamespace } : {}),
      searchDomains: o.perPodSearch ? (w) => kubeSearchDomains(w.namespace, d.clusterDomain) : () => d.resolvConf.search,
    },
    forward: (q) => upstream.query(q),
    metrics: d.metrics,
    logger: d.logger,
    client: o.client,
  });
  const server = new DnsServer({ sockets: o.sockets, addresses: o.addresses, handler, metrics: d.metrics, logger: d.logger });
  await server.bind();
  d.logger.info({ address: server.addresses().join(',') }, 'starting local DNS server');
  return server;
}
