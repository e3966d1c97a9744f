/** Small statistics for bench figures: nearest-rank percentiles and per-interval throughput. */

/** Nearest-rank percentile (p in 0..100) of unsorted values; NaN for an empty list. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

/** p50/p95/p99/max in milliseconds, rounded to 0.1 ms. */
export interface Latency {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export function latency(valuesMs: readonly number[]): Latency {
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    count: valuesMs.length,
    p50: r(percentile(valuesMs, 50)),
    p95: r(percentile(valuesMs, 95)),
    p99: r(percentile(valuesMs, 99)),
    max: r(percentile(valuesMs, 100)),
  };
}

/** Events per second in consecutive buckets from `t0` (epoch ms): [seconds since t0, rate]. */
export function timeline(timesMs: readonly number[], t0: number, bucketMs = 500): Array<[number, number]> {
  if (timesMs.length === 0) return [];
  let end = t0;
  for (const t of timesMs) if (t > end) end = t;
  const buckets = new Array<number>(Math.floor((end - t0) / bucketMs) + 1).fill(0);
  for (const t of timesMs) {
    const i = Math.floor((t - t0) / bucketMs);
    if (i >= 0 && i < buckets.length) buckets[i]! += 1;
  }
  return buckets.map((n, i) => [((i + 1) * bucketMs) / 1000, (n * 1000) / bucketMs]);
}

/** Rate over a span, or 0 when the span is empty. */
export function rate(count: number, fromMs: number, toMs: number): number {
  return toMs > fromMs ? Math.round((count * 1000 * 10) / (toMs - fromMs)) / 10 : 0;
}
