import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AppsV1Api } from '@kubernetes/client-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { PoolSettings } from '../../operator/autoscaler/pools.ts';
import { STATE_ANNOTATION } from '../../operator/autoscaler/scale-state.ts';
import { type Operator, startOperator } from '../../operator/operator.ts';
import {
  CONSUMERS,
  connectNats,
  ensureConsumer,
  ensureTopology,
  STREAMS,
  SUBJECTS,
} from '../../services/common/nats.ts';
import { deliveryConsumerSpec } from '../../services/delivery/consumer.ts';
import { readDeliverySettings } from '../../services/delivery/settings.ts';
import { type ControlPlane, startControlPlane } from '../helpers/envtest.ts';
import { startTestNats, type TestNats } from '../helpers/nats.ts';
import { createNamespace, installCrds, waitFor } from '../helpers/operator.ts';

const NS = 'postern';
const WINDOW_S = 4;
const JOBS = 25;
const logger = pino({ level: process.env['LOG_LEVEL'] ?? 'silent' });

const pools: PoolSettings[] = [
  // Scales to zero and has never run a worker, so no consumer exists: the operator must create it (with the
  // delivery service's own settings) to see the backlog and start the pool.
  {
    name: 'bulk',
    deployment: 'delivery-bulk',
    namespace: NS,
    minReplicas: 0,
    maxReplicas: 5,
    targetPerReplica: 10,
    scaleDownStabilizationSeconds: WINDOW_S,
  },
  {
    name: 'default',
    deployment: 'delivery-default',
    namespace: NS,
    minReplicas: 1,
    maxReplicas: 5,
    targetPerReplica: 10,
    scaleDownStabilizationSeconds: WINDOW_S,
  },
];

describe('delivery autoscaler (real JetStream consumer, real Deployment scale subresource)', () => {
  let cp: ControlPlane;
  let nats: TestNats;
  let nc: NatsConnection;
  let op: Operator;
  let apps: AppsV1Api;

  const deployment = (name: string, replicas: number) => ({
    metadata: { name, namespace: NS },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'delivery', image: 'postern:test' }] },
      },
    },
  });
  const startAutoscalingOperator = (identity: string) =>
    startOperator({
      kubeConfig: cp.kubeConfig,
      nc,
      logger,
      registry: new Registry(),
      settings: { leaderElection: false, identity, pools, autoscaleIntervalMs: 200 },
    });
  const windowAnnotation = async (name: string) =>
    (await apps.readNamespacedDeployment({ name, namespace: NS })).metadata?.annotations?.[STATE_ANNOTATION];
  const replicas = async (name: string) =>
    (await apps.readNamespacedDeploymentScale({ name, namespace: NS })).spec?.replicas;
  const gauge = async (name: 'deliveryLag' | 'deliveryReplicas', pool: string) =>
    (await op.metrics[name].get()).values.find((v) => v.labels['pool'] === pool)?.value;

  before(async () => {
    [cp, nats] = await Promise.all([startControlPlane(), startTestNats()]);
    await installCrds(cp.kubeConfig);
    await createNamespace(cp.kubeConfig, NS);
    apps = cp.kubeConfig.makeApiClient(AppsV1Api);
    await apps.createNamespacedDeployment({ namespace: NS, body: deployment('delivery-default', 1) });
    await apps.createNamespacedDeployment({ namespace: NS, body: deployment('delivery-bulk', 0) });
    nc = await connectNats(nats.url, 'autoscaler-test');
    await ensureTopology(nc);
    await ensureConsumer(
      nc,
      STREAMS.outbound,
      CONSUMERS.delivery('default'),
      SUBJECTS.outboundPool('default'),
    );
    // Mail for the bulk pool is waiting before anything ever consumed it: no consumer exists yet.
    const js = jetstream(nc);
    for (let i = 0; i < JOBS; i++) {
      await js.publish(SUBJECTS.outbound('bulk', 'example.net'), `bulk ${i}`, { msgID: `bulk-${i}` });
    }
    await assert.rejects(
      (await jetstreamManager(nc)).consumers.info(STREAMS.outbound, CONSUMERS.delivery('bulk')),
    );
    op = await startAutoscalingOperator('op-1');
  });
  after(async () => {
    await op?.close();
    await nc?.close();
    await nats?.cleanup();
    await cp?.stop();
  });

  it('a backlog on the pool consumer raises replicas to ceil(lag / targetPerReplica)', async () => {
    const js = jetstream(nc);
    for (let i = 0; i < JOBS; i++) {
      await js.publish(SUBJECTS.outbound('default', 'example.com'), `job ${i}`, { msgID: `job-${i}` });
    }
    await waitFor('replicas at 3', async () => (await replicas('delivery-default')) === Math.ceil(JOBS / 10));
    assert.equal(await gauge('deliveryLag', 'default'), JOBS);
    assert.equal(await gauge('deliveryReplicas', 'default'), 3);
  });

  it('a new leader adopts the scale-down window; replicas fall only once it has passed', async () => {
    // The window the leader is in lives on the Deployment: recommendations above minReplicas and its start.
    const before = JSON.parse(
      (await waitFor('window annotation', () => windowAnnotation('delivery-default')))!,
    );
    assert.deepEqual(
      before.history.map(([, r]: [number, number]) => r),
      [3],
    );
    // Leader change while the backlog is still there.
    await op.close();
    op = await startAutoscalingOperator('op-2');
    await waitFor(
      'the new leader rewrote the window',
      async () => (await windowAnnotation('delivery-default')) !== JSON.stringify(before),
    );
    const adopted = JSON.parse((await windowAnnotation('delivery-default'))!);
    assert.equal(adopted.since, before.since, 'the new leader restarted the window instead of adopting it');

    const consumer = await jetstream(nc).consumers.get(STREAMS.outbound, CONSUMERS.delivery('default'));
    // The last tick that saw the backlog ran at most one interval (200 ms) before this moment.
    const drainStarted = Date.now();
    let acked = 0;
    for (let round = 0; round < 10 && acked < JOBS; round++) {
      const batch = await consumer.fetch({ max_messages: JOBS, expires: 2000 });
      for await (const m of batch) {
        await m.ackAck();
        acked++;
      }
    }
    assert.equal(acked, JOBS);
    await waitFor('lag 0 observed', async () => (await gauge('deliveryLag', 'default')) === 0);
    await waitFor('replicas back to 1', async () => (await replicas('delivery-default')) === 1, 60_000);
    // A lower bound only (the decision forbids an earlier scale-down); no upper bound is asserted.
    assert.ok(Date.now() - drainStarted >= WINDOW_S * 1000 - 1000, 'scaled down before the window passed');
    // Nothing above minReplicas is left to remember: the annotation goes.
    await waitFor(
      'window annotation removed',
      async () => (await windowAnnotation('delivery-default')) === undefined,
    );
  });

  it('a pool with minReplicas 0 and no consumer scales up from zero when jobs are waiting', async () => {
    const jsm = await jetstreamManager(nc);
    await waitFor('bulk pool at 3 replicas', async () => (await replicas('delivery-bulk')) === 3);
    // The consumer is the one delivery workers would create (services/delivery/consumer.ts).
    const info = await jsm.consumers.info(STREAMS.outbound, CONSUMERS.delivery('bulk'));
    const spec = deliveryConsumerSpec({ ...readDeliverySettings({}), pool: 'bulk' });
    assert.equal(info.config.filter_subject, spec.filter);
    assert.equal(info.config.ack_wait, spec.ackWaitMs! * 1_000_000);
    assert.equal(info.config.max_ack_pending, spec.maxAckPending);
    assert.equal(info.num_pending, JOBS);
  });
});
