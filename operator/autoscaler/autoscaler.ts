/**
 * The delivery autoscaler: every `intervalMs`, per pool, reads the lag of the pool's JetStream consumer
 * (`delivery-<pool>` on OUTBOUND: num_pending + num_ack_pending), decides (decision.ts) and writes the
 * Deployment's scale subresource. It never acts on missing, failed or stale consumer info: a lag it cannot
 * trust leaves the replica count alone (scaling a mail pool to zero because NATS was briefly unreachable
 * would stop delivery exactly when it is needed).
 */
import { AppsV1Api, type KubeConfig } from '@kubernetes/client-node';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { CONSUMERS, STREAMS } from '../../services/common/nats.ts';
import type { OperatorMetrics } from '../metrics.ts';
import { decideReplicas, type ScaleState } from './decision.ts';
import type { PoolSettings } from './pools.ts';

export interface AutoscalerOptions {
  kubeConfig: KubeConfig;
  nc: NatsConnection;
  pools: PoolSettings[];
  logger: Logger;
  metrics: OperatorMetrics;
  /** How often each pool is evaluated (default 5 s). */
  intervalMs?: number;
  /** Consumer info older than this (server timestamp, or our own round trip) is not acted on (default 30 s). */
  maxInfoAgeMs?: number;
}

export interface Autoscaler {
  stop(): Promise<void>;
}

/** Reads a pool's lag; undefined when the info is missing, failed or stale. */
async function readLag(
  jsm: JetStreamManager,
  opts: AutoscalerOptions,
  pool: PoolSettings,
): Promise<number | undefined> {
  const started = Date.now();
  const maxAge = opts.maxInfoAgeMs ?? 30_000;
  try {
    const info = await jsm.consumers.info(STREAMS.outbound, CONSUMERS.delivery(pool.name));
    const now = Date.now();
    const serverAge = info.ts ? now - Date.parse(info.ts) : 0;
    if (now - started > maxAge || serverAge > maxAge) {
      opts.logger.warn({ pool: pool.name, serverAge }, 'stale consumer info; not scaling');
      return undefined;
    }
    return info.num_pending + info.num_ack_pending;
  } catch (err) {
    opts.logger.warn({ pool: pool.name, err: (err as Error).message }, 'no consumer info; not scaling');
    return undefined;
  }
}

export async function startAutoscaler(opts: AutoscalerOptions): Promise<Autoscaler> {
  const apps = opts.kubeConfig.makeApiClient(AppsV1Api);
  const jsm = await jetstreamManager(opts.nc);
  const states = new Map<string, ScaleState>();
  let running = true;
  let wake: (() => void) | undefined;

  const evaluate = async (pool: PoolSettings) => {
    const lag = await readLag(jsm, opts, pool);
    if (lag === undefined) return;
    const ref = { name: pool.deployment, namespace: pool.namespace };
    const scale = await apps.readNamespacedDeploymentScale(ref);
    const current = scale.spec?.replicas ?? 0;
    const { replicas, desired, state } = decideReplicas({
      lag,
      current,
      now: Date.now(),
      pool,
      state: states.get(pool.name),
    });
    states.set(pool.name, state);
    opts.metrics.deliveryLag.set({ pool: pool.name }, lag);
    if (replicas !== current) {
      // replace carries the resourceVersion we read: a concurrent change makes this fail and we retry next tick.
      await apps.replaceNamespacedDeploymentScale({ ...ref, body: { ...scale, spec: { replicas } } });
      opts.logger.info(
        { pool: pool.name, lag, desired, from: current, to: replicas },
        'scaled delivery pool',
      );
    }
    opts.metrics.deliveryReplicas.set({ pool: pool.name }, replicas);
  };

  const loop = (async () => {
    while (running) {
      for (const pool of opts.pools) {
        if (!running) break;
        await evaluate(pool).catch((err) =>
          opts.logger.warn({ pool: pool.name, err: (err as Error).message }, 'autoscaler pass failed'),
        );
      }
      await new Promise<void>((res) => {
        const t = setTimeout(res, opts.intervalMs ?? 5000);
        wake = () => {
          clearTimeout(t);
          res();
        };
      });
    }
  })();

  return {
    async stop() {
      running = false;
      wake?.();
      await loop;
    },
  };
}
