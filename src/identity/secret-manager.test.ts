// SecretManager scheduling with an injected clock and timers and a scripted CA. The CA returns
// certificate records (no PEM is parsed here); real certificates are covered by local-ca.test.ts
// and tls/handshake.test.ts.
import t from 'tap';
import { pino } from 'pino';
import { ZtunnelError, isZtunnelError } from '../core/errors.js';
import { formatIdentity, type Identity } from '../core/spiffe.js';
import type { WorkloadCertificate } from '../tls/certificate.js';
import type { CaClient } from './ca-client.js';
import { INITIAL_BACKOFF_MS, MAX_BACKOFF_MS, SecretManager, type SecretManagerOptions } from './secret-manager.js';

const HOUR_MS = 3_600_000;
const logger = pino({ level: 'silent' });
const id = (sa: string): Identity => ({ trustDomain: 'cluster.local', namespace: 'default', serviceAccount: sa });

/** Manual clock and timers: advance() fires due timers in time order, letting promises settle. */
class FakeTime {
  nowMs = Date.UTC(2030, 0, 1);
  #next = 1;
  readonly timers = new Map<number, { at: number; fn: () => void }>();
  now = (): number => this.nowMs;
  setTimer = (fn: () => void, delayMs: number): number => {
    const h = this.#next++;
    this.timers.set(h, { at: this.nowMs + delayMs, fn });
    return h;
  };
  clearTimer = (h: unknown): void => {
    this.timers.delete(h as number);
  };
  /** Delay until the earliest pending timer, or undefined. */
  nextDelay(): number | undefined {
    let min: number | undefined;
    for (const tm of this.timers.values()) if (min === undefined || tm.at < min) min = tm.at;
    return min === undefined ? undefined : min - this.nowMs;
  }
  async advance(ms: number): Promise<void> {
    const target = this.nowMs + ms;
    for (let guard = 0; guard < 10_000; guard++) {
      await settle();
      let due: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= target && (!due || e[1].at < due[1].at)) due = e;
      if (!due) break;
      this.timers.delete(due[0]);
      this.nowMs = due[1].at;
      due[1].fn();
    }
    this.nowMs = target;
    await settle();
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}

type Outcome = { kind: 'ok'; lifetimeMs: number; backdateMs?: number } | { kind: 'fail'; message: string } | { kind: 'manual' };

/** A CA whose answers the test scripts; records every call in order. */
class ScriptedCa implements CaClient {
  readonly calls: string[] = [];
  outcome: Outcome = { kind: 'ok', lifetimeMs: 24 * HOUR_MS };
  readonly pending: Array<{ id: Identity; resolve: (c: WorkloadCertificate) => void; reject: (e: Error) => void }> = [];
  #serial = 0;
  constructor(private readonly time: FakeTime) {}

  cert(identity: Identity, lifetimeMs = 24 * HOUR_MS, backdateMs = 0): WorkloadCertificate {
    const nb = this.time.nowMs - backdateMs;
    return {
      identity, chainPem: ['leaf'], keyPem: 'key', rootsPem: ['root'],
      notBefore: new Date(nb), notAfter: new Date(this.time.nowMs + lifetimeMs), serialNumber: (++this.#serial).toString(16),
    };
  }

  fetchCertificate(identity: Identity): Promise<WorkloadCertificate> {
    this.calls.push(identity.serviceAccount);
    const o = this.outcome;
    if (o.kind === 'ok') return Promise.resolve(this.cert(identity, o.lifetimeMs, o.backdateMs));
    if (o.kind === 'fail') return Promise.reject(new ZtunnelError('IDENTITY_UNAVAILABLE', o.message));
    return new Promise((resolve, reject) => this.pending.push({ id: identity, resolve, reject }));
  }

  /** Answers the oldest manual call successfully. */
  answer(): void {
    const p = this.pending.shift();
    if (!p) throw new Error('no pending CA call');
    p.resolve(this.cert(p.id));
  }
}

function setup(extra: Partial<SecretManagerOptions> = {}): { time: FakeTime; ca: ScriptedCa; sm: SecretManager } {
  const time = new FakeTime();
  const ca = new ScriptedCa(time);
  const sm = new SecretManager({ ca, logger, now: time.now, random: () => 0.5, setTimer: time.setTimer, clearTimer: time.clearTimer, ...extra });
  return { time, ca, sm };
}

t.test('a certificate is refreshed at notBefore + half its lifetime and rotation is announced', async (t) => {
  const { time, ca, sm } = setup();
  ca.outcome = { kind: 'ok', lifetimeMs: 24 * HOUR_MS, backdateMs: 60_000 };
  const rotations: Array<[string, string, string]> = [];
  sm.onRotate((i, cert, prev) => rotations.push([formatIdentity(i), prev.serialNumber, cert.serialNumber]));
  const first = await sm.getCertificate(id('a'));
  const halfLifeMs = (first.notAfter.getTime() - first.notBefore.getTime()) / 2;
  const refreshInMs = first.notBefore.getTime() + halfLifeMs - time.nowMs;
  t.equal(refreshInMs, 12 * HOUR_MS - 30_000, 'refresh is due at notBefore + (notAfter - notBefore) / 2');
  t.equal(time.nextDelay(), refreshInMs, 'the one timer is set for that moment');
  t.same(sm.states().map((s) => s.state), ['Available']);

  await time.advance(refreshInMs - 1);
  t.same(ca.calls, ['a'], 'no refresh before half-life');
  t.equal(await sm.getCertificate(id('a')), first, 'cached certificate served meanwhile without a CA call');
  await time.advance(1);
  t.same(ca.calls, ['a', 'a'], 'refreshed at half-life');
  const second = await sm.getCertificate(id('a'));
  t.not(second.serialNumber, first.serialNumber, 'new certificate served after refresh');
  t.same(rotations, [['spiffe://cluster.local/ns/default/sa/a', first.serialNumber, second.serialNumber]], 'one rotation event with old and new');
  sm.close();
});

t.test('failed fetches back off about 1 s, doubling with ±20 % jitter, capped at 150 s', async (t) => {
  const randoms = [0.5, 0, 0.999, 0.25, 0.75];
  let r = 0;
  const { time, ca, sm } = setup({ random: () => randoms[r++ % randoms.length]! });
  ca.outcome = { kind: 'fail', message: 'CA down' };
  await t.rejects(sm.getCertificate(id('b')), { code: 'IDENTITY_UNAVAILABLE', message: 'CA down' });
  const delays: number[] = [];
  for (let i = 0; i < 12; i++) {
    const d = time.nextDelay();
    if (d === undefined) break;
    delays.push(d);
    await time.advance(d);
  }
  t.equal(ca.calls.length, 13, 'a retry happened after every delay');
  let base = INITIAL_BACKOFF_MS;
  delays.forEach((d, i) => {
    const rnd = randoms[i % randoms.length]!;
    t.equal(d, Math.round(base * (1 + 0.2 * (2 * rnd - 1))), `retry ${i + 1}: base ${base / 1000} s, jitter factor ${(0.8 + 0.4 * rnd).toFixed(2)}`);
    t.ok(d >= 0.8 * base && d <= 1.2 * base, `retry ${i + 1} within ±20 % of ${base / 1000} s`);
    base = Math.min(base * 2, MAX_BACKOFF_MS);
  });
  t.ok(delays[1]! > delays[0]!, 'backoff grows');
  t.ok(delays.slice(-3).every((d) => d >= 0.8 * MAX_BACKOFF_MS && d <= 1.2 * MAX_BACKOFF_MS), 'last retries are around the 150 s cap');
  t.match(sm.states()[0]!.state, /^Unavailable: CA down$/);
  await t.rejects(sm.getCertificate(id('b')), { code: 'IDENTITY_UNAVAILABLE' }, 'while backing off a waiting connection fails fast');
  t.equal(ca.calls.length, 13, 'without an extra CA call');

  ca.outcome = { kind: 'ok', lifetimeMs: HOUR_MS };
  await time.advance(time.nextDelay()!);
  t.same(sm.states().map((s) => s.state), ['Available'], 'recovers on the next retry');
  ca.outcome = { kind: 'fail', message: 'down again' };
  await time.advance(time.nextDelay()!); // half-life refresh fails
  const reset = time.nextDelay()!;
  t.ok(reset >= 0.8 * INITIAL_BACKOFF_MS && reset <= 1.2 * INITIAL_BACKOFF_MS, `a success resets the backoff to about 1 s (${reset} ms)`);
  sm.close();
});

t.test('a still-valid certificate keeps being served while the CA fails, until it expires', async (t) => {
  const { time, ca, sm } = setup();
  ca.outcome = { kind: 'ok', lifetimeMs: 4 * HOUR_MS };
  const cert = await sm.getCertificate(id('c'));
  ca.outcome = { kind: 'fail', message: 'istiod unreachable' };
  await time.advance(2 * HOUR_MS); // refresh at half-life fails
  t.equal(ca.calls.length, 2);
  t.equal(await sm.getCertificate(id('c')), cert, 'stale but valid certificate is served');
  t.same(sm.states().map((s) => s.state), ['Available'], 'state stays Available while valid');
  await time.advance(2 * HOUR_MS - 1);
  t.equal(await sm.getCertificate(id('c')), cert, 'still served one millisecond before notAfter');
  t.ok(ca.calls.length > 5, `retries continued in the background (${ca.calls.length} calls)`);
  await time.advance(1);
  await t.rejects(sm.getCertificate(id('c')), { code: 'IDENTITY_UNAVAILABLE' }, 'expired certificate is no longer served');
  const st = sm.states()[0]!;
  t.equal(st.state, 'Unavailable: istiod unreachable');
  t.equal(st.cert, cert, 'config_dump still shows the expired certificate');

  ca.outcome = { kind: 'ok', lifetimeMs: 4 * HOUR_MS };
  await time.advance(time.nextDelay()!);
  const fresh = await sm.getCertificate(id('c'));
  t.not(fresh.serialNumber, cert.serialNumber, 'a new certificate once the CA is back');
  sm.close();
});

t.test('concurrent callers for one identity share a single CA fetch', async (t) => {
  const { ca, sm } = setup();
  ca.outcome = { kind: 'manual' };
  const waits = Array.from({ length: 5 }, () => sm.getCertificate(id('d')));
  sm.prefetch(id('d'));
  await settle();
  t.equal(ca.calls.length, 1, 'one CA call');
  t.same(sm.states().map((s) => s.state), ['Initializing'], 'Initializing while the first fetch runs');
  ca.answer();
  const certs = await Promise.all(waits);
  t.ok(certs.every((c) => c === certs[0]), 'every caller gets the same certificate');
  sm.close();
});

t.test('with one fetch slot, queued fetches run RealTime first, then Warmup, then Background', async (t) => {
  const { time, ca, sm } = setup({ maxInFlight: 1 });
  ca.outcome = { kind: 'ok', lifetimeMs: 2 * HOUR_MS };
  await sm.getCertificate(id('background')); // refresh due in 1 h
  ca.outcome = { kind: 'manual' };
  sm.prefetch(id('first')); // takes the only slot
  await time.advance(HOUR_MS); // 'background' refresh is queued behind it
  sm.prefetch(id('warmup'));
  const realtime = sm.getCertificate(id('realtime'));
  sm.prefetch(id('promoted'));
  const promoted = sm.getCertificate(id('promoted')); // a waiting connection moves the prefetch up
  await settle();
  t.same(ca.calls, ['background', 'first'], 'only one fetch in flight');
  for (let i = 0; i < 5; i++) {
    ca.answer();
    await settle();
  }
  t.same(ca.calls, ['background', 'first', 'realtime', 'promoted', 'warmup', 'background'], 'priority order, FIFO within a priority');
  await realtime;
  await promoted;
  sm.close();
});

t.test('forget cancels the identity\'s timer, drops its certificate and rejects its queued waiters', async (t) => {
  const { time, ca, sm } = setup({ maxInFlight: 1 });
  await sm.getCertificate(id('e'));
  t.equal(time.timers.size, 1, 'refresh timer armed');
  sm.forget(id('e'));
  t.equal(time.timers.size, 0, 'timer cancelled');
  t.same(sm.states(), [], 'identity gone from config_dump');
  await sm.getCertificate(id('e'));
  t.equal(ca.calls.length, 2, 'asking again fetches anew');

  ca.outcome = { kind: 'manual' };
  const inFlight = sm.getCertificate(id('f'));
  const queued = sm.getCertificate(id('g'));
  await settle();
  sm.forget(id('g'));
  await t.rejects(queued, { code: 'IDENTITY_UNAVAILABLE', message: /forgotten/ }, 'queued waiter rejected');
  sm.forget(id('f'));
  ca.answer();
  const c = await inFlight;
  t.equal(c.identity.serviceAccount, 'f', 'an in-flight fetch still answers its waiter');
  await settle();
  t.same(sm.states().map((s) => s.identity), ['spiffe://cluster.local/ns/default/sa/e'], 'but the forgotten identity is not stored');
  t.equal(ca.calls.filter((x) => x === 'g').length, 0, 'the forgotten queued fetch never reached the CA');
  sm.close();
});

t.test('close clears every timer and refuses new requests', async (t) => {
  const { time, ca, sm } = setup();
  await sm.getCertificate(id('h'));
  ca.outcome = { kind: 'fail', message: 'x' };
  await t.rejects(sm.getCertificate(id('i')));
  t.equal(time.timers.size, 2, 'a refresh timer and a retry timer');
  sm.close();
  t.equal(time.timers.size, 0, 'no timer left to keep the process alive');
  const e = await sm.getCertificate(id('h')).catch((err: unknown) => err);
  t.ok(isZtunnelError(e) && e.code === 'IDENTITY_UNAVAILABLE', 'requests after close are refused');
});

t.test('default timers are unref\'d: a pending refresh does not keep the process alive', async (t) => {
  const { ca } = setup();
  const sm = new SecretManager({ ca, logger });
  const countTimeouts = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const before = countTimeouts();
  await sm.getCertificate(id('j'));
  t.equal(countTimeouts(), before, 'no ref\'d Timeout added by the refresh timer');
  sm.close();
});
