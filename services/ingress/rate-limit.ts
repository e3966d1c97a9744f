/**
 * Per-client message rate (RelayPolicy limits.messagesPerMinute): a sliding one-minute window of accept times
 * per key. In memory per ingress replica, so with N replicas a client can reach N× the limit (documented gap).
 */

const WINDOW_MS = 60_000;
/** Bounds memory per key: no policy limit above this is meaningful per replica. */
const MAX_PER_KEY = 10_000;

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
