/**
 * One delivery attempt of one job: load the body, DKIM-sign, get a session to the destination (pooled), run the
 * transaction and turn every answer into per-recipient outcomes. Never throws for remote or network trouble:
 * those become outcomes; only our own bugs escape (the worker then reports deferred with a local reason).
 */
import type { BodyStore } from '../common/body-store.ts';
import type { Logger } from '../common/telemetry.ts';
import type { DeliveryJob, RecipientOutcome, TlsFacts } from '../common/types.ts';
import { classifyError, type ErrorLike } from './classify.ts';
import type { ConnectionPool } from './connection-pool.ts';
import { type DestinationContext, destinationKey, destinationName, openDestination } from './destination.ts';
import { signMessage } from './dkim.ts';

export interface DeliverContext extends DestinationContext {
  bodies: BodyStore;
  pool: ConnectionPool;
  log: Logger;
}

/** Every recipient gets the same outcome (connection-level failures, local errors). */
export function outcomesForAll(
  recipients: string[],
  err: ErrorLike & { remoteMta?: string; tls?: TlsFacts },
): RecipientOutcome[] {
  const c = classifyError(err);
  return recipients.map((recipient) => ({
    recipient,
    status: c.status,
    response: c.response,
    ...(c.enhanced ? { enhanced: c.enhanced } : {}),
    ...(err.remoteMta ? { remoteMta: err.remoteMta } : {}),
    ...(err.tls ? { tls: err.tls } : {}),
  }));
}

export async function deliverJob(job: DeliveryJob, ctx: DeliverContext): Promise<RecipientOutcome[]> {
  const log = ctx.log.child({
    messageId: job.messageId,
    jobId: job.jobId,
    destination: destinationName(job.route),
  });
  let raw: Buffer;
  try {
    raw = await ctx.bodies.get(job.body);
  } catch (err) {
    log.error({ err: (err as Error).message }, 'cannot load message body');
    return outcomesForAll(job.recipients, err as ErrorLike);
  }
  if (job.dkim) {
    const signed = await signMessage(raw, job.dkim);
    if (signed.error)
      log.warn({ err: signed.error, domain: job.dkim.domain }, 'DKIM signing failed; sending unsigned');
    raw = signed.raw;
  }

  const key = destinationKey(job.route, ctx.mxPort);
  // A pooled session may have been closed by the peer while idle; such a failure is retried once on a fresh
  // connection. A fresh connection's failure is the destination's answer.
  for (let attempt = 0; attempt < 2; attempt++) {
    let acquired: Awaited<ReturnType<ConnectionPool['acquire']>>;
    try {
      acquired = await ctx.pool.acquire(key, () => openDestination(job.route, ctx));
    } catch (err) {
      log.info({ err: (err as Error).message }, 'connection to destination failed');
      return outcomesForAll(job.recipients, err as ErrorLike);
    }
    const { session, reused } = acquired;
    try {
      const outcomes = await session.send(job.from, job.recipients, raw);
      ctx.pool.release(key, session, true);
      return outcomes;
    } catch (err) {
      ctx.pool.release(key, session, false);
      if (reused && attempt === 0) {
        log.debug({ err: (err as Error).message }, 'pooled session failed; retrying on a new connection');
        continue;
      }
      log.info({ err: (err as Error).message, remoteMta: session.remoteMta }, 'transaction failed');
      return outcomesForAll(job.recipients, {
        ...(err as ErrorLike),
        message: (err as Error).message,
        remoteMta: session.remoteMta,
        tls: session.tls,
      });
    }
  }
  return outcomesForAll(job.recipients, { code: 'ECONNECTION', message: 'connection lost' });
}
