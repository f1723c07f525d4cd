// A throwaway CA for the benchmark, made with the project's LocalCa (dist/src/identity/local-ca.js):
// an ECDSA P-256 root generated into `stateDir`, and ECDSA P-256 leaves with SPIFFE URI SANs.
import { writeFileSync } from 'node:fs';
import path from 'node:path';

export interface IssuedFiles {
  certPath: string;
  keyPath: string;
  caPath: string;
  uri: string;
}

/** Opens (first time: generates) the root in `stateDir`; daemons with FAKE_CA share it. */
export async function openBenchCa(stateDir: string) {
  const { LocalCa } = await import('../../src/identity/local-ca.js');
  return LocalCa.open({ stateDir, ttlMs: 24 * 3600_000 });
}

/** Issues a leaf for spiffe://cluster.local/ns/bench/sa/<serviceAccount> and writes its PEMs. */
export async function issueToFiles(stateDir: string, outDir: string, serviceAccount: string): Promise<IssuedFiles> {
  const ca = await openBenchCa(stateDir);
  const id = { trustDomain: 'cluster.local', namespace: 'bench', serviceAccount };
  const c = await ca.issue(id);
  const certPath = path.join(outDir, `${serviceAccount}-cert.pem`);
  const keyPath = path.join(outDir, `${serviceAccount}-key.pem`);
  const caPath = path.join(outDir, `${serviceAccount}-ca.pem`);
  writeFileSync(certPath, c.chainPem.join('\n'));
  writeFileSync(keyPath, c.keyPem, { mode: 0o600 });
  writeFileSync(caPath, c.rootsPem.join('\n'));
  return { certPath, keyPath, caPath, uri: `spiffe://cluster.local/ns/bench/sa/${serviceAccount}` };
}
