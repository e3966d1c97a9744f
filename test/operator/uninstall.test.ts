/**
 * `helm uninstall` runs the chart's pre-delete hook (operator/uninstall.ts) so MailDomains and RelayPolicies do
 * not keep a finalizer nobody will ever remove. Against a real API server with a real, leading operator: the hook
 * scales the operator's Deployment to 0, waits while the operator still leads (it would re-add the finalizer),
 * then removes the finalizers, and the resources can be deleted.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AppsV1Api, CustomObjectsApi, type KubernetesObject } from '@kubernetes/client-node';
import type { NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { Registry } from 'prom-client';
import { FINALIZER } from '../../operator/controllers/status.ts';
import { type Operator, startOperator } from '../../operator/operator.ts';
import { releaseFinalizers } from '../../operator/uninstall.ts';
import { connectNats, ensureTopology } from '../../services/common/nats.ts';
import { type ControlPlane, startControlPlane } from '../helpers/envtest.ts';
import { startTestNats, type TestNats } from '../helpers/nats.ts';
import { createNamespace, installCrds, waitFor } from '../helpers/operator.ts';

const NS = 'postern';
const MAIL = 'mail';
const logger = pino({ level: process.env['LOG_LEVEL'] ?? 'silent' });
const group = { group: 'postern.dev', version: 'v1alpha1' };

describe('the uninstall hook releases Postern finalizers', () => {
  let cp: ControlPlane;
  let nats: TestNats;
  let nc: NatsConnection;
  let op: Operator | undefined;
  let crs: CustomObjectsApi;

  before(async () => {
    [cp, nats] = await Promise.all([startControlPlane(), startTestNats()]);
    await installCrds(cp.kubeConfig);
    await createNamespace(cp.kubeConfig, NS);
    await createNamespace(cp.kubeConfig, MAIL);
    nc = await connectNats(nats.url, 'uninstall-test');
    await ensureTopology(nc);
    crs = cp.kubeConfig.makeApiClient(CustomObjectsApi);
  });
  after(async () => {
    await op?.close();
    await nc?.close();
    await nats?.cleanup();
    await cp?.stop();
  });

  const finalizers = async (plural: string, name: string) =>
    ((await crs.getNamespacedCustomObject({ ...group, plural, namespace: MAIL, name })) as KubernetesObject)
      .metadata?.finalizers ?? [];

  it('scales the operator to 0, waits until it stops leading, removes the finalizers; deletion then completes', async () => {
    const apps = cp.kubeConfig.makeApiClient(AppsV1Api);
    await apps.createNamespacedDeployment({
      namespace: NS,
      body: {
        metadata: { name: 'postern-operator' },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'op' } },
          template: {
            metadata: { labels: { app: 'op' } },
            spec: { containers: [{ name: 'op', image: 'postern:test' }] },
          },
        },
      },
    });
    op = await startOperator({
      kubeConfig: cp.kubeConfig,
      nc,
      logger,
      registry: new Registry(),
      settings: {
        leaseNamespace: NS,
        leaseName: 'postern-operator',
        identity: 'op-1',
        leaseDurationMs: 4000,
        renewDeadlineMs: 3000,
        retryPeriodMs: 500,
      },
    });
    await crs.createNamespacedCustomObject({
      ...group,
      plural: 'maildomains',
      namespace: MAIL,
      body: {
        apiVersion: 'postern.dev/v1alpha1',
        kind: 'MailDomain',
        metadata: { name: 'example-org' },
        spec: { domain: 'example.org' },
      },
    });
    await crs.createNamespacedCustomObject({
      ...group,
      plural: 'relaypolicies',
      namespace: MAIL,
      body: {
        apiVersion: 'postern.dev/v1alpha1',
        kind: 'RelayPolicy',
        metadata: { name: 'office' },
        spec: { clients: { networks: ['10.0.0.0/8'] } },
      },
    });
    await waitFor(
      'finalizers added',
      async () =>
        (await finalizers('maildomains', 'example-org')).includes(FINALIZER) &&
        (await finalizers('relaypolicies', 'office')).includes(FINALIZER),
    );

    const hook = releaseFinalizers({
      kubeConfig: cp.kubeConfig,
      logger,
      watchNamespace: '',
      namespace: NS,
      deployment: 'postern-operator',
      leaseName: 'postern-operator',
      pollMs: 100,
    });
    await waitFor(
      'operator scaled to 0',
      async () =>
        // A scale of 0 comes back without spec.replicas (omitempty).
        ((await apps.readNamespacedDeploymentScale({ name: 'postern-operator', namespace: NS })).spec
          ?.replicas ?? 0) === 0,
    );
    // The operator still holds the Lease (nothing stops the in-process operator but us): the hook must wait.
    assert.ok(op.isLeader());
    assert.ok((await finalizers('maildomains', 'example-org')).includes(FINALIZER));

    // What a pod's SIGTERM does: stop reconciling, release the Lease.
    await op.close();
    op = undefined;
    assert.equal(await hook, 2);
    assert.deepEqual(await finalizers('maildomains', 'example-org'), []);
    assert.deepEqual(await finalizers('relaypolicies', 'office'), []);

    for (const [plural, name] of [
      ['maildomains', 'example-org'],
      ['relaypolicies', 'office'],
    ] as const) {
      await crs.deleteNamespacedCustomObject({ ...group, plural, namespace: MAIL, name });
      await waitFor(`${plural}/${name} gone`, async () =>
        crs.getNamespacedCustomObject({ ...group, plural, namespace: MAIL, name }).then(
          () => false,
          (err: { code?: number }) => err.code === 404,
        ),
      );
    }
  });
});
