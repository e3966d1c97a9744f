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

/** How far ahead a waiting job may reserve its token (GCRA-style), so a backlog does not wake all at once. */
export const RESERVE_HORIZON_MS = 15 * 60_000;

/**
 * Takes up to `want` whole tokens (pure). An empty bucket gives a reservation instead: the token is taken now
 * (the bucket goes below zero, at most RESERVE_HORIZON_MS of tokens) and `waitMs` says when it is due — so a
 * backlog of jobs gets distinct, spread-out times instead of all waking for the same next token.
 */
export function take(
  s: BucketState,
  perMinute: number,
  want: number,
): { state: BucketState; granted: number; waitMs: number; reserved: boolean } {
  if (s.tokens >= 1) {
    const granted = Math.min(want, Math.floor(s.tokens));
    return {
      state: { ...s, tokens: s.tokens - granted, n: s.n + granted },
      granted,
      waitMs: 0,
      reserved: false,
    };
  }
  const interval = 60_000 / perMinute;
  const after = s.tokens - 1;
  if (-after * interval <= RESERVE_HORIZON_MS)
    return {
      state: { ...s, tokens: after, n: s.n + 1 },
      granted: 0,
      waitMs: Math.ceil(-after * interval),
      reserved: true,
    };
  return { state: s, granted: 0, waitMs: RESERVE_HORIZON_MS, reserved: false };
}

export class SharedTokenBuckets {
  #kv: KV;
  #local = new Map<string, { tokens: number; expires: number }>();

  constructor(kv: KV) {
    this.#kv = kv;
  }

  /**
   * One token for `key` at `perMinute`: `waitMs` 0 when granted now; else when to come back, and whether a token
   * is reserved for then (the caller then sends without taking another).
   */
  async takeOne(
    key: string,
    perMinute: number,
    reserve = false,
  ): Promise<{ waitMs: number; reserved: boolean }> {
    const now = Date.now();
    const held = this.#local.get(key);
    if (held && held.tokens > 0 && held.expires > now) {
      held.tokens--;
      return { waitMs: 0, reserved: false };
    }
    this.#local.delete(key);
    // A quarter second's worth per round trip at high rates; one at a time below 4 per second.
    const want = Math.max(1, Math.floor(perMinute / 240));
    for (let i = 0; i < 20; i++) {
      const e = await this.#kv.get(key);
      const current = e && e.operation === 'PUT' && e.length > 0 ? e.json<BucketState>() : undefined;
      const r = take(refill(current, perMinute, Date.now()), perMinute, want);
      if (r.granted === 0 && (!reserve || !r.reserved)) return { waitMs: r.waitMs, reserved: false };
      try {
        if (current && e) await this.#kv.update(key, JSON.stringify(r.state), e.revision);
        else await this.#kv.create(key, JSON.stringify(r.state));
      } catch (err) {
        if (isCasConflict(err)) continue;
        throw err;
      }
      if (r.granted > 1) this.#local.set(key, { tokens: r.granted - 1, expires: Date.now() + LOCAL_HOLD_MS });
      return { waitMs: r.waitMs, reserved: r.reserved };
    }
    // Twenty lost races in a row: the bucket is contended; come back shortly rather than spin.
    return { waitMs: 50 + Math.floor(Math.random() * 200), reserved: false };
  }
}
