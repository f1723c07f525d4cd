// A workload certificate as the data path needs it. Produced by identity/ (local CA, Istio CA),
// consumed by tls/ and hbone/ through CertificateProvider (the narrowest view: "certificate for
// identity X", docs/design.md §2).
import type { Identity } from '../core/spiffe.js';

export interface WorkloadCertificate {
  readonly identity: Identity;
  /** Leaf first, then intermediates (PEM each). */
  readonly chainPem: readonly string[];
  /** PKCS#8 PEM private key of the leaf. */
  readonly keyPem: string;
  /** Trusted roots (PEM each); several roots are all trusted. */
  readonly rootsPem: readonly string[];
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly serialNumber: string;
}

export interface CertificateProvider {
  /** Resolves with a valid certificate for the identity, fetching it if needed. */
  getCertificate(id: Identity): Promise<WorkloadCertificate>;
}
