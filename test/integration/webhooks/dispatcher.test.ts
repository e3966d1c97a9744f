/**
 * The webhook dispatcher against a real nats-server and real HTTP receivers on loopback that fail (500), hang
 * past the timeout and recover. Events are published on EVENTS exactly as the queue publishes them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { Registry } from 'prom-client';
import { WEBHOOK_BUCKET, type WebhookConfig, webhookKey } from '../../../services/common/config/webhook.ts';
import { encodeContract } from '../../../services/common/contracts.ts';
import { attemptOccurrence, msgIds } from '../../../services/common/msg-ids.ts';
import { connectNats, ensureTopology, STREAMS, SUBJECTS } from '../../../services/common/nats.ts';
import { publishSiteEvent, siteKey } from '../../../services/common/sites.ts';
import { LoopSupervisor } from '../../../services/common/supervise.ts';
import type { MailEvent } from '../../../services/common/types.ts';
import type { DeadLetter } from '../../../services/webhooks/dead-letter.ts';
import { type Dispatcher, startDispatcher } from '../../../services/webhooks/dispatcher.ts';
import { consumerName } from '../../../services/webhooks/endpoint.ts';
import { verifySignature } from '../../../services/webhooks/signature.ts';
import { startTestNats, type TestNats } from '../../helpers/nats.ts';
import { eventually } from '../../helpers/postern.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../../helpers/webhook-receiver.ts';

const SECRET = 'whsec-test-key';

describe('webhooks: signed delivery from EVENTS with retries and dead letters', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  let kv: KV;
  let registry: Registry;
  let dispatcher: Dispatcher;
  const receivers: WebhookReceiver[] = [];
  let seq = 0;

  before(async () => {
    nats = await startTestNats();
    nc = await connectNats(nats.url, 'webhook-test');
    await ensureTopology(nc);
    js = jetstream(nc);
    jsm = await jetstreamManager(nc);
    kv = await new Kvm(nc).open(WEBHOOK_BUCKET);
    registry = new Registry();
    const logger = pino({ level: process.env['LOG_LEVEL'] ?? 'silent' });
    const loops = new LoopSupervisor({ logger, registry, closing: () => nc.isClosed() });
    dispatcher = await startDispatcher({
      nc,
      logger,
      registry,
      loops,
      settings: { concurrency: 4, maxPending: 200, pendingIntervalMs: 200 },
    });
  });
  after(async () => {
    await dispatcher?.close();
    await Promise.all(receivers.map((r) => r.close()));
    await nc?.close();
    await nats?.cleanup();
  });

  async function receiver(respond?: Parameters<typeof startWebhookReceiver>[0]) {
    const r = await startWebhookReceiver(respond);
    receivers.push(r);
    return r;
  }

  /** Writes a webhook document and waits until its consumer exists (it starts with events from then on). */
  async function addWebhook(
    name: string,
    cfg: Partial<WebhookConfig> & { url: string },
  ): Promise<WebhookConfig> {
    const doc: WebhookConfig = {
      source: `default/${name}`,
      events: ['delivered', 'bounced', 'suppressed'],
      secret: SECRET,
      timeoutMs: 2_000,
      maxLifetimeMs: 3_600_000,
      initialDelayMs: 100,
      maxDelayMs: 400,
      ...cfg,
    };
    await kv.put(webhookKey('default', name), JSON.stringify(doc));
    await eventually(`consumer of ${name}`, () =>
      jsm.consumers.info(STREAMS.events, consumerName(doc.source)).then(
        () => true,
        () => false,
      ),
    );
    return doc;
  }

  async function publish(kind: MailEvent['kind'], extra: Partial<MailEvent> = {}): Promise<string> {
    const id = `M${++seq}`;
    const event: MailEvent = {
      kind,
      messageId: id,
      at: new Date().toISOString(),
      recipients: [`r${seq}@x.test`],
      ...extra,
    };
    // As the queue publishes them (services/queue/outputs.ts): the contract encoding and the shared msg ids.
    const msgID = msgIds.event(kind, attemptOccurrence(`${id}.0`, 1));
    await js.publish(SUBJECTS.event(kind), encodeContract(event), { msgID });
    return msgID;
  }

  async function metric(name: string, labels: Record<string, string>): Promise<number> {
    const m = (await registry.getSingleMetric(name)?.get())?.values ?? [];
    const hit = m.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val));
    return hit?.value ?? 0;
  }

  it('delivers each subscribed event once with a signature that verifies, and skips the others', async () => {
    const r = await receiver();
    await addWebhook('happy', { url: r.url });
    const ids = [
      await publish('delivered'),
      await publish('bounced', { response: '550 5.1.1 no such user' }),
      await publish('suppressed'),
    ];
    const skipped = await publish('deferred');
    await eventually('all three events', () => ids.every((id) => r.accepted().get(id) === 1));
    // The skipped kind was published before the last subscribed one; by now it would have arrived.
    assert.ok(!r.received.some((w) => w.id === skipped));
    for (const w of r.received) {
      assert.ok(verifySignature(SECRET, w, w.body), `signature of ${w.id}`);
      assert.ok(!verifySignature('other-key', w, w.body));
      const body = JSON.parse(w.body) as { id: string; type: string; data: MailEvent };
      assert.equal(body.id, w.id);
      assert.equal(body.type, w.type);
      assert.equal(body.data.kind, w.type);
    }
    const bounced = JSON.parse(r.received.find((w) => w.type === 'bounced')!.body) as { data: MailEvent };
    assert.equal(bounced.data.response, '550 5.1.1 no such user');
    // The receiver has answered; the dispatcher counts once its request resolved.
    await eventually(
      'three deliveries counted',
      async () =>
        (await metric('postern_webhook_deliveries_total', {
          endpoint: 'default/happy',
          result: 'delivered',
        })) === 3,
    );
  });

  it('retries a failing (500) and a hanging endpoint until it recovers; other endpoints are unaffected meanwhile', async () => {
    let down = true;
    const failing = await receiver(() => (down ? 500 : 200));
    const hanging = await receiver(({ seenBefore }) => (seenBefore === 0 ? 'hang' : 200));
    const healthy = await receiver();
    await addWebhook('failing', { url: failing.url });
    await addWebhook('hanging', { url: hanging.url, timeoutMs: 300 });
    await addWebhook('healthy', { url: healthy.url });
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await publish(i % 2 ? 'delivered' : 'bounced'));

    // While "failing" answers 500, the healthy endpoint gets everything and "failing" sees retries.
    await eventually('healthy endpoint has every event', () =>
      ids.every((id) => healthy.accepted().get(id) === 1),
    );
    await eventually('failing endpoint retried', () =>
      ids.every((id) => failing.received.filter((w) => w.id === id).length >= 2),
    );
    assert.equal(failing.accepted().size, 0);
    const pending = await eventually('pending gauge shows the backlog', async () =>
      (await metric('postern_webhook_pending', { endpoint: 'default/failing' })) >= 10 ? true : undefined,
    );
    assert.ok(pending);

    down = false;
    await eventually('failing endpoint recovered', () => ids.every((id) => failing.accepted().get(id) === 1));
    await eventually('hanging endpoint retried after its timeout', () =>
      ids.every((id) => hanging.accepted().get(id) === 1),
    );
    for (const w of hanging.received.filter((x) => x.answered === 'hang')) assert.equal(w.attempt, 1);
    assert.ok(
      failing.received.some((w) => w.attempt >= 2),
      'attempt header counts up',
    );
    assert.ok(
      (await metric('postern_webhook_deliveries_total', {
        endpoint: 'default/hanging',
        result: 'timeout',
      })) >= 10,
    );
    assert.ok(
      (await metric('postern_webhook_deliveries_total', { endpoint: 'default/failing', result: 'failed' })) >=
        10,
    );
    await eventually(
      'backlog drained',
      async () => (await metric('postern_webhook_pending', { endpoint: 'default/failing' })) === 0,
    );
    // Exactly once per 2xx: a redelivery after a 2xx would show up as a second acceptance.
    for (const r of [failing, hanging, healthy]) for (const id of ids) assert.equal(r.accepted().get(id), 1);
  });

  it('dead-letters an event the endpoint did not accept within its maxLifetime, then acks it', async () => {
    const dead = await receiver(() => 503);
    await addWebhook('dead', { url: dead.url, maxLifetimeMs: 1_000, initialDelayMs: 100, maxDelayMs: 200 });
    const letters: DeadLetter[] = [];
    const sub = nc.subscribe(SUBJECTS.webhookDead('default.dead'));
    void (async () => {
      for await (const m of sub) letters.push(m.json<DeadLetter>());
    })();
    const id = await publish('delivered');
    await eventually('dead letter', () => letters.find((l) => l.eventId === id), 20_000);
    const letter = letters.find((l) => l.eventId === id)!;
    assert.equal(letter.endpoint, 'default/dead');
    assert.equal(letter.lastError, 'HTTP 503');
    assert.ok(letter.attempts >= 2);
    assert.equal((letter.event as MailEvent).kind, 'delivered');
    // Stored for others to read, and no longer retried.
    const stored = await jsm.streams.getMessage(STREAMS.webhookDead, {
      last_by_subj: SUBJECTS.webhookDead('default.dead'),
    });
    assert.equal(stored?.json<DeadLetter>().eventId, id);
    await eventually('consumer has nothing pending', async () => {
      const info = await jsm.consumers.info(STREAMS.events, consumerName('default/dead'));
      return info.num_pending + info.num_ack_pending === 0;
    });
    const attempts = dead.received.length;
    assert.equal(
      await metric('postern_webhook_deliveries_total', { endpoint: 'default/dead', result: 'dead_letter' }),
      1,
    );
    sub.unsubscribe();
    // Nothing more arrives for it: publish another event to a healthy endpoint and wait for that to be seen.
    const r = await receiver();
    await addWebhook('after-dead', { url: r.url });
    const probe = await publish('delivered');
    await eventually('probe', () => r.accepted().get(probe) === 1);
    assert.ok(dead.received.filter((w) => w.id === id).length <= attempts + 1);
  });

  it('sends only mail events of the listed policies (site events always)', async () => {
    const r = await receiver();
    await addWebhook('filtered', {
      url: r.url,
      events: ['delivered', 'site.suspended'],
      policies: ['tenants/app'],
    });
    const other = await publish('delivered', { policy: 'tenants/other' });
    const none = await publish('delivered');
    const mine = await publish('delivered', { policy: 'tenants/app' });
    const site = { kind: 'site.suspended' as const, site: 'mx.example', at: new Date().toISOString() };
    await publishSiteEvent(js, site);
    const siteId = msgIds.siteEvent(site.kind, siteKey(site.site), site.at);
    await eventually(
      'policy event and site event',
      () => r.accepted().get(mine) === 1 && r.accepted().get(siteId) === 1,
    );
    assert.ok(!r.accepted().has(other));
    assert.ok(!r.accepted().has(none));
  });

  it('a deleted consumer is re-created by the supervised loop, and delivery resumes', async () => {
    const r = await receiver();
    await addWebhook('resilient', { url: r.url });
    await jsm.consumers.delete(STREAMS.events, consumerName('default/resilient'));
    await eventually('consumer re-created', () =>
      jsm.consumers.info(STREAMS.events, consumerName('default/resilient')).then(
        () => true,
        () => false,
      ),
    );
    const id = await publish('delivered');
    await eventually('event after the re-creation', () => r.accepted().get(id) === 1);
    assert.ok((await metric('postern_loop_restarts_total', { loop: 'webhook:default/resilient' })) >= 1);
  });

  it('a dispatcher stopped with a backlog leaves it to the next one: nothing is lost', async () => {
    let down = true;
    const r = await receiver(() => (down ? 500 : 200));
    await addWebhook('handover', { url: r.url });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await publish('bounced'));
    await eventually('attempted', () => ids.every((id) => r.received.some((w) => w.id === id)));
    await dispatcher.close();
    down = false;
    const logger = pino({ level: process.env['LOG_LEVEL'] ?? 'silent' });
    dispatcher = await startDispatcher({
      nc,
      logger,
      registry: new Registry(),
      loops: new LoopSupervisor({ logger, registry: new Registry(), closing: () => nc.isClosed() }),
      settings: { concurrency: 4, maxPending: 200, pendingIntervalMs: 200 },
    });
    await eventually('every event accepted once by way of the new dispatcher', () =>
      ids.every((id) => r.accepted().get(id) === 1),
    );
  });

  it('a removed webhook stops and its consumer is deleted', async () => {
    const r = await receiver();
    await addWebhook('gone', { url: r.url });
    await kv.delete(webhookKey('default', 'gone'));
    await eventually('consumer deleted', () =>
      jsm.consumers.info(STREAMS.events, consumerName('default/gone')).then(
        () => false,
        () => true,
      ),
    );
    assert.ok(!dispatcher.endpoints().includes('default/gone'));
  });
});
