/**
 * The Webhook kind against a real kube-apiserver + etcd and a real nats-server: the CRD refuses bad specs, the
 * reconciler publishes the resolved endpoint (HMAC key from the Secret) to the `webhooks` bucket, reports
 * SecretNotFound until the Secret exists, follows Secret rotation, and removes the document on deletion.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { Registry } from 'prom-client';
import { type Operator, startOperator } from '../../operator/operator.ts';
import { API, API_GROUP, API_VERSION } from '../../services/common/config/schema.ts';
import { WEBHOOK_BUCKET, type WebhookConfig } from '../../services/common/config/webhook.ts';
import { connectNats, ensureTopology } from '../../services/common/nats.ts';
import { type ControlPlane, startControlPlane } from '../helpers/envtest.ts';
import { startTestNats, type TestNats } from '../helpers/nats.ts';
import { createNamespace, installCrds, waitFor } from '../helpers/operator.ts';

const NS = 'apps';
const logger = pino({ level: process.env['LOG_LEVEL'] ?? 'silent' });

type Obj = {
  metadata: { name: string; generation: number; finalizers?: string[] };
  status?: { observedGeneration?: number; conditions?: { type: string; status: string; reason: string }[] };
};

describe('Webhook resources (real kube-apiserver, real nats-server)', () => {
  let cp: ControlPlane;
  let nats: TestNats;
  let nc: NatsConnection;
  let kv: KV;
  let op: Operator;
  let api: CustomObjectsApi;
  let core: CoreV1Api;

  before(async () => {
    [cp, nats] = await Promise.all([startControlPlane(), startTestNats()]);
    await installCrds(cp.kubeConfig);
    await createNamespace(cp.kubeConfig, NS);
    nc = await connectNats(nats.url, 'operator-webhook-test');
    await ensureTopology(nc);
    kv = await new Kvm(nc).open(WEBHOOK_BUCKET);
    api = cp.kubeConfig.makeApiClient(CustomObjectsApi);
    core = cp.kubeConfig.makeApiClient(CoreV1Api);
    op = await startOperator({
      kubeConfig: cp.kubeConfig,
      nc,
      logger,
      registry: new Registry(),
      settings: { leaderElection: false, backoffMaxMs: 2000 },
    });
  });
  after(async () => {
    await op?.close();
    await nc?.close();
    await nats?.cleanup();
    await cp?.stop();
  });

  const ref = (name: string) => ({
    group: API_GROUP,
    version: API_VERSION,
    namespace: NS,
    plural: 'webhooks',
    name,
  });
  const create = (name: string, spec: unknown) =>
    api.createNamespacedCustomObject({
      ...ref(name),
      body: { apiVersion: API, kind: 'Webhook', metadata: { name }, spec },
    });
  const get = async (name: string) => (await api.getNamespacedCustomObject(ref(name))) as Obj;
  const readDoc = async (name: string) => {
    const e = await kv.get(`${NS}.${name}`);
    return e?.operation === 'PUT' ? e.json<WebhookConfig>() : undefined;
  };
  const waitReady = (name: string, status: string, reason?: string) =>
    waitFor(`webhook ${name} Ready=${status} ${reason ?? ''}`, async () => {
      const o = await get(name);
      const c = o.status?.conditions?.find((x) => x.type === 'Ready');
      return c?.status === status &&
        (!reason || c.reason === reason) &&
        o.status?.observedGeneration === o.metadata.generation
        ? o
        : undefined;
    });
  const secret = (name: string, value: string) => ({
    metadata: { name, namespace: NS },
    stringData: { secret: value },
  });

  it('the CRD refuses unknown events, non-HTTP URLs and a missing secretRef', async () => {
    const refused = async (spec: unknown, message: RegExp) =>
      assert.rejects(
        create(`bad-${Math.random().toString(36).slice(2, 8)}`, spec),
        (err: { body?: string }) => message.test(String(err.body ?? err)),
      );
    await refused({ url: 'https://a.example/', events: ['opened'], secretRef: { name: 's' } }, /events/);
    await refused({ url: 'ftp://a.example/', events: ['delivered'], secretRef: { name: 's' } }, /url/);
    await refused({ url: 'https://a.example/', events: ['delivered'] }, /secretRef/);
    await refused({ url: 'https://a.example/', events: [], secretRef: { name: 's' } }, /events/);
  });

  it('is SecretNotFound until its Secret exists, then publishes the endpoint with the key and goes Ready', async () => {
    await create('app', {
      url: 'https://app.example/hooks',
      events: ['delivered', 'bounced'],
      secretRef: { name: 'app-hook' },
      policies: ['relay'],
      timeout: '5s',
    });
    await waitReady('app', 'False', 'SecretNotFound');
    assert.equal(await readDoc('app'), undefined);
    await core.createNamespacedSecret({ namespace: NS, body: secret('app-hook', 'first-key') });
    const wh = await waitReady('app', 'True', 'Configured');
    assert.ok(wh.metadata.finalizers?.includes('postern.dev/config'));
    const doc = await waitFor('document in the webhooks bucket', () => readDoc('app'));
    assert.deepEqual(doc, {
      source: `${NS}/app`,
      url: 'https://app.example/hooks',
      events: ['delivered', 'bounced'],
      secret: 'first-key',
      policies: [`${NS}/relay`],
      timeoutMs: 5_000,
      maxLifetimeMs: 86_400_000,
      initialDelayMs: 10_000,
      maxDelayMs: 3_600_000,
    });
    // The HMAC key is not in the bucket every service watches.
    const config = await new Kvm(nc).open('config');
    for await (const key of await config.keys())
      assert.ok(!(await config.get(key))?.string().includes('first-key'));
  });

  it('follows a rotated Secret and removes the document when the Webhook is deleted', async () => {
    await core.replaceNamespacedSecret({
      name: 'app-hook',
      namespace: NS,
      body: secret('app-hook', 'second-key'),
    });
    await waitFor('rotated key published', async () => (await readDoc('app'))?.secret === 'second-key');
    await api.deleteNamespacedCustomObject(ref('app'));
    await waitFor('document removed', async () => (await readDoc('app')) === undefined);
    await waitFor('Webhook gone', () =>
      get('app').then(
        () => false,
        (err: { code?: number }) => err.code === 404,
      ),
    );
  });
});
