// The port to a certificate authority (docs/design.md §2): LocalCa (embedded default) and
// IstioCaClient (istiod's IstioCertificateService) implement it.
import type { Identity } from '../core/spiffe.js';
import type { WorkloadCertificate } from '../tls/certificate.js';

export interface CaClient {
  /** Issues a fresh certificate for `id` (new key). Rejects with a ZtunnelError IDENTITY_UNAVAILABLE. */
  fetchCertificate(id: Identity): Promise<WorkloadCertificate>;
}
