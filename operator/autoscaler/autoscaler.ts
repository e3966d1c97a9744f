/**
 * The delivery autoscaler: every `intervalMs`, per pool, reads the lag of the pool's JetStream consumer
 * (`delivery-<pool>` on OUTBOUND: num_pending + num_ack_pending), decides (decision.ts) and writes the
 * Deployment's scale subresource. It never acts on failed or stale consumer info: a lag it cannot trust leaves
 * the replica count alone (scaling a mail pool to zero because NATS was briefly unreachable would stop delivery
 * exactly when it is needed). A pool whose consumer does not exist yet (no worker ever ran: `minReplicas: 0`)
 * gets it created here, with the delivery service's own consumer settings, so its backlog becomes visible and
 * the pool can scale up from zero. The scale-down window survives leader changes (scale-state.ts).
 */
import { AppsV1Api, type KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { CONSUMERS, isConsumerNotFound, STREAMS } from '../../services/common/nats.ts';
import { ensureDeliveryConsumer } from '../../services/delivery/consumer.ts';
import { readDeliverySettings } from '../../services/delivery/settings.ts';
import type { OperatorMetrics } from '../metrics.ts';
import { describeError } from '../runtime/api-errors.ts';
import { decideReplicas, type ScaleState } from './decision.ts';
import type { PoolSettings } from './pools.ts';
import { decodeScaleState, encodeScaleState, STATE_ANNOTATION } from './scale-state.ts';

const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

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

async function consumerInfo(jsm: JetStreamManager, opts: AutoscalerOptions, pool: PoolSettings) {
  try {
    return await jsm.consumers.info(STREAMS.outbound, CONSUMERS.delivery(pool.name));
  } catch (err) {
    if (!isConsumerNotFound(err)) throw err;
    // The delivery service's defaults (env-independent): its workers update the consumer to their own
    // settings when they start; createOnly never overwrites what they set.
    const { ackWaitMs, concurrency } = readDeliverySettings({});
    await ensureDeliveryConsumer(opts.nc, { pool: pool.name, ackWaitMs, concurrency }, { createOnly: true });
    opts.logger.info({ pool: pool.name }, 'created the delivery pool consumer (no worker had yet)');
    return await jsm.consumers.info(STREAMS.outbound, CONSUMERS.delivery(pool.name));
  }
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
    const info = await consumerInfo(jsm, opts, pool);
    const now = Date.now();
    const serverAge = info.ts ? now - Date.parse(info.ts) : 0;
    if (now - started > maxAge || serverAge > maxAge) {
      opts.logger.warn({ pool: pool.name, serverAge }, 'stale consumer info; not scaling');
      return undefined;
    }
    return info.num_pending + info.num_ack_pending;
  } catch (err) {
    opts.logger.warn({ pool: pool.name, err: describeError(err) }, 'no consumer info; not scaling');
    return undefined;
  }
}

export async function startAutoscaler(opts: AutoscalerOptions): Promise<Autoscaler> {
  const apps = opts.kubeConfig.makeApiClient(AppsV1Api);
  const jsm = await jetstreamManager(opts.nc);
  const states = new Map<string, ScaleState>();
  /** The annotation value last read or written per pool: written again only when it changes. */
  const persisted = new Map<string, string | undefined>();
  let running = true;
  let wake: (() => void) | undefined;

  /** On this leader's first look at a pool: the window the previous leader was in, if still relevant. */
  const restore = async (pool: PoolSettings, ref: { name: string; namespace: string }) => {
    const d = await apps.readNamespacedDeployment(ref);
    const text = d.metadata?.annotations?.[STATE_ANNOTATION];
    persisted.set(pool.name, text);
    const state = decodeScaleState(text, pool, Date.now());
    if (state) {
      states.set(pool.name, state);
      opts.logger.info({ pool: pool.name, since: new Date(state.since) }, 'adopted the scale-down window');
    }
  };

  const persist = async (pool: PoolSettings, ref: { name: string; namespace: string }, state: ScaleState) => {
    const text = encodeScaleState(state, pool);
    if (text === persisted.get(pool.name)) return;
    await apps.patchNamespacedDeployment(
      { ...ref, body: { metadata: { annotations: { [STATE_ANNOTATION]: text ?? null } } } },
      MERGE_PATCH,
    );
    persisted.set(pool.name, text);
  };

  const evaluate = async (pool: PoolSettings) => {
    const ref = { name: pool.deployment, namespace: pool.namespace };
    if (!persisted.has(pool.name)) await restore(pool, ref);
    const lag = await readLag(jsm, opts, pool);
    if (lag === undefined) return;
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
    await persist(pool, ref, state);
  };

  const loop = (async () => {
    while (running) {
      for (const pool of opts.pools) {
        if (!running) break;
        await evaluate(pool).catch((err) =>
          opts.logger.warn({ pool: pool.name, err: describeError(err) }, 'autoscaler pass failed'),
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
