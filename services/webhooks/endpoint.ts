/**
 * One webhook endpoint: a durable JetStream consumer of its own on EVENTS (filtered to the endpoint's event
 * kinds), consumed under the process's LoopSupervisor. Each endpoint has its own consumer, ack-pending window and
 * handlers, so an endpoint that fails or hangs never holds back another.
 *
 * At least once: an event is acked only after a 2xx; a failure naks it with a doubling delay (the server
 * redelivers it then; JetStream's delivery count is the attempt number); once the next attempt would fall after
 * the endpoint's maxLifetime it is dead-lettered (publish awaited) and then acked. A crash anywhere redelivers.
 */
import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import type { WebhookConfig } from '../common/config/webhook.ts';
import { consumeSupervised, setAsideUnreadable } from '../common/consume.ts';
import { readMailEvent } from '../common/contracts.ts';
import { isConsumerNotFound, STREAMS, SUBJECTS, subjectToken } from '../common/nats.ts';
import type { LoopSupervisor } from '../common/supervise.ts';
import type { Logger } from '../common/telemetry.ts';
import { publishDeadLetter } from './dead-letter.ts';
import { decide } from './decision.ts';
import type { WebhookMetrics } from './metrics.ts';
import { sendEvent } from './send.ts';

const SITE_EVENTS = SUBJECTS.event('site.');

/** Durable consumer name of an endpoint (`webhook-<namespace>_2e<name>`, escaped like subject tokens). */
export const consumerName = (source: string) => `webhook-${subjectToken(source.replace('/', '.'))}`;

export interface EndpointDeps {
  js: JetStreamClient;
  jsm: JetStreamManager;
  loops: LoopSupervisor;
  metrics: WebhookMetrics;
  log: Logger;
  /** Requests in flight per endpoint (also the pull batch, so nothing waits long client-side). */
  concurrency: number;
  /** The consumer's max_ack_pending: events delivered or waiting for a retry at once. */
  maxPending: number;
}

/** Whether an event goes to this endpoint: site events always; mail events only under a listed policy. */
export function passesPolicyFilter(
  cfg: Pick<WebhookConfig, 'policies'>,
  event: { policy?: string; kind: string },
) {
  if (!cfg.policies || event.kind.startsWith('site.')) return true;
  return event.policy !== undefined && cfg.policies.includes(event.policy);
}

/**
 * Creates or updates the endpoint's consumer. A new endpoint starts with events stored from now on (deliver
 * policy `new`), not with the stream's 7 days of history; an existing one keeps its position.
 */
export async function ensureEndpointConsumer(
  jsm: JetStreamManager,
  cfg: WebhookConfig,
  maxPending: number,
): Promise<void> {
  const durable = consumerName(cfg.source);
  const settings = {
    filter_subjects: cfg.events.map(SUBJECTS.event),
    // A request may take `timeoutMs`; `working()` restarts the clock when it begins.
    ack_wait: nanos(cfg.timeoutMs + 5_000),
    max_ack_pending: maxPending,
    max_deliver: -1,
  };
  try {
    await jsm.consumers.info(STREAMS.events, durable);
  } catch (err) {
    if (!isConsumerNotFound(err)) throw err;
    await jsm.consumers.add(STREAMS.events, {
      ...settings,
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.New,
    });
    return;
  }
  await jsm.consumers.update(STREAMS.events, durable, settings);
}

export interface RunningEndpoint {
  readonly config: WebhookConfig;
  readonly started: Promise<void>;
  stop(): Promise<void>;
}

export function startEndpoint(cfg: WebhookConfig, deps: EndpointDeps): RunningEndpoint {
  const endpoint = cfg.source;
  const durable = consumerName(endpoint);
  const log = deps.log.child({ endpoint });

  const open = async (): Promise<ConsumerMessages> => {
    await ensureEndpointConsumer(deps.jsm, cfg, deps.maxPending);
    const consumer = await deps.js.consumers.get(STREAMS.events, durable);
    return consumer.consume({ max_messages: deps.concurrency, abort_on_missing_resource: true });
  };

  const handle = async (m: JsMsg) => {
    // Nats-Msg-Id (`ev.<kind>.<job>.<attempt>`) names the occurrence; events published without one get the
    // stream sequence, which is just as stable for the stored event.
    const id = m.headers?.get('Nats-Msg-Id') || `${STREAMS.events}.${m.seq}`;
    let event: { kind: string; policy?: string };
    try {
      // Mail events are a checked contract (services/common/contracts.ts); site events (sites.ts) only need a kind.
      event = m.subject.startsWith(SITE_EVENTS) ? m.json<{ kind: string }>() : readMailEvent(m.string());
      if (typeof event?.kind !== 'string') throw new Error('no kind');
    } catch (err) {
      setAsideUnreadable(m, err, log, { eventId: id });
      return;
    }
    if (!passesPolicyFilter(cfg, event)) {
      m.ack();
      return;
    }
    const attempt = m.info.deliveryCount;
    const body = JSON.stringify({ id, type: event.kind, data: event });
    m.working();
    const t0 = performance.now();
    const outcome = await sendEvent(cfg, { id, type: event.kind, attempt }, body);
    deps.metrics.duration.observe({ endpoint }, (performance.now() - t0) / 1000);
    deps.metrics.deliveries.inc({ endpoint, result: outcome.result });
    const d = decide(outcome.result, attempt, Date.now() - m.time.getTime(), cfg);
    if (d.action === 'ack') {
      m.ack();
      log.debug({ eventId: id, type: event.kind, attempt, status: outcome.status }, 'webhook delivered');
      return;
    }
    if (d.action === 'retry') {
      log.warn(
        {
          eventId: id,
          type: event.kind,
          attempt,
          result: outcome.result,
          detail: outcome.detail,
          retryInMs: d.delayMs,
        },
        'webhook attempt failed; will retry',
      );
      m.nak(d.delayMs);
      return;
    }
    try {
      await publishDeadLetter(deps.js, {
        endpoint,
        url: cfg.url,
        eventId: id,
        type: event.kind,
        attempts: attempt,
        storedAt: m.time.toISOString(),
        deadAt: new Date().toISOString(),
        lastError: outcome.detail ?? outcome.result,
        event,
      });
    } catch (err) {
      // Not stored as a dead letter: keep the event and try again later rather than lose it.
      log.error({ eventId: id, err: (err as Error).message }, 'dead-letter publish failed; will retry');
      m.nak(cfg.initialDelayMs);
      return;
    }
    deps.metrics.deliveries.inc({ endpoint, result: 'dead_letter' });
    log.error(
      { eventId: id, type: event.kind, attempts: attempt, lastError: outcome.detail ?? outcome.result },
      'webhook event dead-lettered after the endpoint maxLifetime',
    );
    m.ack();
  };

  const running = consumeSupervised(deps.loops, `webhook:${endpoint}`, open, deps.concurrency, handle);
  return { config: cfg, started: running.started, stop: () => running.stop() };
}
