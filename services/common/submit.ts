/**
 * Durable hand-off to the queue: the body goes inline (small) or to the body store (services/common/body-store.ts:
 * the BODIES stream, or the object store when huge), then the
 * Envelope is published on SUBMIT with Nats-Msg-Id = message id. `submit` resolves only once JetStream has
 * acknowledged everything (DESIGN §3 rule 1) — the caller answers 250 after that and 451 when it rejects.
 */

import { type JetStreamClient, jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { BodyStore } from './body-store.ts';
import { encodeContract } from './contracts.ts';
import { msgIds } from './msg-ids.ts';
import { SUBJECTS } from './nats.ts';
import type { BodyRef, Envelope } from './types.ts';

/** One shard for now; the queue consumes `mail.submit.>` so more shards need no consumer change. */
export const SUBMIT_SHARD = 0;

export interface Submitter {
  /** Stores the body and publishes the envelope; rejects (never resolves) unless both were acknowledged. */
  submit(envelope: Omit<Envelope, 'body' | 'size'>, body: Buffer): Promise<{ stored: 'inline' | 'object' }>;
}

export interface SubmitterOptions {
  timeoutMs: number;
  inlineBodyMax: number;
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

export function createSubmitter(nc: NatsConnection, opts: SubmitterOptions): Submitter {
  const js: JetStreamClient = jetstream(nc, { timeout: opts.timeoutMs });
  const bodies = new BodyStore(nc, opts.timeoutMs);
  const removeBody = (ref: BodyRef, id: string) =>
    bodies.delete(ref).catch((err: Error) => opts.onCleanupError?.(id, err));

  return {
    async submit(partial, body) {
      if (nc.isClosed()) throw new Error('NATS connection closed');
      const id = partial.id;
      let envelope: Envelope;
      if (body.length <= opts.inlineBodyMax) {
        envelope = { ...partial, size: body.length, body: { inline: body.toString('base64') } };
      } else {
        const ref = await withDeadline(
          bodies.put(id, body, opts.timeoutMs),
          opts.timeoutMs,
          `store body ${id}`,
          (late) => void removeBody(late, id),
        );
        envelope = { ...partial, size: body.length, body: ref };
      }
      try {
        // Nats-Msg-Id = message id: a retried publish inside the duplicate window is stored once.
        await withDeadline(
          js.publish(SUBJECTS.submit(SUBMIT_SHARD), encodeContract(envelope), {
            msgID: msgIds.submission(id),
            timeout: opts.timeoutMs,
          }),
          opts.timeoutMs,
          `publish ${id}`,
        );
      } catch (err) {
        // Only a definite refusal proves the envelope was not stored: after a timeout the client may still
        // flush the buffered publish on reconnect, and an envelope whose body we deleted would be lost mail.
        if (!('inline' in envelope.body) && definitelyNotStored(err)) void removeBody(envelope.body, id);
        throw err;
      }
      return { stored: 'inline' in envelope.body ? 'inline' : 'object' };
    },
  };
}
