// The one entry to @peculiar/x509 (certificates, keys, CSRs and CRLs) for identity/, tls/ and the test
// helpers. The library is loaded on first use — when a certificate is issued, requested or read —
// so a daemon that never does so does not carry it (nothing runs at import time, docs/design.md §2).
// Order matters: the reflect-metadata polyfill first (tsyringe, which @peculiar/x509 uses inside,
// refuses to load without it), then the library, whose crypto provider is set to Node's own
// WebCrypto (`globalThis.crypto`, OpenSSL underneath).
import type { webcrypto } from 'node:crypto';

export type X509Module = typeof import('@peculiar/x509');

export interface X509Toolkit {
  readonly x509: X509Module;
  readonly crypto: webcrypto.Crypto;
}

let loading: Promise<X509Toolkit> | undefined;
let loaded: X509Toolkit | undefined;

/** The library if this thread has loaded it already (synchronous code paths: peer checks in handshakes). */
export function loadedX509(): X509Toolkit | undefined {
  return loaded;
}

export function loadX509(): Promise<X509Toolkit> {
  loading ??= import('reflect-metadata')
    .then(() => import('@peculiar/x509'))
    .then((x509) => {
      const crypto = globalThis.crypto as webcrypto.Crypto;
      x509.cryptoProvider.set(crypto as never);
      loaded = { x509, crypto };
      return loaded;
    });
  return loading;
}
