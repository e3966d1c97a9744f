/**
 * Per-client message rate (RelayPolicy limits.messagesPerMinute), the pure parts: the sliding-window estimate the
 * cluster-wide counters are judged by (client-rate.ts), and the in-memory per-replica window used when those
 * counters cannot be reached.
 *
 * The estimate is the "sliding window counter": two fixed one-minute windows, the previous one weighted by the
 * share of it still inside the last 60 seconds. It avoids the fixed window's double burst at a minute boundary
 * with two numbers per client instead of a timestamp per message.
 */

export const WINDOW_MS = 60_000;
/** Bounds memory per key of the local fallback window. */
const MAX_PER_KEY = 10_000;

/** The fixed one-minute window `now` falls in, and how far into it (0 ≤ elapsed < 1). */
export function windowOf(now: number): { index: number; elapsed: number } {
  const index = Math.floor(now / WINDOW_MS);
  return { index, elapsed: (now - index * WINDOW_MS) / WINDOW_MS };
}

/**
 * Messages counted against the client for the last minute: the current window's count (including the message
 * being decided) plus the previous window's count weighted by the part of it still inside the last minute.
 * Rounded down, so a client spreading exactly `limit` messages evenly is never refused.
 */
export function slidingEstimate(previous: number, current: number, elapsed: number): number {
  return Math.floor(previous * (1 - elapsed)) + current;
}

/** True when admitting the message just counted would exceed the limit. */
export function overLimit(previous: number, current: number, elapsed: number, limit: number): boolean {
  return slidingEstimate(previous, current, elapsed) > limit;
}

/**
 * The per-replica fallback: a sliding one-minute log of accept times per key. Used only while the cluster
 * counters do not answer; with N replicas a client can then reach N× the limit.
 */
export class RateWindow {
  #hits = new Map<string, number[]>();

  /** Messages recorded for `key` during the last minute. */
  count(key: string, now = Date.now()): number {
    const list = this.#prune(key, now);
    return list?.length ?? 0;
  }

  /** Records one accepted message. */
  record(key: string, now = Date.now()): void {
    const list = this.#prune(key, now) ?? [];
    list.push(now);
    if (list.length > MAX_PER_KEY) list.splice(0, list.length - MAX_PER_KEY);
    this.#hits.set(key, list);
  }

  /** Drops keys with no recent hits; called periodically so idle clients do not accumulate. */
  sweep(now = Date.now()): void {
    for (const key of [...this.#hits.keys()]) this.#prune(key, now);
  }

  #prune(key: string, now: number): number[] | undefined {
    const list = this.#hits.get(key);
    if (!list) return undefined;
    let drop = 0;
    while (drop < list.length && (list[drop] as number) <= now - WINDOW_MS) drop++;
    if (drop) list.splice(0, drop);
    if (list.length === 0) {
      this.#hits.delete(key);
      return undefined;
    }
    return list;
  }
}
