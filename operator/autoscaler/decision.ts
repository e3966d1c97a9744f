/**
 * The delivery autoscaler's decision, as pure functions (the HPA algorithm for one metric):
 * desired = ceil(lag / targetPerReplica) clamped to [min, max]; scaling up happens at once; scaling down goes
 * only to the highest recommendation seen during the stabilisation window, so a short dip never sheds workers
 * that the next burst needs. Until a whole window has been observed (e.g. after the operator starts), it never
 * scales down.
 */
import type { PoolSettings } from './pools.ts';

export interface Recommendation {
  at: number;
  replicas: number;
}

export interface ScaleState {
  /** When this pool was first observed (the window must be full before any scale-down). */
  since: number;
  history: Recommendation[];
}

export function desiredReplicas(lag: number, pool: PoolSettings): number {
  const raw = Math.ceil(Math.max(0, lag) / pool.targetPerReplica);
  return Math.min(pool.maxReplicas, Math.max(pool.minReplicas, raw));
}

/** Returns the replica count to set (possibly `current`) and the updated recommendation history. */
export function decideReplicas(input: {
  lag: number;
  current: number;
  now: number;
  pool: PoolSettings;
  state?: ScaleState;
}): { replicas: number; desired: number; state: ScaleState } {
  const { lag, current, now, pool } = input;
  const windowMs = pool.scaleDownStabilizationSeconds * 1000;
  const desired = desiredReplicas(lag, pool);
  const since = input.state?.since ?? now;
  const history = [
    ...(input.state?.history ?? []).filter((r) => r.at > now - windowMs),
    { at: now, replicas: desired },
  ];
  const state = { since, history };
  if (desired >= current) return { replicas: desired, desired, state };
  // Out-of-range current values (someone scaled by hand) are brought back into [min, max] at once.
  if (current > pool.maxReplicas) return { replicas: pool.maxReplicas, desired, state };
  if (now - since < windowMs) return { replicas: current, desired, state };
  const stabilised = Math.max(...history.map((r) => r.replicas));
  return { replicas: Math.min(current, stabilised), desired, state };
}
