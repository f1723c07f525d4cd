// The Node flags ztunnel-ts is deployed with: the Dockerfile's ENTRYPOINT and `npm start` use
// exactly these (test/integration/deploy-manifests.test.ts keeps the three equal), and the
// benchmark starts its daemons with them so it measures what users run.
//
// --max-semi-space-size=1: V8's young generation otherwise grows to 16 MiB semi-spaces after the
// start-up burst of allocations and keeps them; 1 MiB cuts ~8 MB of idle RSS per daemon (issue 7)
// with no measurable throughput or connection-rate cost (bench/README.md "Node flags").
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];
