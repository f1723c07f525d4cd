// CRL_PATH (Istio's ztunnel `crl_path`): certificate revocation lists checked on every mTLS
// handshake, inbound and outbound. The file holds one DER CRL or any number of PEM `X509 CRL`
// blocks (other PEM blocks skipped); an empty file, or one without CRL blocks, revokes nothing.
// A certificate of the peer's chain (leaf or intermediate) is revoked when a CRL with the same
// issuer name lists its serial number; a certificate no CRL speaks for passes (unknown status is
// allowed, as Istio's ztunnel allows it). The file is read at start and again whenever it or its
// directory changes (ConfigMap updates swap a symlink); a missing file revokes nothing until it
// appears, and an unreadable or unparsable new version keeps the last good list.
//
// Not as Istio's ztunnel: the CRL's own signature is not checked (the file is trusted as given),
// and connections already open are not re-checked when the list changes.
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type tls from 'node:tls';
import { ZtunnelError } from '../core/errors.js';
import { loadX509, type X509Module } from '../core/x509.js';

interface LoadedCrl {
  readonly issuer: string;
  readonly serials: ReadonlySet<string>;
}

/** Serial numbers compared as lowercase hex without leading zeros. */
const normSerial = (hex: string) => hex.toLowerCase().replace(/[^0-9a-f]/g, '').replace(/^0+(?=.)/, '');

export interface CrlEvents {
  /** A (re)load succeeded: how many CRLs and revoked serials are in force. */
  loaded?(crls: number, revoked: number): void;
  /** A (re)load failed; the last good list stays. */
  failed?(message: string): void;
}

export class RevocationList {
  #crls: readonly LoadedCrl[] = [];
  #watcher: FSWatcher | undefined;
  #debounce: NodeJS.Timeout | undefined;

  private constructor(
    private readonly x509: X509Module,
    readonly path: string,
    private readonly events: CrlEvents,
  ) {}

  /** Loads @peculiar/x509 (only when CRL_PATH is set) and the file; a missing file is not an error. */
  static async open(path: string, events: CrlEvents = {}): Promise<RevocationList> {
    const { x509 } = await loadX509();
    const list = new RevocationList(x509, path, events);
    const first = list.reload();
    // Anything but "not there yet" is refused at start (Istio's ztunnel fails too).
    if (first && !/ENOENT/.test(first)) throw new ZtunnelError('CONFIG_INVALID', `CRL_PATH ${path}: ${first}`);
    return list;
  }

  get size(): number {
    return this.#crls.length;
  }

  /** Re-reads the file; returns the error text when it failed (the previous list stays). */
  reload(): string | undefined {
    let data: Buffer;
    try {
      data = readFileSync(this.path);
    } catch (e) {
      const msg = (e as NodeJS.ErrnoException).code === 'ENOENT' ? `ENOENT: ${this.path} not found; nothing revoked until it appears` : (e as Error).message;
      this.events.failed?.(msg);
      return msg;
    }
    try {
      const crls = this.#parse(data);
      this.#crls = crls;
      this.events.loaded?.(crls.length, crls.reduce((n, c) => n + c.serials.size, 0));
      return undefined;
    } catch (e) {
      const msg = `failed to parse CRL: ${(e as Error).message}`;
      this.events.failed?.(msg);
      return msg;
    }
  }

  #parse(data: Buffer): LoadedCrl[] {
    if (data.length === 0) return [];
    const text = data.toString('latin1');
    const ders: Buffer[] = text.startsWith('-----BEGIN')
      ? [...text.matchAll(/-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/g)].map((m) => Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'))
      : [data];
    return ders.map((der, i) => {
      let crl: InstanceType<X509Module['X509Crl']>;
      try {
        crl = new this.x509.X509Crl(der);
      } catch (e) {
        throw new Error(`CRL ${i + 1}: ${(e as Error).message}`);
      }
      return { issuer: crl.issuer, serials: new Set(crl.entries.map((en) => normSerial(en.serialNumber))) };
    });
  }

  /** Watches the file's directory; a change reloads after 100 ms of quiet. */
  watch(): void {
    if (this.#watcher) return;
    const name = basename(this.path);
    try {
      this.#watcher = watch(dirname(this.path), { persistent: false }, (_event, file) => {
        // ConfigMap updates touch `..data` and friends, not the file name itself.
        if (file !== null && file !== name && !String(file).startsWith('..')) return;
        clearTimeout(this.#debounce);
        this.#debounce = setTimeout(() => this.reload(), 100);
        this.#debounce.unref();
      });
      this.#watcher.on('error', (e) => this.events.failed?.(`watch: ${e.message}`));
    } catch (e) {
      this.events.failed?.(`watch: ${(e as Error).message}`);
    }
  }

  close(): void {
    clearTimeout(this.#debounce);
    this.#watcher?.close();
    this.#watcher = undefined;
  }

  /**
   * The revoked certificate of the peer's chain (leaf first), or undefined. `chain` is Node's
   * detailed peer certificate (`getPeerCertificate(true)`), its issuers linked.
   */
  revokedIn(chain: tls.DetailedPeerCertificate | tls.PeerCertificate | undefined): string | undefined {
    if (this.#crls.length === 0 || !chain || !chain.raw) return undefined;
    const seen = new Set<string>();
    for (let c: tls.PeerCertificate | undefined = chain; c?.raw && !seen.has(c.fingerprint256); c = (c as tls.DetailedPeerCertificate).issuerCertificate) {
      seen.add(c.fingerprint256);
      let cert: InstanceType<X509Module['X509Certificate']>;
      try {
        cert = new this.x509.X509Certificate(c.raw);
      } catch {
        continue; // not ours to judge: the chain was verified by OpenSSL already
      }
      const serial = normSerial(cert.serialNumber);
      for (const crl of this.#crls) {
        if (crl.issuer === cert.issuer && crl.serials.has(serial)) return `serial ${serial} issued by ${cert.issuer}`;
      }
    }
    return undefined;
  }
}

// The list in force for this process (set at start when CRL_PATH is given); the handshake checks
// in verify.ts read it, so every listener and pool applies it without being handed it.
let active: RevocationList | undefined;
let onRejected: ((reporter: 'source' | 'destination') => void) | undefined;

export function setRevocationList(list: RevocationList | undefined, rejected?: (reporter: 'source' | 'destination') => void): void {
  active = list;
  onRejected = rejected;
}

/** CERT_REVOKED when a certificate of the peer's chain is revoked; counts the rejection. */
export function checkRevocation(peer: tls.PeerCertificate | undefined, reporter: 'source' | 'destination'): ZtunnelError | undefined {
  const hit = active?.revokedIn(peer);
  if (!hit) return undefined;
  onRejected?.(reporter);
  return new ZtunnelError('CERT_REVOKED', `peer certificate revoked by CRL: ${hit}`);
}
