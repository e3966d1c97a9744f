/**
 * Test harness for delivery: a real nats-server with the Postern topology, a delivery service under test, and a
 * "queue" stand-in that publishes DeliveryJobs onto OUTBOUND and reads DeliveryResults from RESULTS.
 */
import { randomBytes } from 'node:crypto';
import { AckPolicy, type Consumer, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Registry } from 'prom-client';
import { jobWire, readResultMessage } from '../../../services/common/body-wire.ts';
import { msgIds } from '../../../services/common/msg-ids.ts';
import { connectNats, ensureTopology, STREAMS, SUBJECTS } from '../../../services/common/nats.ts';
import { type SecretBox, secretBox } from '../../../services/common/secrets.ts';
import { createLogger } from '../../../services/common/telemetry.ts';
import type { DeliveryJob, DeliveryResult, Route } from '../../../services/common/types.ts';
import { type DeliveryService, startDelivery } from '../../../services/delivery/service.ts';
import { type DeliverySettings, readDeliverySettings } from '../../../services/delivery/settings.ts';
import { startTestNats, type TestNats } from '../../helpers/nats.ts';

export interface Harness {
  nats: TestNats;
  nc: NatsConnection;
  /** The key workers open sealed smarthost passwords and DKIM keys with (services/common/secrets.ts). */
  secrets: SecretBox;
  startWorker(settings: Partial<DeliverySettings>): Promise<{ service: DeliveryService; nc: NatsConnection }>;
  /** Publishes a job and waits for its result (bounded wait). */
  deliver(job: DeliveryJob, timeoutMs?: number): Promise<SeenResult>;
  publish(job: DeliveryJob): Promise<void>;
  waitResult(jobId: string, timeoutMs?: number): Promise<SeenResult>;
  close(): Promise<void>;
}

/** A result read off RESULTS, with the bytes of a body attached to it (a direct job's, body-wire.ts). */
export type SeenResult = DeliveryResult & { attached?: Buffer };

let seq = 0;

export function makeJob(route: Route, recipients: string[], over: Partial<DeliveryJob> = {}): DeliveryJob {
  seq++;
  const messageId = `msg${Date.now().toString(36)}${seq}`;
  const raw =
    'From: Sender <sender@origin.test>\r\nTo: rcpt@example.test\r\nSubject: test ' +
    `${seq}\r\nMessage-ID: <${messageId}@origin.test>\r\n\r\nHello number ${seq}.\r\n`;
  return {
    jobId: `${messageId}.0`,
    messageId,
    attempt: 1,
    from: 'sender@origin.test',
    recipients,
    route,
    pool: 'default',
    body: { inline: Buffer.from(raw).toString('base64') },
    receivedAt: new Date().toISOString(),
    expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
    retry: { scheduleMs: [1000], maxLifetimeMs: 3_600_000 },
    kind: 'mail',
    ...over,
  };
}

export async function startHarness(): Promise<Harness> {
  const nats = await startTestNats();
  const nc = await connectNats(nats.url, 'delivery-test');
  await ensureTopology(nc);
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.add(STREAMS.results, {
    durable_name: 'test-results',
    ack_policy: AckPolicy.Explicit,
    filter_subject: 'mail.result.>',
  });
  const consumer: Consumer = await js.consumers.get(STREAMS.results, 'test-results');
  const results = new Map<string, SeenResult>();
  const workers: { service: DeliveryService; nc: NatsConnection }[] = [];
  const logger = createLogger('delivery-test', process.env['LOG_LEVEL'] ?? 'silent');

  const waitResult = async (jobId: string, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!results.has(jobId)) {
      if (Date.now() > deadline) throw new Error(`no DeliveryResult for ${jobId} within ${timeoutMs} ms`);
      const m = await consumer.next({ expires: 1000 });
      if (m) {
        const { value: r, attached } = readResultMessage(m);
        results.set(r.job.jobId, { ...r, ...(attached ? { attached } : {}) });
        m.ack();
      }
    }
    return results.get(jobId)!;
  };
  /** Publishes a job as the queue does: a small (inline-built) body attached raw (body-wire.ts). */
  const publish = async (job: DeliveryJob) => {
    const dest = job.route.kind === 'mx' ? job.route.domain : `${job.route.host}:${job.route.port}`;
    const raw = 'inline' in job.body ? Buffer.from(job.body.inline, 'base64') : undefined;
    const { payload, headers } = jobWire(raw ? { ...job, body: { attached: raw.length } } : job, raw);
    await js.publish(SUBJECTS.outbound(job.pool, dest), payload, {
      msgID: msgIds.job(job.jobId, job.attempt),
      ...(headers ? { headers } : {}),
    });
  };

  const secrets = secretBox([randomBytes(32)]);
  return {
    nats,
    nc,
    secrets,
    async startWorker(settings) {
      const wnc = await connectNats(nats.url, 'delivery-under-test');
      const service = await startDelivery({
        nc: wnc,
        logger,
        registry: new Registry(),
        secrets,
        settings: {
          ...readDeliverySettings({}),
          hostname: 'postern.test',
          smtpTimeoutMs: 15_000,
          ...settings,
        },
      });
      const w = { service, nc: wnc };
      workers.push(w);
      return w;
    },
    publish,
    waitResult,
    async deliver(job, timeoutMs) {
      await publish(job);
      return waitResult(job.jobId, timeoutMs);
    },
    async close() {
      for (const w of workers) {
        if (!w.nc.isClosed()) {
          await w.service.close();
          await w.nc.close();
        }
      }
      await nc.close();
      await nats.cleanup();
    },
  };
}
