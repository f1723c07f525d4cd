// Metric labels from a peer's baggage stay bounded (issue 16 item 6).
import t from 'tap';
import { BAGGAGE_SOURCES_MAX, peerInfoFromBaggage } from './telemetry-view.js';

t.test('baggage values that are not names are dropped; names are kept', async (t) => {
  const info = peerInfoFromBaggage({
    namespace: 'shop',
    workloadName: 'x'.repeat(60_000),
    clusterId: 'Kubernetes',
    canonicalName: 'evil name with spaces',
    canonicalRevision: 'v1',
    region: 'a"b',
    zone: 'zone-1a',
  });
  t.same(info && { ...info }, {
    podName: '', workloadName: '', namespace: 'shop', canonicalName: '', canonicalRevision: 'v1',
    clusterId: 'Kubernetes', region: '', zone: 'zone-1a', app: '',
  });
  t.equal(peerInfoFromBaggage({ namespace: '-bad-' }), undefined, 'nothing usable: no baggage source at all');
  t.equal(peerInfoFromBaggage({ namespace: 'shop', clusterId: 'Kubernetes', canonicalRevision: 'v1', zone: 'zone-1a', workloadName: 'y'.repeat(300) }), info, 'equal baggage shares one description');
});

t.test(`at most ${BAGGAGE_SOURCES_MAX} distinct baggage sources label metrics; later ones are unknown`, async (t) => {
  let kept = 0;
  for (let i = 0; i < BAGGAGE_SOURCES_MAX + 500; i++) if (peerInfoFromBaggage({ namespace: `ns-${i}` })) kept++;
  t.ok(kept <= BAGGAGE_SOURCES_MAX, `kept ${kept}`);
  t.equal(peerInfoFromBaggage({ namespace: 'never-seen-before' }), undefined, 'a new source past the bound is not used');
  t.ok(peerInfoFromBaggage({ namespace: 'ns-1' }), 'a source seen before the bound still is');
});
