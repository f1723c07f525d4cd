// Scenario 4 of the benchmark (issue 7): ztunnel-ts in shared mode inside the netns test bed of
// test/netns/bed.ts — real iptables capture in the pods, ZDS enrollment, one daemon per node.
// The load client runs in pod a1 (node-a) and connects straight to the sink server in pod b1
// (node-b): the connection is captured on 15001, tunneled over HBONE to node-b's 15008 in b1, and
// delivered to the app. Needs root.
import { createBed } from '../test/netns/bed.js';
import type { NetnsBed, NetnsBedOptions } from './lib/scenarios.js';

export async function setupNetnsBed(o: NetnsBedOptions): Promise<NetnsBed> {
  // The bed spawns the daemons itself; their Node flags (deployed flags, --cpu-prof) go in NODE_OPTIONS.
  const nodeOptions = o.execArgv.join(' ');
  const bed = await createBed({ env: { RUST_LOG: o.logLevel, ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}) } });
  const a1 = bed.pods['a1']!;
  const b1 = bed.pods['b1']!;
  const proxies = (['node-a', 'node-b'] as const).map((name) => {
    const pid = bed.nodes[name].ztunnel?.child.pid;
    if (pid === undefined) throw new Error(`netns bed: ${name} has no running ztunnel`);
    return { name, pid };
  });
  return {
    clientWrapper: ['ip', 'netns', 'exec', a1.netns],
    serverWrapper: ['ip', 'netns', 'exec', b1.netns],
    serverHost: b1.ip,
    proxies,
    close: () => bed.destroy(),
  };
}
