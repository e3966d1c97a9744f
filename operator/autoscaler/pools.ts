/**
 * Delivery pool settings of the autoscaler, from env `POSTERN_POOLS` (JSON array; the Helm chart renders it
 * from values): `[{"name":"default","deployment":"postern-delivery-default","namespace":"postern",
 * "minReplicas":1,"maxReplicas":10,"targetPerReplica":500,"scaleDownStabilizationSeconds":300}]`.
 */
import { Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

export const PoolSettings = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$' }),
    deployment: Type.String({ minLength: 1 }),
    namespace: Type.String({ minLength: 1 }),
    minReplicas: Type.Integer({ minimum: 0, default: 1 }),
    maxReplicas: Type.Integer({ minimum: 1, default: 10 }),
    /** Messages of lag one replica is expected to handle. */
    targetPerReplica: Type.Integer({ minimum: 1, default: 100 }),
    scaleDownStabilizationSeconds: Type.Number({ minimum: 0, default: 300 }),
  },
  { additionalProperties: false },
);
export interface PoolSettings {
  name: string;
  deployment: string;
  namespace: string;
  minReplicas: number;
  maxReplicas: number;
  targetPerReplica: number;
  scaleDownStabilizationSeconds: number;
}

/** Parses POSTERN_POOLS; `namespace` defaults to `defaultNamespace`. Throws a readable error when invalid. */
export function parsePools(json: string | undefined, defaultNamespace = 'default'): PoolSettings[] {
  if (!json?.trim()) return [];
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new Error(`POSTERN_POOLS is not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(raw)) throw new Error('POSTERN_POOLS must be a JSON array');
  return raw.map((entry, i) => {
    const pool = Value.Default(PoolSettings, { namespace: defaultNamespace, ...(entry as object) });
    const errors = [...Value.Errors(PoolSettings, pool)].map((e) => `${e.path || '/'} ${e.message}`);
    if (errors.length) throw new Error(`POSTERN_POOLS[${i}]: ${errors.join('; ')}`);
    const p = pool as PoolSettings;
    if (p.minReplicas > p.maxReplicas) throw new Error(`POSTERN_POOLS[${i}]: minReplicas > maxReplicas`);
    return p;
  });
}
