// One DNS request in, one reply (or nothing) out: decode → decide (resolver.ts) or forward
// (upstream.ts) → record (metrics, the `dns` debug log) → encode within the size the client allows.
// All wire work goes through dns-packet. Bad input is a value: a packet that does not decode, is a
// response, or is too big is dropped and counted, never answered and never thrown.
import { randomInt } from 'node:crypto';
import * as packet from 'dns-packet';
import type { Workload } from '../state/model.js';
import type { Logger } from '../telemetry/logger.js';
import type { DnsMetrics, DnsProtocol } from './dns-metrics.js';
import { resolveQuestion, type DnsStateView, type ResolverSettings } from './resolver.js';
import type { UpstreamResult } from './upstream.js';

/** A UDP reply without EDNS is at most 512 bytes (RFC 1035 §4.2.1); larger ones are truncated (TC). */
export const UDP_PLAIN_LIMIT = 512;
/** The largest UDP reply sent whatever EDNS size the client advertises. */
export const UDP_EDNS_CAP = 4096;
/** Queries larger than this are dropped (a real query is a header, one question and an OPT). */
export const MAX_QUERY_BYTES = 4096;
/** Upstream forwards in flight per DNS proxy (one per pod); more are dropped and counted. */
export const DEFAULT_MAX_FORWARDS = 256;

const OPCODE_MASK = 0x7800;
const RCODES: Record<string, number> = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 };

export interface DnsHandlerOptions {
  readonly state: DnsStateView;
  readonly settings: ResolverSettings;
  readonly forward: (q: packet.Question) => Promise<UpstreamResult>;
  readonly metrics: DnsMetrics;
  /** The `dns` component logger; the per-request line is at debug (as Istio's `dns` target). */
  readonly logger: Logger;
  /** The workload the answers are computed for (the pod, or dedicated mode's workload). */
  readonly client: () => Workload | undefined;
  readonly maxForwards?: number;
}

export class DnsHandler {
  private forwards = 0;

  constructor(private readonly o: DnsHandlerOptions) {}

  /** The reply to send, or null to send nothing. Never rejects. */
  async handle(msg: Buffer, protocol: DnsProtocol): Promise<Buffer | null> {
    try {
      return await this.handleUnsafe(msg, protocol);
    } catch (e) {
      // A defect, not input: log and answer nothing rather than crash the listener.
      this.o.logger.warn({ err: e instanceof Error ? e.message : String(e) }, 'dns request failed');
      return null;
    }
  }

  private async handleUnsafe(msg: Buffer, protocol: DnsProtocol): Promise<Buffer | null> {
    const m = this.o.metrics;
    if (msg.length > MAX_QUERY_BYTES) {
      m.dropped('oversized', protocol);
      return null;
    }
    let req: packet.DecodedPacket;
    try {
      req = packet.decode(msg);
    } catch {
      m.dropped('malformed', protocol);
      return null;
    }
    if (req.type !== 'query') {
      // Answering a response could start a loop between two resolvers; Istio answers FORMERR.
      m.dropped('malformed', protocol);
      return null;
    }
    const opt = (req.additionals ?? []).find((a): a is packet.OptAnswer => a.type === 'OPT');
    const limit = protocol === 'udp' ? (opt ? Math.min(Math.max(UDP_PLAIN_LIMIT, opt.udpPayloadSize), UDP_EDNS_CAP) : UDP_PLAIN_LIMIT) : 65_535;
    const reply = (rcode: string, answers: packet.Answer[] = [], additionals: packet.Answer[] = [], authoritative = false, withEdns = true) =>
      encodeReply(req, opt && withEdns ? opt : undefined, rcode, answers, additionals, authoritative, limit);

    if (((req.flags ?? 0) & OPCODE_MASK) !== 0) {
      this.o.logger.warn(`unimplemented op_code: ${(req as { opcode?: string }).opcode ?? 'unknown'}`);
      return reply('NOTIMP', [], [], false, false);
    }
    const q = req.questions?.length === 1 ? req.questions[0]! : undefined;
    if (!q) return reply('FORMERR', [], [], false, false);

    const client = this.o.client();
    if (!client) {
      this.o.logger.debug('unknown source');
      m.request(q.type, protocol, undefined);
      return reply('SERVFAIL', [], [], false, false);
    }
    const decision = resolveQuestion(q, this.o.state, client, this.o.settings, shuffle);
    if (decision.kind === 'answer') {
      m.request(q.type, protocol, client);
      this.accessLog(client, q, decision.result, decision.endpoints);
      const answers = decision.records.map((r) => ({ name: r.name, type: r.type, ttl: r.ttl, class: 'IN', data: r.data }) as packet.Answer);
      return reply('NOERROR', answers, [], true);
    }

    // Forward (unknown host, or a record type the mesh does not answer).
    if (this.forwards >= (this.o.maxForwards ?? DEFAULT_MAX_FORWARDS)) {
      m.dropped('overloaded', protocol);
      return null;
    }
    m.request(q.type, protocol, client);
    m.forwarded(q.type, protocol, client);
    const started = process.hrtime.bigint();
    this.forwards++;
    let result: UpstreamResult;
    try {
      result = await this.o.forward(q);
    } finally {
      this.forwards--;
      m.forwardDuration(q.type, protocol, client, Number(process.hrtime.bigint() - started) / 1e9);
    }
    if (!result.ok) {
      m.forwardFailed(q.type, protocol, client);
      this.accessLog(client, q, `forwarding failed (${result.error})`, 0);
      return reply('SERVFAIL', [], [], false, false);
    }
    const a = result.answer;
    if (a.answers.length === 0) {
      // No records (NXDOMAIN or an empty NOERROR) is a failed lookup to Istio's resolver library:
      // counted as a forwarding failure and answered with the code alone.
      m.forwardFailed(q.type, protocol, client);
      this.accessLog(client, q, `forwarding failed (no records found for ${q.name}., ${a.rcode})`, 0);
      return reply(a.rcode, [], [], false, false);
    }
    this.accessLog(client, q, 'forwarded', a.answers.length);
    return reply(a.rcode, [...a.answers], [...a.additionals], false);
  }

  private accessLog(client: Workload, q: packet.Question, result: string, endpoints: number): void {
    if (!this.o.logger.isLevelEnabled('debug')) return;
    this.o.logger.debug({
      'src.workload': client.name || 'unknown',
      'src.namespace': client.namespace || 'unknown',
      query: q.type,
      domain: `${q.name.toLowerCase()}.`,
      result,
      endpoints,
    });
  }
}

/**
 * Builds the reply. Over UDP a reply larger than `limit` loses records from the end until it fits
 * and carries TC, so the client retries over TCP and the proxy never sends more than was asked.
 */
function encodeReply(
  req: packet.DecodedPacket,
  reqOpt: packet.OptAnswer | undefined,
  rcode: string,
  answers: packet.Answer[],
  additionals: packet.Answer[],
  authoritative: boolean,
  limit: number,
): Buffer {
  const reqFlags = req.flags ?? 0;
  let flags = (reqFlags & (packet.RECURSION_DESIRED | packet.CHECKING_DISABLED)) | packet.RECURSION_AVAILABLE | (RCODES[rcode] ?? 2);
  if (authoritative) flags |= packet.AUTHORITATIVE_ANSWER;
  const opt: packet.Answer[] = reqOpt
    ? [{ type: 'OPT', name: '.', udpPayloadSize: Math.max(UDP_PLAIN_LIMIT, reqOpt.udpPayloadSize), flags: reqOpt.flags & packet.DNSSEC_OK, options: [] } as unknown as packet.Answer]
    : [];
  const build = (an: packet.Answer[], ad: packet.Answer[], f: number): packet.Packet => ({
    type: 'response',
    id: req.id ?? 0,
    flags: f,
    questions: req.questions ?? [],
    answers: an,
    additionals: [...ad, ...opt],
  });
  let p = build(answers, additionals, flags);
  if (packet.encodingLength(p) <= limit) return packet.encode(p);
  const an = [...answers];
  const ad = [...additionals];
  do {
    if (ad.length > 0) ad.pop();
    else an.pop();
    p = build(an, ad, flags | packet.TRUNCATED_RESPONSE);
  } while (packet.encodingLength(p) > limit && (an.length > 0 || ad.length > 0));
  return packet.encode(p);
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(0, i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
