/**
 * Durable hand-off of an accepted message: the body travels attached (small: raw bytes, body-wire.ts) or goes to
 * the body store (services/common/body-store.ts: the BODIES stream, or the object store when huge), then
 * - the common case (docs/architecture.md "The lean path"): a message whose recipients all share one route, with
 *   no RFC 3461 parameters, no hold and no suppressed recipient, is routed here with the live config
 *   (services/common/router.ts, the queue's own routing) and its one delivery job is published straight on
 *   OUTBOUND, marked `direct` — the queue never hears of it unless an attempt does not deliver every recipient;
 * - everything else: the Envelope is published on SUBMIT with Nats-Msg-Id = message id, for the queue to route.
 * `submit` resolves only once JetStream has acknowledged everything (DESIGN §3 rule 1) — the caller answers 250
 * after that and 451 when it rejects.
 */

import { type JetStreamClient, jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { BodyStore } from './body-store.ts';
import { attachedJob, attachedRef, envelopeWire, jobWire } from './body-wire.ts';
import type { ConfigSnapshot } from './config/resolved.ts';
import { msgIds } from './msg-ids.ts';
import { SUBJECTS, SUPPRESSION_BUCKET } from './nats.ts';
import { destinationKey, planDelivery } from './router.ts';
import { SuppressionList } from './suppression.ts';
import type { BodyRef, DeliveryJob, Envelope } from './types.ts';

/** One shard for now; the queue consumes `mail.submit.>` so more shards need no consumer change. */
export const SUBMIT_SHARD = 0;

/**
 * Submits a message Postern wrote itself (a DSN, a TLS report) like any accepted one, awaiting the PubAck;
 * `body`: the bytes of an attached body (body-wire.ts).
 */
export async function submitEnvelope(
  js: JetStreamClient,
  env: Envelope,
  msgID: string,
  body?: Buffer,
): Promise<void> {
  const { payload, headers } = envelopeWire(env, body);
  await js.publish(SUBJECTS.submit(SUBMIT_SHARD), payload, { msgID, ...(headers ? { headers } : {}) });
}

export interface Submitter {
  /** Stores the body and publishes the envelope or job; rejects (never resolves) unless all were acknowledged. */
  submit(envelope: Omit<Envelope, 'body' | 'size'>, body: Buffer): Promise<{ stored: 'attached' | 'object' }>;
}

/** Direct jobs carry bodies up to this size attached (body-wire.ts); larger ones go to the body store. */
export const DEFAULT_ATTACH_MAX = 256 * 1024;

/** What routing at receipt needs: the live config and the suppression list. */
export interface DirectRouting {
  snapshot(): ConfigSnapshot;
  /** The recipients suppressed now; a failure sends the message the queue's way (it looks again). */
  suppressed(recipients: string[]): Promise<Set<string>>;
}

export interface SubmitterOptions {
  timeoutMs: number;
  inlineBodyMax: number;
  /** Route the common case at receipt (see the module comment); absent: every message goes to SUBMIT. */
  direct?: DirectRouting;
  /** Largest body a direct job carries attached (default DEFAULT_ATTACH_MAX, never above the max payload). */
  attachMax?: number;
  /** Best-effort cleanup failures are reported here (with the message id), never thrown. */
  onCleanupError?: (id: string, err: Error) => void;
}

/** Rejects after `ms` with a clear error; `late` runs if the operation completes after we gave up on it. */
function withDeadline<T>(work: Promise<T>, ms: number, what: string, late?: (value: T) => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(new Error(`${what}: no acknowledgement within ${ms} ms`));
    }, ms);
  });
  work.then(
    (v) => timedOut && late?.(v),
    () => undefined,
  );
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

const DEFINITE = new Set(['NoRespondersError', 'JetStreamApiError', 'ClosedConnectionError']);

/** True when the publish error (or its cause chain) says the server did not and will not store it. */
function definitelyNotStored(err: unknown): boolean {
  for (
    let e = err as { name?: string; cause?: unknown } | undefined, i = 0;
    e && i < 5;
    e = e.cause as typeof e, i++
  ) {
    if (e.name && DEFINITE.has(e.name)) return true;
  }
  return false;
}

/**
 * Routing at receipt over the live config and the suppression bucket (bound, never created: the operator or
 * local mode owns the topology). `POSTERN_DIRECT_ROUTING=0` turns it off: every message then goes through the
 * queue (the flow before issue #10; the bench compares both).
 */
export async function openDirectRouting(
  nc: NatsConnection,
  config: { snapshot(): ConfigSnapshot },
): Promise<DirectRouting> {
  const list = new SuppressionList(await new Kvm(nc).open(SUPPRESSION_BUCKET), 0);
  return { snapshot: () => config.snapshot(), suppressed: (recipients) => list.suppressed(recipients) };
}

/** Whether routing at receipt is on (`POSTERN_DIRECT_ROUTING`, default on). */
export function directRoutingEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return !/^(0|false|off|no)$/i.test(env.POSTERN_DIRECT_ROUTING ?? '');
}

/**
 * The message's one delivery job when it can skip the queue: one route, nothing suppressed, no hold, no RFC 3461
 * parameters (success and delay notices are the queue's), not a DSN. Undefined sends it to SUBMIT.
 */
async function directJob(
  env: Omit<Envelope, 'body'>,
  routing: DirectRouting,
): Promise<Omit<DeliveryJob, 'body'> | undefined> {
  if (env.hold || env.dsn || (env.kind ?? 'mail') !== 'mail') return undefined;
  // Routing does not look at the body; the job gets its body (attached or a reference) from the caller.
  const plan = planDelivery({ ...env, body: { attached: 0 } }, routing.snapshot());
  if (plan.jobs.length !== 1) return undefined;
  try {
    if ((await routing.suppressed(plan.jobs[0]!.recipients)).size > 0) return undefined;
  } catch {
    return undefined;
  }
  const { body: _body, ...job } = plan.jobs[0]!;
  return { ...job, direct: true };
}

/** The OUTBOUND subject and Nats-Msg-Id of a job. */
const jobAddress = (job: Omit<DeliveryJob, 'body'>) =>
  [SUBJECTS.outbound(job.pool, destinationKey(job.route)), msgIds.job(job.jobId, job.attempt)] as const;

export function createSubmitter(nc: NatsConnection, opts: SubmitterOptions): Submitter {
  const js: JetStreamClient = jetstream(nc, { timeout: opts.timeoutMs });
  const bodies = new BodyStore(nc, { timeoutMs: opts.timeoutMs });
  const removeBody = (ref: BodyRef, id: string) =>
    bodies.delete(ref).catch((err: Error) => opts.onCleanupError?.(id, err));

  return {
    async submit(partial, body) {
      if (nc.isClosed()) throw new Error('NATS connection closed');
      const id = partial.id;
      const job = opts.direct && (await directJob({ ...partial, size: body.length }, opts.direct));
      if (job && body.length <= Math.min(opts.attachMax ?? DEFAULT_ATTACH_MAX, bodies.streamMax())) {
        // The lean path's common case: one message on OUTBOUND, the body attached raw (body-wire.ts).
        const [subject, msgID] = jobAddress(job);
        const { payload, headers } = attachedJob(job, body);
        await withDeadline(
          js.publish(subject, payload, { msgID, headers, timeout: opts.timeoutMs }),
          opts.timeoutMs,
          `publish ${id}`,
        );
        return { stored: 'attached' };
      }
      // Small bodies travel attached to the envelope (or to the direct job) as raw bytes; larger ones are
      // stored first and referenced.
      const small = body.length <= opts.inlineBodyMax;
      const ref = small
        ? attachedRef(body)
        : await withDeadline(
            bodies.put(id, body, opts.timeoutMs),
            opts.timeoutMs,
            `store body ${id}`,
            (late) => void removeBody(late, id),
          );
      const bytes = small ? body : undefined;
      try {
        // Nats-Msg-Id = the job's or the message's id: a retried publish inside the duplicate window is stored once.
        const [subject, msgID, { payload, headers }] = job
          ? [...jobAddress(job), jobWire({ ...job, body: ref }, bytes)]
          : [
              SUBJECTS.submit(SUBMIT_SHARD),
              msgIds.submission(id),
              envelopeWire({ ...partial, size: body.length, body: ref }, bytes),
            ];
        await withDeadline(
          js.publish(subject, payload, { msgID, timeout: opts.timeoutMs, ...(headers ? { headers } : {}) }),
          opts.timeoutMs,
          `publish ${id}`,
        );
      } catch (err) {
        // Only a definite refusal proves the envelope was not stored: after a timeout the client may still
        // flush the buffered publish on reconnect, and an envelope whose body we deleted would be lost mail.
        if (!small && definitelyNotStored(err)) void removeBody(ref, id);
        throw err;
      }
      return { stored: small ? 'attached' : 'object' };
    },
  };
}
