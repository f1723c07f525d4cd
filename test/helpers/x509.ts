// TEST-ONLY entry to @peculiar/x509 (a devDependency): the tests and test helpers use it as an
// independent X.509 implementation. Product code must not import this file; it builds and reads
// certificates with src/identity/x509-builder.ts (issue 7: the library costs ~22 MB RSS). The library is loaded on
// first use (nothing runs at import time, docs/design.md §2): first the reflect-metadata polyfill
// (tsyringe, used inside @peculiar/x509, refuses to load without it), then the library, whose
// crypto provider is set to Node's own WebCrypto (OpenSSL underneath).
import { webcrypto } from 'node:crypto';

export type X509Module = typeof import('@peculiar/x509');

export interface X509Toolkit {
  readonly x509: X509Module;
  readonly crypto: webcrypto.Crypto;
}

let loading: Promise<X509Toolkit> | undefined;

export function loadX509(): Promise<X509Toolkit> {
  if (!loading) {
    loading = import('reflect-metadata').then(() => import('@peculiar/x509')).then((x509) => {
      x509.cryptoProvider.set(webcrypto as never);
      return { x509, crypto: webcrypto };
    });
  }
  return loading;
}
