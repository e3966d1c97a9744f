/**
 * NATS connection and the JetStream topology every service relies on (docs/architecture.md §Streams).
 * `ensureTopology` is idempotent: each service calls it at start, so start order does not matter.
 */
import {
  AckPolicy,
  DiscardPolicy,
  type JetStreamManager,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { nanos } from '@nats-io/nats-core';
import { Objm } from '@nats-io/obj';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { CONFIG_BUCKET } from './config/resolved.ts';
import { WEBHOOK_BUCKET } from './config/webhook.ts';
import { type NatsAuthOptions, natsAuthFromEnv } from './nats-auth.ts';
import { patchNatsClient } from './nats-client-patches.ts';

export const STREAMS = {
  submit: 'SUBMIT',
  outbound: 'OUTBOUND',
  results: 'RESULTS',
  events: 'EVENTS',
  bodies: 'BODIES',
  clientRate: 'CLIENT_RATE',
  authFailures: 'AUTH_FAILURES',
  /** Webhook events given up after the endpoint's maxLifetime (services/webhooks/dead-letter.ts). */
  webhookDead: 'WEBHOOK_DEAD',
} as const;

export const SUBJECTS = {
  submit: (shard: number) => `mail.submit.${shard}`,
  /** Destination keys are sanitised: NATS subject tokens cannot contain '.', ' ', '*', '>'. */
  outbound: (pool: string, destination: string) => `mail.out.${pool}.${subjectToken(destination)}`,
  outboundPool: (pool: string) => `mail.out.${pool}.>`,
  /** A deferred job waits as a JetStream message schedule (server ≥ 2.12) on its own subject. */
  scheduled: (pool: string, jobId: string) => `mail.sched.${pool}.${subjectToken(jobId)}`,
  result: (pool: string) => `mail.result.${pool}`,
  event: (kind: string) => `mail.event.${kind}`,
  body: (messageId: string) => `mail.body.${subjectToken(messageId)}`,
  /** One counter per client (hashed) per one-minute window: services/ingress/client-rate.ts. */
  clientRate: (window: number, clientHash: string) => `rate.client.${window}.${clientHash}`,
  /** Failed AUTHs per client IP or user name (hashed) per lockout window: services/ingress/auth-lockout.ts. */
  authFailure: (kind: 'ip' | 'user', seconds: number, window: number, keyHash: string) =>
    `auth.fail.${kind}.${seconds}.${window}.${keyHash}`,
  /** A dead-lettered webhook event, per endpoint (`<namespace>.<name>` escaped). */
  webhookDead: (endpoint: string) => `webhook.dead.${subjectToken(endpoint)}`,
} as const;

export const BODY_BUCKET = 'bodies';
export const STATE_BUCKET = 'messages';
/**
 * KV `messages` allows per-message TTLs (nats-server ≥ 2.11): a finished message's state is removed with a purge
 * marker that expires (the queue's `POSTERN_STATE_MARKER_TTL`), so the bucket does not keep one marker per message
 * ever handled (~100 bytes each; found by the soak, docs/reliability.md). Markers the server itself places when a
 * TTL'd message expires live this long.
 */
export const STATE_MARKER_TTL_MS = 5 * 60_000;
export const SUPPRESSION_BUCKET = 'suppression';
/** The suppression bucket's max age: no entry outlives it, whatever its own expiry says. */
export const SUPPRESSION_MAX_AGE_MS = 30 * 86_400_000;

/** Durable consumer names. */
export const CONSUMERS = {
  queueSubmit: 'queue-submit',
  queueResults: 'queue-results',
  delivery: (pool: string) => `delivery-${pool}`,
} as const;

export function subjectToken(text: string): string {
  return text.replace(/[^A-Za-z0-9_-]/g, (c) => `_${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * Connects with unlimited reconnects. Credentials, TLS and the inbox prefix come from the environment
 * (nats-auth.ts) unless `auth` is given.
 */
export async function connectNats(
  url: string,
  name: string,
  auth: NatsAuthOptions = natsAuthFromEnv(),
): Promise<NatsConnection> {
  patchNatsClient();
  return connect({
    ...auth,
    servers: url.split(','),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    // nats.js otherwise builds two Error objects (stack captures) per request/publish for async traces: about a
    // fifth of the queue's CPU under load (bench/, profile). Our errors carry the message id instead.
    noAsyncTraces: true,
  });
}

async function ensureStream(jsm: JetStreamManager, cfg: Partial<StreamConfig> & { name: string }) {
  try {
    await jsm.streams.info(cfg.name);
    await jsm.streams.update(cfg.name, cfg);
  } catch (err) {
    if ((err as Error).name !== 'StreamNotFoundError' && !/stream not found/i.test(String(err))) throw err;
    await jsm.streams.add(cfg);
  }
}

/** Turns on per-message TTLs (and TTL'd delete markers) of an existing stream; once on, the server keeps them on. */
async function allowMessageTtl(jsm: JetStreamManager, stream: string, markerTtlMs: number) {
  const { config } = await jsm.streams.info(stream);
  if (config.allow_msg_ttl) return;
  await jsm.streams.update(stream, {
    ...config,
    allow_msg_ttl: true,
    subject_delete_marker_ttl: nanos(markerTtlMs),
  });
}

/**
 * Who sets up the streams and buckets: `manage` (create or update them; the default, and local mode) or `verify`
 * (only check they exist, waiting until they do). With NATS permissions (the chart's default) only the operator
 * may create or change streams, so every other component runs with `POSTERN_NATS_TOPOLOGY=verify`.
 */
export type TopologyMode = 'manage' | 'verify';

export function topologyModeFromEnv(env: NodeJS.ProcessEnv = process.env): TopologyMode {
  return env['POSTERN_NATS_TOPOLOGY'] === 'verify' ? 'verify' : 'manage';
}

/** The streams `ensureTopology` makes, buckets included (KV_<bucket>, OBJ_<bucket>). */
export const TOPOLOGY_STREAMS = [
  ...Object.values(STREAMS),
  `KV_${CONFIG_BUCKET}`,
  `KV_${WEBHOOK_BUCKET}`,
  `KV_${STATE_BUCKET}`,
  `KV_${SUPPRESSION_BUCKET}`,
  `OBJ_${BODY_BUCKET}`,
];

export async function ensureTopology(
  nc: NatsConnection,
  replicas = 1,
  mode: TopologyMode = topologyModeFromEnv(),
): Promise<void> {
  const jsm = await jetstreamManager(nc);
  if (mode === 'verify') {
    for (const name of TOPOLOGY_STREAMS) {
      await jsm.streams.info(name).catch((err: Error) => {
        throw new Error(`stream ${name} is not there yet (the operator creates it): ${err.message}`);
      });
    }
    return;
  }
  const common = { storage: StorageType.File, num_replicas: replicas, duplicate_window: nanos(2 * 60_000) };
  await ensureStream(jsm, {
    ...common,
    name: STREAMS.submit,
    subjects: ['mail.submit.>'],
    retention: RetentionPolicy.Workqueue,
  });
  await ensureStream(jsm, {
    ...common,
    name: STREAMS.outbound,
    subjects: ['mail.out.>', 'mail.sched.>'],
    retention: RetentionPolicy.Workqueue,
    allow_msg_schedules: true,
  });
  await ensureStream(jsm, {
    ...common,
    name: STREAMS.results,
    subjects: ['mail.result.>'],
    retention: RetentionPolicy.Workqueue,
  });
  await ensureStream(jsm, {
    ...common,
    name: STREAMS.events,
    subjects: ['mail.event.>'],
    retention: RetentionPolicy.Limits,
    max_age: nanos(7 * 86_400_000),
    max_bytes: 1024 ** 3,
    discard: DiscardPolicy.Old,
  });
  // One message per body (services/common/body-store.ts); deleted by purging its subject when the message is done.
  await ensureStream(jsm, {
    ...common,
    name: STREAMS.bodies,
    subjects: ['mail.body.>'],
    retention: RetentionPolicy.Limits,
    max_msgs_per_subject: 1,
    // Delivery loads bodies with a direct get (raw bytes; body-store.ts), the leader-served get as fallback.
    allow_direct: true,
  });
  // Per-client message counters shared by every ingress replica (server ≥ 2.12 counter stream, ADR-49: the server
  // adds `Nats-Incr` atomically and returns the total in the PubAck). Counter streams refuse per-message TTLs, so
  // old windows leave by max_age; one message per subject is all a counter needs.
  await ensureStream(jsm, {
    ...common,
    name: STREAMS.clientRate,
    subjects: ['rate.client.>'],
    retention: RetentionPolicy.Limits,
    allow_msg_counter: true,
    allow_direct: true,
    max_msgs_per_subject: 1,
    max_age: nanos(3 * 60_000),
    discard: DiscardPolicy.Old,
  });
  // Failed AUTHs per IP and per user, counted like CLIENT_RATE; a lockout window is at most 12 h
  // (settings.ts), so 25 h keeps the previous window of every key.
  await ensureStream(jsm, {
    ...common,
    name: STREAMS.authFailures,
    subjects: ['auth.fail.>'],
    retention: RetentionPolicy.Limits,
    allow_msg_counter: true,
    allow_direct: true,
    max_msgs_per_subject: 1,
    max_age: nanos(25 * 3_600_000),
    discard: DiscardPolicy.Old,
  });
  // Dead-lettered webhook events: kept 30 days for whoever reads them (`nats sub 'webhook.dead.>'`, a replay).
  await ensureStream(jsm, {
    ...common,
    name: STREAMS.webhookDead,
    subjects: ['webhook.dead.>'],
    retention: RetentionPolicy.Limits,
    max_age: nanos(30 * 86_400_000),
    max_bytes: 256 * 1024 ** 2,
    discard: DiscardPolicy.Old,
  });
  const kvm = new Kvm(nc);
  await kvm.create(CONFIG_BUCKET, { history: 5, replicas });
  await kvm.create(WEBHOOK_BUCKET, { history: 1, replicas });
  await kvm.create(STATE_BUCKET, { history: 1, replicas, markerTTL: STATE_MARKER_TTL_MS });
  // A bucket made by an earlier version exists without per-message TTLs: kvm.create leaves it as it is.
  await allowMessageTtl(jsm, `KV_${STATE_BUCKET}`, STATE_MARKER_TTL_MS);
  await kvm.create(SUPPRESSION_BUCKET, { history: 1, replicas, ttl: SUPPRESSION_MAX_AGE_MS });
  await new Objm(nc).create(BODY_BUCKET, { replicas, storage: StorageType.File });
}

/** The settings of a durable pull consumer Postern creates (ensureConsumer). */
export interface ConsumerSpec {
  stream: string;
  durable: string;
  filter: string;
  /** Short, so a dead worker's messages return fast (default 30 s). */
  ackWaitMs?: number;
  maxAckPending?: number;
}

/** The JetStream consumer configuration of a spec: explicit acks, unlimited redeliveries. */
export function consumerConfig(spec: ConsumerSpec) {
  return {
    durable_name: spec.durable,
    ack_policy: AckPolicy.Explicit,
    filter_subject: spec.filter,
    ack_wait: nanos(spec.ackWaitMs ?? 30_000),
    max_ack_pending: spec.maxAckPending ?? 1000,
    max_deliver: -1,
  };
}

/**
 * A durable pull consumer with explicit acks; `ackWaitMs` is short so a dead worker's messages return fast.
 * `createOnly`: leave an existing consumer as it is (the operator creating a pool's consumer before any of
 * its workers runs must not overwrite the settings those workers chose).
 */
export async function ensureConsumer(
  nc: NatsConnection,
  stream: string,
  durable: string,
  filter: string,
  opts: { ackWaitMs?: number; maxAckPending?: number; createOnly?: boolean } = {},
): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const cfg = consumerConfig({ stream, durable, filter, ...opts });
  let exists = false;
  try {
    await jsm.consumers.info(stream, durable);
    exists = true;
  } catch (err) {
    if (!isConsumerNotFound(err)) throw err;
  }
  if (!exists) await jsm.consumers.add(stream, cfg);
  else if (!opts.createOnly) await jsm.consumers.update(stream, durable, cfg);
}

/** JetStream's "consumer not found" (API error 10014), as nats.js 3 reports it. */
export function isConsumerNotFound(err: unknown): boolean {
  return (
    (err as Error)?.name === 'ConsumerNotFoundError' ||
    (err as { api_error?: { err_code?: number } })?.api_error?.err_code === 10014 ||
    /consumer not found/i.test(String((err as Error)?.message ?? err))
  );
}
