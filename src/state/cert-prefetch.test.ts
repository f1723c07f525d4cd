// Shared-mode certificate warm-up (state/cert-prefetch.ts): which arriving workloads warm a
// certificate, and when the last workload of an identity on this node takes it away.
import t from 'tap';
import { formatIdentity, type Identity } from '../core/spiffe.js';
import { CertPrefetchSink } from './cert-prefetch.js';
import { State } from './state.js';
import { workload } from './test-builders.js';

function bed(node = 'node-a') {
  const state = new State();
  const calls: string[] = [];
  const warmer = { prefetch: (id: Identity) => calls.push(`prefetch ${formatIdentity(id)}`), forget: (id: Identity) => calls.push(`forget ${formatIdentity(id)}`) };
  let attached: typeof warmer | undefined;
  const sink = new CertPrefetchSink({ state, node, certs: () => attached });
  return { state, sink, calls, attach: () => (attached = warmer) };
}
const sa = (s: string) => `spiffe://cluster.local/ns/default/sa/${s}`;

t.test('an HBONE or native-tunnel workload of this node warms its identity; others do not', async (t) => {
  const { sink, calls, attach } = bed();
  attach();
  sink.apply({
    workloads: {
      upsert: [
        workload({ uid: 'a', serviceAccount: 'sa-a' }),
        workload({ uid: 'b', serviceAccount: 'sa-b', protocol: 'TCP' }),
        workload({ uid: 'c', serviceAccount: 'sa-c', protocol: 'TCP', nativeTunnel: true }),
        workload({ uid: 'd', serviceAccount: 'sa-d', node: 'node-b' }),
      ],
      remove: [],
    },
  });
  t.same(calls, [`prefetch ${sa('sa-a')}`, `prefetch ${sa('sa-c')}`]);
});

t.test('the batch is applied to the state even before the certificate cache exists', async (t) => {
  const { state, sink, calls } = bed();
  sink.apply({ workloads: { upsert: [workload({ uid: 'a' })], remove: [] } });
  t.ok(state.findWorkloadByUid('a'));
  t.same(calls, []);
});

t.test('removing the last workload of an identity on this node drops its certificate, not before', async (t) => {
  const { sink, calls, attach } = bed();
  sink.apply({ workloads: { upsert: [workload({ uid: 'a1', serviceAccount: 'sa-a' }), workload({ uid: 'a2', serviceAccount: 'sa-a' }), workload({ uid: 'x', serviceAccount: 'sa-a', node: 'node-b' })], remove: [] } });
  attach();
  sink.apply({ workloads: { upsert: [], remove: ['a1'] } });
  t.same(calls, [], 'a2 still uses sa-a');
  sink.apply({ workloads: { upsert: [], remove: ['a2', 'x'] } });
  t.same(calls, [`forget ${sa('sa-a')}`], 'the last one on this node: forgotten once (x was on another node)');
});

t.test('without NODE_NAME no workload counts as local', async (t) => {
  const { sink, calls, attach } = bed('');
  attach();
  sink.apply({ workloads: { upsert: [workload({ uid: 'a', node: '' })], remove: [] } });
  sink.apply({ workloads: { upsert: [], remove: ['a'] } });
  t.same(calls, []);
});
