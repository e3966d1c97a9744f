/**
 * Durations as users write them in resources and config: "30s", "5m", "1h", "5d", "1h30m", "250ms".
 * The same pattern is used by the CRD schema, so the API server refuses what this parser would refuse.
 */
export const DURATION_PATTERN = '^([0-9]+(ms|s|m|h|d))+$';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a duration string into milliseconds; throws a clear error on anything else. */
export function parseDuration(text: string): number {
  if (!new RegExp(DURATION_PATTERN).test(text)) {
    throw new Error(`invalid duration "${text}" (expected e.g. 30s, 5m, 1h, 5d)`);
  }
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/([0-9]+)(ms|s|m|h|d)/g)) {
    total += Number(amount) * UNIT_MS[unit as string]!;
  }
  return total;
}
