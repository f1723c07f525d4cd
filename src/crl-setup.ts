// CRL_PATH (tls/crl.ts) for one thread: loaded before any listener, watched, and applied to every
// handshake of this thread; `istio_crl_policy_rejections_total{reporter}` counts the connections
// it refused (summed over the threads at scrape time, docs/workers.md). The main thread and every
// data-plane worker each open the list: the check runs where the handshake runs.
import { Counter, type Registry } from 'prom-client';
import { RevocationList, setRevocationList } from './tls/crl.js';
import type { Logger } from './telemetry/logger.js';

/** `quiet`: a data-plane worker logs loads at debug (the main thread already says it at info). */
export async function openCrl(path: string, registry: Registry, log: Logger, quiet = false): Promise<RevocationList> {
  const rejections = new Counter({
    name: 'istio_crl_policy_rejections',
    help: 'The total number of connections rejected due to CRL certificate revocation (unstable).',
    labelNames: ['reporter'],
    registers: [registry],
  });
  const list = await RevocationList.open(path, {
    loaded: (crls, revoked) => (quiet ? log.debug({ path, crls, revoked }, 'crl loaded') : log.info({ path, crls, revoked }, 'crl loaded')),
    failed: (message) => log.warn({ path, err: message }, 'crl not (re)loaded; the last good list stays'),
  });
  list.watch();
  setRevocationList(list, (reporter) => rejections.inc({ reporter }));
  return list;
}
