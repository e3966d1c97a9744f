/**
 * Status writing shared by the reconcilers: conditions with observedGeneration, written only when something
 * changed (a status write is itself a watch event), and a Kubernetes Event whenever a condition flips.
 */
import { isDeepStrictEqual } from 'node:util';
import type { KubernetesObject } from '@kubernetes/client-node';
import { type Condition, setCondition } from '../runtime/conditions.ts';
import type { CustomResources } from '../runtime/custom-resources.ts';
import type { EventRecorder } from '../runtime/events.ts';

/** The finalizer that guarantees a resource's KV document is removed before the resource disappears. */
export const FINALIZER = 'postern.dev/config';

export interface Status {
  observedGeneration?: number;
  conditions?: Condition[];
  dkimDNSRecord?: string;
  matchedDomains?: string[];
}

/** Condition type → [status, reason, message]. */
export type ConditionUpdates = Record<string, [Condition['status'], string, string]>;

export async function writeStatus<T extends KubernetesObject & { status?: Status }>(
  deps: { resources: CustomResources<T>; events: EventRecorder },
  obj: T,
  updates: ConditionUpdates,
  fields: Omit<Status, 'conditions' | 'observedGeneration'> = {},
): Promise<void> {
  const old = obj.status ?? {};
  const generation = obj.metadata?.generation;
  let conditions = old.conditions;
  for (const [type, [status, reason, message]] of Object.entries(updates)) {
    conditions = setCondition(conditions, { type, status, reason, message, observedGeneration: generation });
  }
  const next: Status = { ...old, ...fields, observedGeneration: generation, conditions };
  // Key order differs between what we build and what the API server returns; compare structurally.
  if (isDeepStrictEqual(JSON.parse(JSON.stringify(next)), old)) return;
  await deps.resources.patchStatus(obj, next as Record<string, unknown>);
  for (const [type, [status, reason, message]] of Object.entries(updates)) {
    const before = old.conditions?.find((c) => c.type === type);
    if (before?.status === status && before.reason === reason) continue;
    await deps.events.record(
      obj,
      status === 'False' ? 'Warning' : 'Normal',
      reason,
      `${type}=${status}: ${message}`,
    );
  }
}
