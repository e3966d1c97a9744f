/**
 * Status conditions in the Kubernetes convention (metav1.Condition): `lastTransitionTime` changes only when
 * `status` changes, so `kubectl describe` shows since when a resource has been (un)ready.
 */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime?: string;
  observedGeneration?: number;
}

/** Returns the list with `next` set (replacing the condition of the same type). */
export function setCondition(list: Condition[] | undefined, next: Condition, now = new Date()): Condition[] {
  const old = list?.find((c) => c.type === next.type);
  const lastTransitionTime =
    old && old.status === next.status && old.lastTransitionTime
      ? old.lastTransitionTime
      : now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return [...(list ?? []).filter((c) => c.type !== next.type), { ...next, lastTransitionTime }];
}

export function findCondition(list: Condition[] | undefined, type: string): Condition | undefined {
  return list?.find((c) => c.type === type);
}
