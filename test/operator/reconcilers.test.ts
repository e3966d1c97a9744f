import assert from 'node:assert/strict';

import { createHash, randomBytes } from 'node:crypto';

import { after, before, describe, it } from 'node:test';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import type { NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { Registry } from 'prom-client';
import { type Operator, startOperator } from '../../operator/operator.ts';
import { verifyPassword } from '../../services/common/config/password.ts';
import { API, API_GROUP, API_VERSION } from '../../services/common/config/schema.ts';
import { ConfigStore } from '../../services/common/config/store.ts';
import { connectNats, ensureTopology } from '../../services/common/nats.ts';
import { SECRET_CONTEXT, secretBox } from '../../services/common/secrets.ts';
import { type ControlPlane, startControlPlane } from '../helpers/envtest.ts';
import { startTestNats, type TestNats } from '../helpers/nats.ts';
import { createNamespace, installCrds, waitFor } from '../helpers/operator.ts';

const NS = 'mail';
const logger = pino({ level: process.env['LOG_LEVEL'] ?? 'silent' });

type Obj = {
  metadata: { name: string; generation: number; finalizers?: string[]; uid: string };
  spec: Record<string, unknown>;
  status?: {
    observedGeneration?: number;
    conditions?: { type: string; status: string; reason: string }[];
    dkimDNSRecord?: string;
    matchedDomains?: string[];
  };
};

describe('MailDomain and RelayPolicy reconcilers (real kube-apiserver, real nats-server)', () => {
  let cp: ControlPlane;
  let nats: TestNats;
  let nc: NatsConnection;
  let store: ConfigStore;
  let op: Operator;
  let api: CustomObjectsApi;
  let core: CoreV1Api;

  const startOp = () =>
    startOperator({
      kubeConfig: cp.kubeConfig,
      nc,
      logger,
      registry: new Registry(),
      settings: { leaderElection: false, backoffMaxMs: 2000 },
      secretBox: box,
    });
  // The key the chart mounts into the operator and delivery (docs/secrets.md).
  const box = secretBox([randomBytes(32)]);

  before(async () => {
    [cp, nats] = await Promise.all([startControlPlane(), startTestNats()]);
    await installCrds(cp.kubeConfig);
    await createNamespace(cp.kubeConfig, NS);
    nc = await connectNats(nats.url, 'operator-test');
    await ensureTopology(nc);
    store = new ConfigStore();
    await store.start(nc);
    api = cp.kubeConfig.makeApiClient(CustomObjectsApi);
    core = cp.kubeConfig.makeApiClient(CoreV1Api);
    op = await startOp();
  });
  after(async () => {
    await op?.close();
    store?.stop();
    await nc?.close();
    await nats?.cleanup();
    await cp?.stop();
  });

  const ref = (plural: string, name: string) => ({
    group: API_GROUP,
    version: API_VERSION,
    namespace: NS,
    plural,
    name,
  });
  const create = (kind: string, plural: string, name: string, spec: unknown) =>
    api.createNamespacedCustomObject({
      ...ref(plural, name),
      body: { apiVersion: API, kind, metadata: { name }, spec },
    });
  const get = async (plural: string, name: string) =>
    (await api.getNamespacedCustomObject(ref(plural, name))) as Obj;
  const update = async (plural: string, name: string, spec: Record<string, unknown>) => {
    const obj = await get(plural, name);
    await api.replaceNamespacedCustomObject({ ...ref(plural, name), body: { ...obj, spec } });
  };
  const remove = (plural: string, name: string) => api.deleteNamespacedCustomObject(ref(plural, name));
  const gone = async (plural: string, name: string) => {
    try {
      await get(plural, name);
      return false;
    } catch (err) {
      return (err as { code?: number }).code === 404;
    }
  };
  const condition = (o: Obj, type = 'Ready') => o.status?.conditions?.find((c) => c.type === type);
  /** Waits until the object's Ready condition has `status`/`reason` for its current generation. */
  const waitReady = (plural: string, name: string, status = 'True', reason?: string) =>
    waitFor(`${plural}/${name} Ready=${status} ${reason ?? ''}`, async () => {
      const o = await get(plural, name);
      const c = condition(o);
      const ok =
        c?.status === status &&
        (!reason || c.reason === reason) &&
        o.status?.observedGeneration === o.metadata.generation;
      return ok ? o : undefined;
    });

  it('a good MailDomain becomes Ready with observedGeneration and services see its config in KV', async () => {
    await create('MailDomain', 'maildomains', 'example', {
      domain: 'example.org',
      inbound: { enabled: true, deliverTo: { host: 'store.mail.svc', port: 24 } },
    });
    const md = await waitReady('maildomains', 'example');
    assert.equal(md.status?.observedGeneration, 1);
    assert.ok(md.metadata.finalizers?.includes('postern.dev/config'));
    const doc = await waitFor('domain in ConfigStore', async () =>
      store.snapshot().domains.get('example.org'),
    );
    assert.equal(doc.source, `${NS}/example`);
    assert.deepEqual(doc.inbound?.deliverTo, {
      host: 'store.mail.svc',
      port: 24,
      protocol: 'lmtp',
      tls: 'opportunistic',
    });
  });

  it('an update is applied to KV and observedGeneration follows', async () => {
    await update('maildomains', 'example', {
      domain: 'example.org',
      inbound: { enabled: true, recipients: ['Alice'], deliverTo: { host: 'store2', port: 2424 } },
    });
    await waitFor('updated domain in ConfigStore', async () => {
      const d = store.snapshot().domains.get('example.org');
      return d?.inbound?.deliverTo?.host === 'store2' && d.inbound.recipients?.[0] === 'alice';
    });
    const md = await waitReady('maildomains', 'example');
    assert.equal(md.status?.observedGeneration, 2);
  });

  it('delete: the finalizer removes the KV document, then the object goes away', async () => {
    await remove('maildomains', 'example');
    await waitFor(
      'domain removed from ConfigStore',
      async () => !store.snapshot().domains.has('example.org'),
    );
    await waitFor('MailDomain gone', () => gone('maildomains', 'example'));
  });

  it('generates a DKIM key Secret once, owned by the MailDomain, and reuses it after an operator restart', async () => {
    await create('MailDomain', 'maildomains', 'signed', {
      domain: 'signed.example',
      outbound: { dkim: { selector: 'mail' } },
    });
    const md = await waitFor('DKIMKeyReady', async () => {
      const o = await get('maildomains', 'signed');
      return condition(o, 'DKIMKeyReady')?.status === 'True' && condition(o)?.status === 'True'
        ? o
        : undefined;
    });
    assert.match(
      md.status?.dkimDNSRecord ?? '',
      /^mail\._domainkey\.signed\.example TXT "v=DKIM1; k=rsa; p=/,
    );
    const secret = await core.readNamespacedSecret({ name: 'signed-dkim', namespace: NS });
    assert.equal(secret.metadata?.ownerReferences?.[0]?.uid, md.metadata.uid);
    const pem = Buffer.from(secret.data!['private.key']!, 'base64').toString();
    assert.match(pem, /BEGIN PRIVATE KEY/);
    const doc = await waitFor('signed domain in KV', async () =>
      store.snapshot().domains.get('signed.example'),
    );
    assert.doesNotMatch(JSON.stringify(doc), /PRIVATE KEY/, 'no clear-text DKIM key in KV');
    assert.equal(box.open(doc.dkim!.privateKey, SECRET_CONTEXT.dkimKey('signed.example', 'mail')), pem);

    await op.close();
    op = await startOp();
    // A spec change forces a fresh reconcile by the new operator instance.
    await update('maildomains', 'signed', {
      domain: 'signed.example',
      outbound: { dkim: { selector: 'mail' } },
      inbound: { enabled: false },
    });
    const again = await waitReady('maildomains', 'signed');
    assert.equal(again.status?.observedGeneration, 2);
    const after = await core.readNamespacedSecret({ name: 'signed-dkim', namespace: NS });
    assert.equal(
      Buffer.from(after.data!['private.key']!, 'base64').toString(),
      pem,
      'the same key is reused',
    );
    assert.equal(after.metadata?.uid, secret.metadata?.uid);
  });

  it('an Ed25519 key publishes the raw public key (RFC 8463)', async () => {
    await create('MailDomain', 'maildomains', 'ed', {
      domain: 'ed.example',
      outbound: { dkim: { selector: 's1', algorithm: 'ed25519', keySecretRef: { name: 'ed-key' } } },
    });
    const md = await waitReady('maildomains', 'ed');
    const p = /p=([A-Za-z0-9+/=]+)/.exec(md.status?.dkimDNSRecord ?? '')?.[1] ?? '';
    assert.match(md.status?.dkimDNSRecord ?? '', /k=ed25519/);
    assert.equal(Buffer.from(p, 'base64').length, 32);
    await core.readNamespacedSecret({ name: 'ed-key', namespace: NS });
  });

  it('two MailDomains claiming one domain: the older wins, the newer gets DomainConflict and recovers later', async () => {
    await create('MailDomain', 'maildomains', 'first', { domain: 'shared.example' });
    await waitReady('maildomains', 'first');
    await create('MailDomain', 'maildomains', 'second', { domain: 'shared.example' });
    await waitReady('maildomains', 'second', 'False', 'DomainConflict');
    const events = await waitFor('a DomainConflict Event', async () => {
      const list = await core.listNamespacedEvent({
        namespace: NS,
        fieldSelector: 'involvedObject.name=second,reason=DomainConflict',
      });
      return list.items.length ? list.items : undefined;
    });
    assert.equal(events[0]?.type, 'Warning');
    assert.equal(events[0]?.involvedObject.kind, 'MailDomain');
    assert.equal(store.snapshot().domains.get('shared.example')?.source, `${NS}/first`);

    await remove('maildomains', 'first');
    await waitReady('maildomains', 'second', 'True');
    await waitFor('the second MailDomain owns the KV document', async () => {
      return store.snapshot().domains.get('shared.example')?.source === `${NS}/second`;
    });
  });

  it('a RelayPolicy referencing a missing Secret is SecretNotFound, then recovers when it is created', async () => {
    await create('RelayPolicy', 'relaypolicies', 'submission', {
      clients: { authSecretRef: { name: 'smtp-users' }, requireTLS: true },
      senders: { domains: ['example.org'] },
      delivery: { pool: 'bulk', retry: { schedule: ['1m', '10m'], maxLifetime: '2d' } },
    });
    await waitReady('relaypolicies', 'submission', 'False', 'SecretNotFound');
    const errors = await waitFor('failed reconciles counted', async () => {
      const m = await op.metrics.reconcileTotal.get();
      return m.values.find((v) => v.labels['kind'] === 'RelayPolicy' && v.labels['result'] === 'error')
        ?.value;
    });
    assert.ok(errors >= 1);
    await core.createNamespacedSecret({
      namespace: NS,
      body: { metadata: { name: 'smtp-users' }, stringData: { alice: 'wonderland' } },
    });
    const rp = await waitReady('relaypolicies', 'submission', 'True');
    assert.deepEqual(rp.status?.matchedDomains, ['example.org']);
    const doc = await waitFor('policy in ConfigStore', async () =>
      store.snapshot().policies.get(`${NS}.submission`),
    );
    assert.equal(doc.delivery.pool, 'bulk');
    assert.deepEqual(doc.delivery.retry, {
      scheduleMs: [60_000, 600_000],
      maxLifetimeMs: 2 * 86_400_000,
      delayWarningMs: 4 * 3_600_000, // RFC 3461 NOTIFY=DELAY default, like Postfix's delay_warning_time
    });
    assert.equal(doc.users.length, 1);
    assert.equal(doc.users[0]?.name, 'alice');
    assert.ok(verifyPassword('wonderland', doc.users[0]!.hash));
    assert.doesNotMatch(JSON.stringify(doc), /wonderland/, 'no clear-text password in KV');
  });

  it('a changed Secret re-reconciles the policy: an added AUTH user reaches KV', async () => {
    await core.replaceNamespacedSecret({
      name: 'smtp-users',
      namespace: NS,
      body: { metadata: { name: 'smtp-users' }, stringData: { alice: 'wonderland', bob: 'builder' } },
    });
    const doc = await waitFor('bob in KV', async () => {
      const p = store.snapshot().policies.get(`${NS}.submission`);
      return p?.users.some((u) => u.name === 'bob') ? p : undefined;
    });
    assert.ok(verifyPassword('builder', doc.users.find((u) => u.name === 'bob')!.hash));
  });

  it('an API-only policy publishes SHA-256 hashes of its keys (never a key) and follows Secret changes', async () => {
    const key = 'api-key-0123456789abcdefghijklmnopqrstuvwxyz';
    await core.createNamespacedSecret({
      namespace: NS,
      body: { metadata: { name: 'app-api-keys' }, stringData: { ci: key } },
    });
    await create('RelayPolicy', 'relaypolicies', 'app-api', {
      clients: {},
      api: { keysSecretRef: { name: 'app-api-keys' } },
      senders: { domains: ['app.example'] },
    });
    await waitReady('relaypolicies', 'app-api');
    const doc = await waitFor('API keys in KV', async () => store.snapshot().policies.get(`${NS}.app-api`));
    assert.deepEqual(doc.apiKeys, [{ id: 'ci', sha256: createHash('sha256').update(key).digest('hex') }]);
    assert.doesNotMatch(JSON.stringify(doc), new RegExp(key), 'no clear-text API key in KV');
    await core.replaceNamespacedSecret({
      name: 'app-api-keys',
      namespace: NS,
      body: { metadata: { name: 'app-api-keys' }, stringData: { ci: key, crm: `${key}-crm` } },
    });
    await waitFor('the added key in KV', async () =>
      store
        .snapshot()
        .policies.get(`${NS}.app-api`)
        ?.apiKeys?.some((k) => k.id === 'crm'),
    );
    await core.replaceNamespacedSecret({
      name: 'app-api-keys',
      namespace: NS,
      body: { metadata: { name: 'app-api-keys' }, stringData: { ci: 'too-short' } },
    });
    await waitReady('relaypolicies', 'app-api', 'False', 'SecretNotFound');
  });

  it('a smarthost password is sealed in KV, opens for that smarthost only, and is not re-sealed by a restart', async () => {
    await core.createNamespacedSecret({
      namespace: NS,
      body: {
        metadata: { name: 'relay-login' },
        stringData: { username: 'postern', password: 'hunter2-smarthost' },
      },
    });
    await create('RelayPolicy', 'relaypolicies', 'via-relay', {
      clients: { networks: ['10.9.0.0/16'] },
      delivery: { smarthost: { host: 'relay.example', port: 587, authSecretRef: { name: 'relay-login' } } },
    });
    await waitReady('relaypolicies', 'via-relay');
    const doc = await waitFor('via-relay in KV', async () =>
      store.snapshot().policies.get(`${NS}.via-relay`),
    );
    const auth = doc.delivery.smarthost?.auth;
    assert.equal(auth?.user, 'postern');
    assert.doesNotMatch(JSON.stringify(doc), /hunter2/, 'no clear-text smarthost password in KV');
    assert.equal(
      box.open(auth!.pass, SECRET_CONTEXT.smarthostPassword('relay.example', 587, 'postern')),
      'hunter2-smarthost',
    );
    assert.throws(() =>
      box.open(auth!.pass, SECRET_CONTEXT.smarthostPassword('evil.example', 587, 'postern')),
    );
    // A new operator reconciles everything again; the unchanged password keeps its sealed text (no KV churn).
    await op.close();
    op = await startOp();
    await update('relaypolicies', 'via-relay', {
      clients: { networks: ['10.9.0.0/16', '10.10.0.0/16'] },
      delivery: { smarthost: { host: 'relay.example', port: 587, authSecretRef: { name: 'relay-login' } } },
    });
    const after = await waitFor('via-relay updated', async () => {
      const p = store.snapshot().policies.get(`${NS}.via-relay`);
      return p?.networks.length === 2 ? p : undefined;
    });
    assert.equal(after.delivery.smarthost?.auth?.pass, auth!.pass);
  });

  it('a network-only policy matches every sender domain; deleting it removes its KV document', async () => {
    await create('RelayPolicy', 'relaypolicies', 'lan', { clients: { networks: ['192.168.0.0/16'] } });
    const rp = await waitReady('relaypolicies', 'lan');
    assert.deepEqual(rp.status?.matchedDomains, ['*']);
    await waitFor('lan policy in KV', async () => store.snapshot().policies.has(`${NS}.lan`));
    await remove('relaypolicies', 'lan');
    await waitFor('lan policy removed', async () => !store.snapshot().policies.has(`${NS}.lan`));
    await waitFor('RelayPolicy gone', () => gone('relaypolicies', 'lan'));
  });

  it('after an API server restart the watches resume and a change made right after is applied', async () => {
    await create('MailDomain', 'maildomains', 'restart', { domain: 'restart.example' });
    await waitReady('maildomains', 'restart');
    await cp.restartApiServer();
    await update('maildomains', 'restart', { domain: 'restart2.example' });
    await waitFor(
      'renamed domain in KV',
      async () => store.snapshot().domains.has('restart2.example'),
      120_000,
    );
    await waitFor('old domain key removed', async () => !store.snapshot().domains.has('restart.example'));
  });
});
