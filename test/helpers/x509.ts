// The tests use the product's entry to @peculiar/x509 (src/core/x509.ts): the same library and
// WebCrypto provider as the daemon.
export { loadX509, type X509Module, type X509Toolkit } from '../../src/core/x509.js';
