/**
 * A token bucket shared by every delivery process: one KV key per site and kind (`<site key>.rate` for messages,
 * `<site key>.cpm` for new connections) in the `site-leases` bucket, changed only by compare-and-set. A key
 * nobody wrote within the bucket's TTL is gone, which reads as a full bucket — right, since the TTL is longer than
 * a refill. Bound: grants over any interval [t, t + w] ≤ burst + rate × w (burst = one second's worth, ≥ 1).
 *
 * To keep the cost per message low at high rates a process takes up to a quarter second's worth of tokens per
 * compare-and-set and spends them locally within `LOCAL_HOLD_MS`; unspent ones are dropped, never returned (so
 * the bound above, shifted by at most LOCAL_HOLD_MS, still holds for sends).
 */
import type { KV } from '@nats-io/kv';
import { type BucketState, isCasConflict } from '../../common/sites.ts';
import { burstOf } from './limits.ts';

export type { BucketState };

const LOCAL_HOLD_MS = 1000;

/** The bucket at `now`: refilled at perMinute, capped at the burst. Pure. */
export function refill(s: BucketState | undefined, perMinute: number, now: number): BucketState {
  const burst = burstOf(perMinute);
  const win = Math.floor(now / 60_000) * 60_000;
  if (!s) return { tokens: burst, at: now, win, n: 0, prev: 0 };
  const tokens = Math.min(burst, s.tokens + (Math.max(0, now - s.at) * perMinute) / 60_000);
  const rolled = win === s.win ? { n: s.n, prev: s.prev } : { n: 0, prev: win - s.win === 60_000 ? s.n : 0 };
  return { tokens, at: now, win, ...rolled };
}

/** Takes up to `want` whole tokens (pure): how many were granted, or how long until one is there. */
export function take(
  s: BucketState,
  perMinute: number,
  want: number,
): { state: BucketState; granted: number; waitMs: number } {
  if (s.tokens >= 1) {
    const granted = Math.min(want, Math.floor(s.tokens));
    return { state: { ...s, tokens: s.tokens - granted, n: s.n + granted }, granted, waitMs: 0 };
  }
  return { state: s, granted: 0, waitMs: Math.ceil(((1 - s.tokens) * 60_000) / perMinute) };
}

export class SharedTokenBuckets {
  #kv: KV;
  #local = new Map<string, { tokens: number; expires: number }>();

  constructor(kv: KV) {
    this.#kv = kv;
  }

  /** One token for `key` at `perMinute`: 0 when granted, else milliseconds until one may be there. */
  async takeOne(key: string, perMinute: number): Promise<number> {
    const now = Date.now();
    const held = this.#local.get(key);
    if (held && held.tokens > 0 && held.expires > now) {
      held.tokens--;
      return 0;
    }
    this.#local.delete(key);
    // A quarter second's worth per round trip at high rates; one at a time below 4 per second.
    const want = Math.max(1, Math.floor(perMinute / 240));
    for (let i = 0; i < 20; i++) {
      const e = await this.#kv.get(key);
      const current = e && e.operation === 'PUT' && e.length > 0 ? e.json<BucketState>() : undefined;
      const r = take(refill(current, perMinute, Date.now()), perMinute, want);
      if (r.granted === 0) return r.waitMs;
      try {
        if (current && e) await this.#kv.update(key, JSON.stringify(r.state), e.revision);
        else await this.#kv.create(key, JSON.stringify(r.state));
      } catch (err) {
        if (isCasConflict(err)) continue;
        throw err;
      }
      if (r.granted > 1) this.#local.set(key, { tokens: r.granted - 1, expires: Date.now() + LOCAL_HOLD_MS });
      return 0;
    }
    // Twenty lost races in a row: the bucket is contended; come back shortly rather than spin.
    return 50 + Math.floor(Math.random() * 200);
  }

  /** The observed grants per minute (last full minute, else the current one) of a bucket. */
  async observed(key: string): Promise<number | undefined> {
    const e = await this.#kv.get(key);
    if (e?.operation !== 'PUT' || e.length === 0) return undefined;
    const s = e.json<BucketState>();
    const r = refill(s, 1, Date.now());
    return r.prev || r.n;
  }
}
