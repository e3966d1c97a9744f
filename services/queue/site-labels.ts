/**
 * Bounded `site` label values for per-site metrics: the sites with the most events in the last period keep their
 * own label, every other site is `other`. Without a bound, a queue relaying to 100k domains would create 100k
 * series. Per queue process; a dashboard sums over processes.
 *
 * Between recomputations a site keeps the label it was given, and a new site gets its own label while fewer
 * than `top` sites hold one; at each period's end the `top` busiest sites of that period are chosen afresh and
 * the labels that lost their place are handed to `onDropped` (to remove their series).
 */
export const OTHER_SITE = 'other';

export class TopSites {
  readonly #top: number;
  readonly #periodMs: number;
  readonly #maxTracked: number;
  readonly #onDropped: (site: string) => void;
  #counts = new Map<string, number>();
  #labelled = new Set<string>();
  #periodStart: number;

  constructor(opts: {
    top: number;
    periodMs?: number;
    /** Distinct sites counted per period; beyond it new sites are `other` until the next period. */
    maxTracked?: number;
    onDropped?: (site: string) => void;
    now?: number;
  }) {
    this.#top = opts.top;
    this.#periodMs = opts.periodMs ?? 10 * 60_000;
    this.#maxTracked = opts.maxTracked ?? 10_000;
    this.#onDropped = opts.onDropped ?? (() => {});
    this.#periodStart = opts.now ?? Date.now();
  }

  /** Counts one event for `site` and returns the label to record it under. */
  label(site: string, now = Date.now()): string {
    if (now - this.#periodStart >= this.#periodMs) this.#rotate(now);
    if (this.#counts.has(site) || this.#counts.size < this.#maxTracked) {
      this.#counts.set(site, (this.#counts.get(site) ?? 0) + 1);
    }
    if (this.#labelled.has(site)) return site;
    if (this.#labelled.size < this.#top) {
      this.#labelled.add(site);
      return site;
    }
    return OTHER_SITE;
  }

  #rotate(now: number): void {
    const next = new Set(
      [...this.#counts.entries()]
        .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
        .slice(0, this.#top)
        .map(([site]) => site),
    );
    for (const site of this.#labelled) if (!next.has(site)) this.#onDropped(site);
    this.#labelled = next;
    this.#counts = new Map();
    this.#periodStart = now;
  }
}
