/**
 * Flat or growing? A least-squares line through a series' samples (x in seconds), and the verdict the soak run
 * prints: the growth the line predicts over the judged window, against a tolerance that is the larger of a
 * share of the series' mean and an absolute floor (an RSS wobbling by a few MB around 150 MB is flat).
 */

export interface Trend {
  /** Units per hour. */
  slopePerHour: number;
  mean: number;
  /** Growth the fitted line predicts from the first to the last judged sample. */
  growth: number;
  verdict: 'flat' | 'growing' | 'shrinking';
}

export function trend(points: Array<[number, number]>, tolerance: { share: number; floor: number }): Trend {
  const n = points.length;
  if (n < 2) return { slopePerHour: 0, mean: points[0]?.[1] ?? 0, growth: 0, verdict: 'flat' };
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
  }
  const slope = sxx === 0 ? 0 : sxy / sxx;
  const span = (points[n - 1]?.[0] ?? 0) - (points[0]?.[0] ?? 0);
  const growth = slope * span;
  const allowed = Math.max(tolerance.share * Math.abs(my), tolerance.floor);
  return {
    slopePerHour: slope * 3600,
    mean: my,
    growth,
    verdict: growth > allowed ? 'growing' : growth < -allowed ? 'shrinking' : 'flat',
  };
}
