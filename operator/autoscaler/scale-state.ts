/**
 * The autoscaler's scale-down memory, persisted on the pool's Deployment (annotation
 * `postern.dev/autoscaler-state`) so that a new leader honours the stabilisation window the previous one was in,
 * instead of starting a fresh window (or, worse, forgetting the recommendations that hold replicas up).
 *
 * Only what can still matter is kept: recommendations above minReplicas (the floor never holds replicas up) that
 * no later, at-least-as-high recommendation outlives (those can never be the window's maximum). Times are rounded
 * UP to `GRANULARITY_MS`, so the stored window only ever errs towards keeping replicas a little longer, and a
 * steady recommendation rewrites the annotation at most once per granule.
 */
import type { ScaleState } from './decision.ts';
import type { PoolSettings } from './pools.ts';

export const STATE_ANNOTATION = 'postern.dev/autoscaler-state';
export const GRANULARITY_MS = 5000;

interface Persisted {
  /** When the (first) leader started observing this pool: no scale-down before a full window. */
  since: number;
  /** [time (ms since epoch), replicas], oldest first, replicas strictly decreasing. */
  history: [number, number][];
}

/** The annotation value for `state`, or undefined when nothing in it can affect a future decision. */
export function encodeScaleState(state: ScaleState, pool: PoolSettings): string | undefined {
  const kept: [number, number][] = [];
  for (const r of state.history) {
    if (r.replicas <= pool.minReplicas) continue;
    while (kept.length && kept[kept.length - 1]![1] <= r.replicas) kept.pop();
    kept.push([Math.ceil(r.at / GRANULARITY_MS) * GRANULARITY_MS, r.replicas]);
  }
  if (!kept.length) return undefined;
  const p: Persisted = { since: state.since, history: kept };
  return JSON.stringify(p);
}

/**
 * The state a new leader adopts from the annotation: only when some recommendation in it is still inside the
 * window (the previous leader observed the pool recently); otherwise undefined, and a fresh window starts.
 */
export function decodeScaleState(
  text: string | undefined,
  pool: PoolSettings,
  now: number,
): ScaleState | undefined {
  if (!text) return undefined;
  let p: Persisted;
  try {
    p = JSON.parse(text) as Persisted;
  } catch {
    return undefined;
  }
  if (!Number.isFinite(p?.since) || !Array.isArray(p.history)) return undefined;
  const windowMs = pool.scaleDownStabilizationSeconds * 1000;
  const history = p.history
    .filter((e) => Array.isArray(e) && Number.isFinite(e[0]) && Number.isInteger(e[1]))
    .filter(([at]) => at > now - windowMs)
    .map(([at, replicas]) => ({ at, replicas }));
  if (!history.length) return undefined;
  return { since: Math.min(p.since, now), history };
}
