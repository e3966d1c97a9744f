import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AppsV1Api } from '@kubernetes/client-node';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { PoolSettings } from '../../operator/autoscaler/pools.ts';
import { type Operator, startOperator } from '../../operator/operator.ts';
import {
  CONSUMERS,
  connectNats,
  ensureConsumer,
  ensureTopology,
  STREAMS,
  SUBJECTS,
} from '../../services/common/nats.ts';
import { type ControlPlane, startControlPlane } from '../helpers/envtest.ts';
import { startTestNats, type TestNats } from '../helpers/nats.ts';
import { createNamespace, installCrds, waitFor } from '../helpers/operator.ts';

const NS = 'postern';
const WINDOW_S = 4;
const JOBS = 25;
const logger = pino({ level: process.env['LOG_LEVEL'] ?? 'silent' });

const pools: PoolSettings[] = [
  // No consumer exists for this pool: the autoscaler must leave its Deployment alone (a missing consumer
  // read as "lag 0" would scale it to minReplicas 3 at once).
  {
    name: 'ghost',
    deployment: 'delivery-ghost',
    namespace: NS,
    minReplicas: 3,
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
    await apps.createNamespacedDeployment({ namespace: NS, body: deployment('delivery-ghost', 2) });
    nc = await connectNats(nats.url, 'autoscaler-test');
    await ensureTopology(nc);
    await ensureConsumer(
      nc,
      STREAMS.outbound,
      CONSUMERS.delivery('default'),
      SUBJECTS.outboundPool('default'),
    );
    op = await startOperator({
      kubeConfig: cp.kubeConfig,
      nc,
      logger,
      registry: new Registry(),
      settings: { leaderElection: false, pools, autoscaleIntervalMs: 200 },
    });
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

  it('after the backlog drains, replicas fall only once the stabilisation window has passed', async () => {
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
  });

  it('a pool whose consumer is missing is never scaled', async () => {
    assert.equal(await replicas('delivery-ghost'), 2);
    assert.equal(await gauge('deliveryReplicas', 'ghost'), undefined);
    assert.equal(await gauge('deliveryLag', 'ghost'), undefined);
  });
});
