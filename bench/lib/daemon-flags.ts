// The Node flags ztunnel-ts is deployed with: the Dockerfile's ENTRYPOINT and `npm start` use
// exactly these (test/integration/deploy-manifests.test.ts keeps the three equal), and the
// benchmark starts its daemons with them so it measures what users run.
//
// None today. Tried for issue 7: --max-semi-space-size=1 (a 1 MiB young generation) reads ~8 MB
// less RSS a few seconds after start, but V8's memory reducer gets the same back on its own after
// ~20 s idle (71 vs 69 MB), and it cost ~15% more CPU per new connection (bench/README.md
// "Node flags").
export const DAEMON_NODE_FLAGS: readonly string[] = [];
