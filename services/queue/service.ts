/**
 * The queue manager: consumes SUBMIT (route → jobs on OUTBOUND) and RESULTS (retry schedules, DSNs,
 * suppression, clean-up), exports queue metrics and serves the admin API.
 */

import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Registry } from 'prom-client';
import { BodyStore } from '../common/body-store.ts';
import { readEnvelopeMessage, readResultMessage } from '../common/body-wire.ts';
import type { ConfigStore } from '../common/config/store.ts';
import { CONSUMERS, ensureConsumer, STATE_BUCKET, STREAMS, SUPPRESSION_BUCKET } from '../common/nats.ts';
import { LoopSupervisor } from '../common/supervise.ts';
import { SuppressionList } from '../common/suppression.ts';
import type { Logger } from '../common/telemetry.ts';
import { startAdminServer } from './admin.ts';
import { runConsumer } from './consumer.ts';
import type { QueueContext } from './context.ts';
import { startDepthPoller } from './depth.ts';
import { createQueueMetrics } from './metrics.ts';
import { handleResult } from './results.ts';
import type { QueueSettings } from './settings.ts';
import { handleSubmission } from './submissions.ts';

export interface QueueService {
  /** Bound admin API port. */
  adminPort: number;
  /** Stops consuming (in-flight messages finish), stops the poller and the admin server. */
  close(): Promise<void>;
}

export async function startQueue(opts: {
  nc: NatsConnection;
  config: ConfigStore;
  logger: Logger;
  registry: Registry;
  settings: QueueSettings;
  /** The process's loop supervisor (services/common/service-main.ts); a private one otherwise (tests). */
  loops?: LoopSupervisor;
}): Promise<QueueService> {
  const { nc, settings } = opts;
  const loops =
    opts.loops ??
    new LoopSupervisor({ logger: opts.logger, registry: opts.registry, closing: () => nc.isClosed() });
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const kvm = new Kvm(nc);
  const ctx: QueueContext = {
    js,
    jsm,
    state: await kvm.open(STATE_BUCKET),
    stateMarkerTtl: (await jsm.streams.info(`KV_${STATE_BUCKET}`)).config.allow_msg_ttl
      ? `${Math.round(settings.stateMarkerTtlMs / 1000)}s`
      : undefined,
    bodies: new BodyStore(nc),
    suppression: new SuppressionList(await kvm.open(SUPPRESSION_BUCKET), settings.suppressionTtlMs),
    config: opts.config,
    metrics: createQueueMetrics(opts.registry),
    log: opts.logger,
    hostname: settings.hostname,
  };
  const consumerOpts = { ackWaitMs: settings.ackWaitMs, maxAckPending: settings.maxMessages * 4 };
  const common = {
    js,
    loops,
    log: opts.logger,
    maxMessages: settings.maxMessages,
    concurrency: settings.concurrency,
    retryDelayMs: settings.retryDelayMs,
  };
  const submissions = await runConsumer({
    ...common,
    stream: STREAMS.submit,
    durable: CONSUMERS.queueSubmit,
    ensure: () => ensureConsumer(nc, STREAMS.submit, CONSUMERS.queueSubmit, 'mail.submit.>', consumerOpts),
    parse: readEnvelopeMessage,
    idOf: (c) => c.value.id,
    handle: (c) => handleSubmission(ctx, c.value, c.attached),
  });
  // A failed start stops what it started, so runServiceMain's caller sees no half-running queue.
  let results: Awaited<ReturnType<typeof runConsumer>> | undefined;
  let poller: ReturnType<typeof startDepthPoller> | undefined;
  let admin: Awaited<ReturnType<typeof startAdminServer>>;
  try {
    results = await runConsumer({
      ...common,
      stream: STREAMS.results,
      durable: CONSUMERS.queueResults,
      ensure: () =>
        ensureConsumer(nc, STREAMS.results, CONSUMERS.queueResults, 'mail.result.>', consumerOpts),
      parse: readResultMessage,
      idOf: (c) => c.value.job.messageId,
      handle: (c) => handleResult(ctx, c.value, c.attached),
    });
    poller = startDepthPoller(jsm, ctx.metrics, loops, settings.depthIntervalMs);
    admin = await startAdminServer(ctx, settings.adminHost, settings.adminPort);
  } catch (err) {
    await Promise.all([submissions.stop(), results?.stop()]);
    await poller?.stop();
    throw err;
  }
  return {
    adminPort: admin.port,
    async close() {
      await Promise.all([submissions.stop(), results?.stop()]);
      await poller?.stop();
      await admin.close();
    },
  };
}
