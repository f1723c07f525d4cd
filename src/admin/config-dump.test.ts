// staticConfig of /config_dump (telemetry.md §5): the local file as Rust's LocalConfig object.
import t from 'tap';
import { staticConfigObject } from './config-dump.js';

t.test('no local config: empty workloads, policies and services', async (t) => {
  t.same(staticConfigObject(undefined), { workloads: [], policies: [], services: [] });
});

t.test('a ztunnel-form file is echoed as an object with the missing lists empty', async (t) => {
  t.same(staticConfigObject('workloads:\n- uid: x\n  workloadIps: ["10.0.0.1"]\n'), {
    workloads: [{ uid: 'x', workloadIps: ['10.0.0.1'] }],
    policies: [],
    services: [],
  });
});

t.test('Istio documents in the same file are listed apart from the ztunnel-form lists', async (t) => {
  const text = 'services:\n- name: s\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default}\n';
  t.same(staticConfigObject(text), {
    workloads: [],
    policies: [],
    services: [{ name: 's' }],
    istioResources: [{ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default' } }],
  });
});
