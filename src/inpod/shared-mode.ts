// Shared (in-pod) mode assembly for app.ts (ports-and-modes.md §2, capture.md §2 and §6): the
// startup checks, the workload proxy manager and the ZDS client that feeds it. app.ts decides
// what a fatal protocol violation does (exit 1) and when to drain.
import type { Registry } from 'prom-client';
import type { ZtunnelError } from '../core/errors.js';
import type { Config } from '../config/config.js';
import type { Identity } from '../core/spiffe.js';
import { loadNativeAddon, type NativeAddon } from '../platform/native-addon.js';
import { LinuxSocketFactory } from '../platform/linux-socket-factory.js';
import type { StateView } from '../state/view.js';
import type { DnsProxyDeps } from '../dns/dns-proxy.js';
import type { Logger } from '../telemetry/logger.js';
import type { DataPlaneHandle } from '../proxy/proxy-spec.js';
import { WorkloadProxyManager, type ReadinessTask } from './workload-proxy-manager.js';
import { ZdsClient } from './zds-client.js';

/**
 * capture.md §2: shared mode needs the native addon and must be able to setns and set SO_MARK.
 * Rejects with NATIVE_UNAVAILABLE (addon not built) or MISSING_CAPABILITIES (with the
 * CAP_NET_RAW / CAP_NET_ADMIN hint); the caller treats either as fatal.
 */
export async function checkSharedModeSupport(config: Config): Promise<NativeAddon> {
  const addon = loadNativeAddon();
  if (!addon.ok) throw addon.error;
  const caps = await LinuxSocketFactory.checkCapabilities(addon.value, config.packetMark ?? 1337);
  if (!caps.ok) throw caps.error;
  return addon.value;
}

export interface SharedModeOptions {
  readonly addon: NativeAddon;
  readonly config: Config;
  readonly state: StateView;
  readonly dataPlane: DataPlaneHandle;
  /** The DNS proxy's shared parts when it is on: each pod gets UDP+TCP 15053 on its loopback. */
  readonly dns?: DnsProxyDeps;
  readonly secrets: { prefetch?(id: Identity): void; forget?(id: Identity): void };
  readonly registry: Registry;
  /** The `workload proxy manager` readiness task. */
  readonly readiness: ReadinessTask;
  readonly logger: Logger;
  readonly zdsLogger: Logger;
  /** A ZDS protocol violation (capture.md §6): the process must exit with status 1. */
  readonly onFatal: (error: ZtunnelError) => void;
}

export interface SharedMode {
  readonly manager: WorkloadProxyManager;
  /** Stops the ZDS client, then drains every pod proxy (at most `deadlineMs`). */
  close(deadlineMs: number): Promise<void>;
}

/** Builds the manager and connects to INPOD_UDS (retrying until the node agent listens). */
export function startSharedMode(o: SharedModeOptions): SharedMode {
  const manager = new WorkloadProxyManager({
    addon: o.addon,
    config: o.config,
    state: o.state,
    dataPlane: o.dataPlane,
    ...(o.dns ? { dns: o.dns } : {}),
    secrets: o.secrets,
    registry: o.registry,
    readiness: o.readiness,
    logger: o.logger,
    drainDeadlineMs: o.config.drainDeadlineMs,
  });
  const zds = new ZdsClient({
    addon: o.addon,
    path: o.config.inpodUds,
    handler: manager,
    onFatal: o.onFatal,
    onConnected: () => manager.connected(),
    onDisconnected: () => manager.disconnected(),
    logger: o.zdsLogger,
  });
  zds.start();
  let closing: Promise<void> | undefined;
  return {
    manager,
    close(deadlineMs: number): Promise<void> {
      closing ??= (async () => {
        await zds.stop();
        await manager.close(deadlineMs);
      })();
      return closing;
    },
  };
}
