/**
 * One delivery attempt of one job: load the body (an object-store body: check it exists, stream it later),
 * DKIM-sign, get a session to the destination (pooled), run the transaction and turn every answer into
 * per-recipient outcomes. Never throws for remote or network trouble: those become outcomes; only our own bugs
 * escape (the worker then reports deferred with a local reason).
 */
import type { BodySource, BodyStore } from '../common/body-store.ts';
import type { Logger } from '../common/telemetry.ts';
import type { DeliveryJob, RecipientOutcome, TlsFacts } from '../common/types.ts';
import { classifyError, type ErrorLike } from './classify.ts';
import { type AcquireOptions, type ConnectionPool, SiteBusyError } from './connection-pool.ts';
import { type DestinationContext, destinationKey, destinationName, openDestination } from './destination.ts';
import { signMessage } from './dkim.ts';
import { errorVerdict, outcomesVerdict, type SiteVerdict, suspendedOutcomes } from './shaping/dead-sites.ts';
import type { JobSite, ShapingGate, SiteWait } from './shaping/gate.ts';

export interface DeliverContext extends DestinationContext {
  bodies: BodyStore;
  pool: ConnectionPool;
  log: Logger;
  /** Cluster-wide site limits and automatic backoff; absent = only this process's caps. */
  shaping?: ShapingGate | undefined;
}

/** What one attempt came to: outcomes to report, or a site that does not take the job now (re-schedule it). */
export type Attempt = { outcomes: RecipientOutcome[] } | { wait: SiteWait };

/** An attempt and what it says about the site (shaping/dead-sites.ts). */
type Tried = Attempt & { verdict: SiteVerdict };

/** A rate token further away than this sends the job back instead of holding its session and slot. */
const MAX_TOKEN_WAIT_MS = 1000;
/** Sessions of a site with a connection limit go idle briefly: another process may need the lease. */
const LIMITED_IDLE_MS = 1000;
/** MX routes whose TLS check does not depend on the recipient domain can share sessions across the site. */
const SITE_POOLED_TLS = new Set(['opportunistic', 'required', 'verify']);

function poolKey(job: DeliveryJob, site: JobSite | undefined, mxPort: number): string {
  if (site && job.route.kind === 'mx' && SITE_POOLED_TLS.has(job.route.tls))
    return `site:${site.name}:${job.route.tls}`;
  return destinationKey(job.route, mxPort);
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

/** `attached`: the body's bytes when they came with the job (services/common/body-wire.ts). */
export async function deliverJob(job: DeliveryJob, ctx: DeliverContext, attached?: Buffer): Promise<Attempt> {
  const shaping = ctx.shaping;
  if (!shaping) {
    const { verdict: _, ...tried } = await attempt(job, ctx, undefined, attached);
    return tried;
  }
  const site = await shaping.siteOf(job);
  const admission = shaping.admit(site);
  if ('wait' in admission) return { wait: admission.wait };
  // A site known dead: an ordinary deferral at once — no body load, no connection, no lease (Postfix's
  // "delivery temporarily suspended").
  if ('defer' in admission) return { outcomes: suspendedOutcomes(job.recipients, admission.defer) };
  let tried: Tried | undefined;
  try {
    tried = await attempt(job, ctx, site, attached);
  } finally {
    // Also when the attempt threw (our bug): a probe in flight must be given back.
    const outcomes = tried && 'outcomes' in tried ? tried.outcomes : [];
    shaping.observe(site, outcomes, tried?.verdict ?? 'neutral', admission.probe);
  }
  return 'wait' in tried ? { wait: tried.wait } : { outcomes: tried.outcomes };
}

async function attempt(
  job: DeliveryJob,
  ctx: DeliverContext,
  site: JobSite | undefined,
  attached: Buffer | undefined,
): Promise<Tried> {
  const log = ctx.log.child({
    messageId: job.messageId,
    jobId: job.jobId,
    destination: destinationName(job.route),
  });
  const done = (outcomes: RecipientOutcome[], verdict: SiteVerdict = outcomesVerdict(outcomes)) => ({
    outcomes,
    verdict,
  });
  const wait = (w: SiteWait) => ({ wait: w, verdict: 'neutral' as const });
  let message: BodySource;
  try {
    const body = job.body;
    if ('attached' in body) {
      if (!attached) throw new Error('the job says its body is attached, but none came');
      message = attached;
    } else message = await ctx.bodies.source(body);
  } catch (err) {
    log.error({ err: (err as Error).message }, 'cannot load message body');
    return done(outcomesForAll(job.recipients, err as ErrorLike), 'neutral');
  }
  if (job.dkim) {
    try {
      const signed = await signMessage(message, job.dkim, ctx.secrets);
      if (signed.error)
        log.warn({ err: signed.error, domain: job.dkim.domain }, 'DKIM signing failed; sending unsigned');
      message = signed.message;
    } catch (err) {
      // A streamed body that could not be read through for its signature (dkim.ts).
      log.error({ err: (err as Error).message }, 'cannot read message body to sign it');
      return done(outcomesForAll(job.recipients, err as ErrorLike), 'neutral');
    }
  }

  const key = poolKey(job, site, ctx.mxPort);
  const shaping = ctx.shaping;
  const acquireOpts: AcquireOptions =
    site && shaping
      ? {
          permit: () => shaping.permit(site, job),
          site: site.name,
          ...(site.limits.messagesPerConnection ? { maxMessages: site.limits.messagesPerConnection } : {}),
          ...(site.limits.maxConnections !== undefined ? { idleMs: LIMITED_IDLE_MS } : {}),
        }
      : {};
  // A pooled session may have been closed by the peer while idle; such a failure is retried once on a fresh
  // connection. A fresh connection's failure is the destination's answer.
  for (let attempt = 0; attempt < 2; attempt++) {
    let acquired: Awaited<ReturnType<ConnectionPool['acquire']>>;
    try {
      acquired = await ctx.pool.acquire(key, () => openDestination(job.route, ctx), acquireOpts);
    } catch (err) {
      if (err instanceof SiteBusyError) return wait(err.wait);
      log.info({ err: (err as Error).message }, 'connection to destination failed');
      return done(outcomesForAll(job.recipients, err as ErrorLike), errorVerdict(err as ErrorLike));
    }
    const { session, reused } = acquired;
    if (site && shaping) {
      // The message token is taken with a session in hand: a token is never spent on a job that cannot go.
      const token = await waitForToken(shaping, site, job);
      if (token) {
        ctx.pool.release(key, session, true);
        return wait(token);
      }
    }
    try {
      const outcomes = await session.send(job.from, job.recipients, message, job.dsn);
      ctx.pool.release(key, session, true);
      return done(outcomes);
    } catch (err) {
      ctx.pool.release(key, session, false);
      if ((err as ErrorLike).code === 'ESTREAM') {
        // The body store failed mid-DATA (smtp-session.ts closed the connection without the final dot): our
        // trouble, not the site's — deferred, and not retried on another connection within this attempt.
        log.error({ err: (err as Error).message, remoteMta: session.remoteMta }, 'message body read failed');
        return done(outcomesForAll(job.recipients, err as ErrorLike), 'neutral');
      }
      if (reused && attempt === 0) {
        log.debug({ err: (err as Error).message }, 'pooled session failed; retrying on a new connection');
        continue;
      }
      log.info({ err: (err as Error).message, remoteMta: session.remoteMta }, 'transaction failed');
      return done(
        outcomesForAll(job.recipients, {
          ...(err as ErrorLike),
          message: (err as Error).message,
          remoteMta: session.remoteMta,
          tls: session.tls,
        }),
        errorVerdict(err as ErrorLike),
      );
    }
  }
  return done(outcomesForAll(job.recipients, { code: 'ECONNECTION', message: 'connection lost' }), 'down');
}

/** A message token within MAX_TOKEN_WAIT_MS (waited for here), or the wait to re-schedule with. */
async function waitForToken(
  shaping: ShapingGate,
  site: JobSite,
  job: DeliveryJob,
): Promise<SiteWait | undefined> {
  const reason = `site ${site.name} at its message rate (${site.limits.ratePerMinute}/min)`;
  for (let i = 0; i < 5; i++) {
    const { waitMs, reserved } = await shaping.messageToken(site, job);
    if (waitMs === 0) return undefined;
    if (waitMs > MAX_TOKEN_WAIT_MS) {
      const untilMs = Date.now() + waitMs;
      return reserved ? { untilMs, reason, token: { site: site.key, at: untilMs } } : { untilMs, reason };
    }
    await new Promise((r) => setTimeout(r, waitMs));
    if (reserved) return undefined;
  }
  return { untilMs: Date.now() + 1000, reason };
}
