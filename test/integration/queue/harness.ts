/**
 * The queue service against a real nats-server, with the test playing ingress (publishing Envelopes on
 * SUBMIT) and delivery (consuming OUTBOUND, publishing DeliveryResults on RESULTS).
 */
import {
  AckPolicy,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { type ObjectStore, Objm } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { Registry } from 'prom-client';
import { envelopeWire, readJobMessage } from '../../../services/common/body-wire.ts';
import {
  CONFIG_BUCKET,
  type DomainConfig,
  type PolicyConfig,
} from '../../../services/common/config/resolved.ts';
import { ConfigStore } from '../../../services/common/config/store.ts';
import { msgIds } from '../../../services/common/msg-ids.ts';
import {
  BODY_BUCKET,
  connectNats,
  ensureTopology,
  STATE_BUCKET,
  STREAMS,
  SUBJECTS,
} from '../../../services/common/nats.ts';
import type {
  DeliveryJob,
  DeliveryResult,
  Envelope,
  MailEvent,
  RecipientOutcome,
} from '../../../services/common/types.ts';
import { type QueueService, startQueue } from '../../../services/queue/service.ts';
import { decodeState, type MessageState, stateKey } from '../../../services/queue/state.ts';
import { type SeenEnvelope, seenEnvelope } from '../../helpers/bodies.ts';
import { startTestNats, type TestNats } from '../../helpers/nats.ts';

export { bodyText } from '../../helpers/bodies.ts';

export interface SeenJob {
  job: DeliveryJob;
  /** The body's bytes when they came attached (body-wire.ts). */
  attached?: Buffer;
  subject: string;
  /** Set when the server's scheduler produced it (a deferred attempt coming due). */
  scheduler?: string;
  arrivedAt: number;
}

export interface QueueHarness {
  nats: TestNats;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  state: KV;
  bodies: ObjectStore;
  queue: QueueService;
  registry: Registry;
  jobs: SeenJob[];
  events: MailEvent[];
  /** Envelopes seen on SUBMIT (DSNs among them), with their attached bodies. */
  submitted: SeenEnvelope[];
  /**
   * Submits an envelope with its body attached (`legacyInline`: as base64 in the JSON, as releases before
   * 2026-11-27 did).
   */
  submit(
    env: Partial<Envelope> & { id: string; to: string[] },
    msgID?: string,
    legacyInline?: boolean,
  ): Promise<Envelope>;
  report(
    job: DeliveryJob,
    outcomes: Omit<RecipientOutcome, 'recipient'>[] | RecipientOutcome[],
  ): Promise<void>;
  jobFor(messageId: string, attempt?: number): Promise<SeenJob>;
  readState(id: string): Promise<MessageState | undefined>;
  /** Waits until SUBMIT, RESULTS and the test OUTBOUND consumer have nothing pending. */
  settled(): Promise<void>;
  close(): Promise<void>;
}

export async function eventually<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function policy(delivery: Partial<PolicyConfig['delivery']> = {}): PolicyConfig {
  return {
    source: 'mail/test',
    networks: ['127.0.0.0/8'],
    users: [],
    requireTLS: false,
    limits: {},
    delivery: {
      pool: 'default',
      destinations: [],
      retry: { scheduleMs: [500], maxLifetimeMs: 3_600_000 },
      tls: 'opportunistic',
      ...delivery,
    },
  };
}

export async function startHarness(config: {
  domains?: DomainConfig[];
  policies?: Record<string, PolicyConfig>;
}): Promise<QueueHarness> {
  const nats = await startTestNats();
  const nc = await connectNats(nats.url, 'queue-test');
  await ensureTopology(nc);
  const kvm = new Kvm(nc);
  const configKv = await kvm.open(CONFIG_BUCKET);
  for (const d of config.domains ?? []) await configKv.put(`domain.${d.domain}`, JSON.stringify(d));
  for (const [k, p] of Object.entries(config.policies ?? {}))
    await configKv.put(`policy.${k}`, JSON.stringify(p));
  const store = new ConfigStore();
  await store.start(nc);
  const registry = new Registry();
  const logger = pino({ level: process.env['LOG_LEVEL'] ?? 'silent' });
  const queue = await startQueue({
    nc,
    config: store,
    logger,
    registry,
    settings: {
      hostname: 'mx.postern.test',
      suppressionTtlMs: 3_600_000,
      adminHost: '127.0.0.1',
      adminPort: 0,
      maxMessages: 64,
      concurrency: 16,
      depthIntervalMs: 200,
      retryDelayMs: 200,
      ackWaitMs: 10_000,
      // Short, so a test can see a finished message's purge marker expire.
      stateMarkerTtlMs: 1000,
    },
  });
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);

  // Play delivery: one consumer over every pool, collecting jobs.
  await jsm.consumers.add(STREAMS.outbound, {
    durable_name: 'delivery-test',
    ack_policy: AckPolicy.Explicit,
    filter_subject: 'mail.out.>',
  });
  const jobs: SeenJob[] = [];
  const outbound = await (await js.consumers.get(STREAMS.outbound, 'delivery-test')).consume();
  void (async () => {
    for await (const m of outbound) {
      const scheduler = m.headers?.get('Nats-Scheduler');
      const { job, attached } = readJobMessage(m);
      jobs.push({
        job,
        ...(attached ? { attached } : {}),
        subject: m.subject,
        arrivedAt: Date.now(),
        ...(scheduler ? { scheduler } : {}),
      });
      m.ack();
    }
  })();
  const events: MailEvent[] = [];
  const eventSub = nc.subscribe('mail.event.>', {
    callback: (_e, m) => {
      events.push(m.json<MailEvent>());
    },
  });
  const submitted: SeenEnvelope[] = [];
  const submitSub = nc.subscribe('mail.submit.>', {
    callback: (_e, m) => {
      try {
        submitted.push(seenEnvelope(m));
      } catch {
        // Malformed submissions are part of the tests; only envelopes are collected.
      }
    },
  });
  const state = await kvm.open(STATE_BUCKET);
  const bodies = await new Objm(nc).open(BODY_BUCKET);

  const pending = async (stream: string, consumer: string) => {
    const ci = await jsm.consumers.info(stream, consumer);
    return ci.num_pending + ci.num_ack_pending;
  };

  return {
    nats,
    nc,
    js,
    jsm,
    state,
    bodies,
    queue,
    registry,
    jobs,
    events,
    submitted,
    async submit(partial, msgID, legacyInline) {
      const raw = Buffer.from(`From: alice@corp.test\r\nSubject: test ${partial.id}\r\n\r\nHello.\r\n`);
      const env: Envelope = {
        from: 'alice@corp.test',
        receivedAt: new Date().toISOString(),
        client: { address: '127.0.0.1', helo: 'client.test', tls: false },
        size: raw.length,
        body: legacyInline ? { inline: raw.toString('base64') } : { attached: raw.length },
        ...partial,
      };
      const { payload, headers } = envelopeWire(env, 'attached' in env.body ? raw : undefined);
      await js.publish(SUBJECTS.submit(0), payload, {
        msgID: msgID ?? msgIds.submission(env.id),
        ...(headers ? { headers } : {}),
      });
      return env;
    },
    async report(job, outcomes) {
      const result: DeliveryResult = {
        job,
        outcomes: outcomes.map((o, i) => ({ recipient: job.recipients[i]!, ...o })),
        attemptedAt: new Date().toISOString(),
        durationMs: 1,
      };
      await js.publish(SUBJECTS.result(job.pool), JSON.stringify(result), {
        msgID: msgIds.result(job.jobId, job.attempt),
      });
    },
    jobFor(messageId, attempt = 1) {
      return eventually<SeenJob>(`job for ${messageId} attempt ${attempt}`, () =>
        jobs.find((s) => s.job.messageId === messageId && s.job.attempt === attempt),
      );
    },
    async readState(id) {
      const e = await state.get(stateKey(id));
      return e && e.operation === 'PUT' && e.length > 0 ? decodeState(e.value).state : undefined;
    },
    async settled() {
      await eventually('queue settled', async () => {
        const counts = await Promise.all([
          pending(STREAMS.submit, 'queue-submit'),
          pending(STREAMS.results, 'queue-results'),
          pending(STREAMS.outbound, 'delivery-test'),
        ]);
        return counts.every((c) => c === 0);
      });
    },
    async close() {
      await queue.close();
      await outbound.close();
      eventSub.unsubscribe();
      submitSub.unsubscribe();
      store.stop();
      await nc.close();
      await nats.cleanup();
    },
  };
}
