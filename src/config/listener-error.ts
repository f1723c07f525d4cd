// A listener that cannot bind names itself, its address and the setting that moves it, so a busy
// port is something a user can act on: "inbound listener 0.0.0.0:15008 (--inbound-addr /
// ZTUNNEL_INBOUND_ADDR): address in use".
import { OPTIONS, type OptionKey } from './options.js';

export type ListenerKind = 'outbound' | 'inboundPlaintext' | 'inbound' | 'socks5' | 'admin' | 'stats' | 'readiness' | 'dns';

const LISTENERS: Record<ListenerKind, { label: string; option: OptionKey }> = {
  outbound: { label: 'outbound', option: 'outboundAddr' },
  inboundPlaintext: { label: 'inbound plaintext', option: 'inboundPlaintextAddr' },
  inbound: { label: 'inbound', option: 'inboundAddr' },
  socks5: { label: 'SOCKS5', option: 'socks5Addr' },
  admin: { label: 'admin', option: 'adminAddr' },
  stats: { label: 'stats', option: 'statsAddr' },
  readiness: { label: 'readiness', option: 'readinessAddr' },
  dns: { label: 'DNS', option: 'dnsAddr' },
};

const REASONS: Record<string, string> = {
  EADDRINUSE: 'address in use',
  EACCES: 'permission denied (a port below 1024 needs CAP_NET_BIND_SERVICE)',
  EADDRNOTAVAIL: 'address not available on this host',
};

/**
 * The bind failure of a listener, as a plain Error keeping the errno `code` and the original as
 * `cause`. `withSetting: false` for listeners no setting moves (the fixed in-pod ports).
 */
export function listenerError(kind: ListenerKind, addr: string, e: unknown, withSetting = true): Error {
  const { label, option } = LISTENERS[kind];
  const o = OPTIONS[option];
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  const reason = (code && REASONS[code]) ?? (e instanceof Error ? e.message : String(e));
  const setting = withSetting ? ` (--${o.flag} / ${o.env})` : '';
  return Object.assign(new Error(`${label} listener ${addr}${setting}: ${reason}`, { cause: e }), code ? { code } : {});
}
