// A data-plane worker's view of the certificates (docs/workers.md): the SecretManager stays on the
// main thread; a worker asks it once per identity, keeps the answer, and takes rotated
// certificates the main thread pushes. An expired entry is never served: it is asked for again.
import { formatIdentity, type Identity } from '../core/spiffe.js';
import type { CertificateProvider, WorkloadCertificate } from '../tls/certificate.js';

export class CertificateCache implements CertificateProvider {
  private readonly certs = new Map<string, WorkloadCertificate>();
  private readonly pending = new Map<string, Promise<WorkloadCertificate>>();

  constructor(
    private readonly fetch: (id: Identity) => Promise<WorkloadCertificate>,
    private readonly now: () => number = Date.now,
  ) {}

  getCertificate(id: Identity): Promise<WorkloadCertificate> {
    const key = formatIdentity(id);
    const cert = this.certs.get(key);
    if (cert && cert.notAfter.getTime() > this.now()) return Promise.resolve(cert);
    let p = this.pending.get(key);
    if (!p) {
      p = this.fetch(id).then(
        (c) => {
          this.pending.delete(key);
          this.store(c);
          return c;
        },
        (e: unknown) => {
          this.pending.delete(key);
          throw e;
        },
      );
      this.pending.set(key, p);
    }
    return p;
  }

  /** A certificate the owner issued or rotated; replaces the cached one for its identity. */
  store(cert: WorkloadCertificate): void {
    this.certs.set(formatIdentity(cert.identity), cert);
  }
}
