/**
 * Handling one DeliveryResult from RESULTS: schedule the next attempt for deferred recipients, bounce failed
 * and expired ones (one DSN per job attempt), feed the suppression list, emit events, then record the outcome in
 * the message state with compare-and-set. Outputs are published BEFORE the state changes: a crash in between
 * redelivers the result, which recomputes the same outputs (deduped by Nats-Msg-Id) and then records them. A
 * result whose attempt no longer matches the state was already recorded and is only acknowledged.
 */
import { attemptOccurrence } from '../common/msg-ids.ts';
import type { DeliveryResult, RecipientOutcome } from '../common/types.ts';
import { deleteBody } from './body.ts';
import { dsnStatus, suppressionReason } from './bounce-codes.ts';
import { sendDsn } from './bounces.ts';
import type { QueueContext } from './context.ts';
import type { DsnRecipient } from './dsn.ts';
import { publishEvent, scheduleJob } from './outputs.ts';
import { type AttemptDecision, decideAttempt } from './retry.ts';
import { destinationKey } from './router.ts';
import {
  deleteStateIf,
  type FinalResult,
  isComplete,
  type JobState,
  type MessageState,
  readState,
  stateKey,
  updateState,
} from './state.ts';

/** Held by an operator, or asked to be held while it was in flight. */
const isHolding = (j: JobState) => j.status === 'held' || j.hold === true;

/** Deletes the body and then the state of a message whose jobs are all final (idempotent). */
export async function finishMessage(ctx: QueueContext, key: string, state: MessageState): Promise<void> {
  await deleteBody(ctx.bodies, state.body);
  await ctx.state.delete(key);
  ctx.log.debug({ messageId: state.id }, 'message complete');
}

function dsnRecipients(d: AttemptDecision, attemptedAt: string): DsnRecipient[] {
  const line = (o: RecipientOutcome, reason: 'failed' | 'expired', status: string): DsnRecipient => ({
    recipient: o.recipient,
    status,
    reason,
    diagnostic: o.response,
    lastAttemptAt: attemptedAt,
    ...(o.remoteMta ? { remoteMta: o.remoteMta } : {}),
    ...(o.tls ? { tls: o.tls } : {}),
  });
  return [
    ...d.failed.map((o) => line(o, 'failed', dsnStatus(o.response, o.enhanced))),
    // RFC 3463 §3.5: 4.4.7 "delivery time expired".
    ...d.expired.map((o) => line(o, 'expired', '4.4.7')),
  ];
}

async function publishOutcomeEvents(ctx: QueueContext, result: DeliveryResult, d: AttemptDecision) {
  const { job } = result;
  const groups: ['delivered' | 'bounced' | 'expired' | 'deferred', RecipientOutcome[]][] = [
    ['delivered', d.delivered],
    ['bounced', d.failed],
    ['expired', d.expired],
    ['deferred', d.next ? result.outcomes.filter((o) => d.next!.job.recipients.includes(o.recipient)) : []],
  ];
  await Promise.all(
    groups
      .filter(([, list]) => list.length > 0)
      .map(([kind, list]) =>
        publishEvent(
          ctx.js,
          {
            kind,
            messageId: job.messageId,
            at: result.attemptedAt,
            from: job.from,
            recipients: list.map((o) => o.recipient),
            response: list[0]!.response,
            attempt: job.attempt,
            pool: job.pool,
            ...(list[0]!.tls ? { tls: list[0]!.tls } : {}),
          },
          attemptOccurrence(job.jobId, job.attempt),
        ),
      ),
  );
}

/** Records the attempt in the state (CAS); returns the new state, or undefined when it was already recorded. */
function recordAttempt(
  ctx: QueueContext,
  key: string,
  result: DeliveryResult,
  d: AttemptDecision,
  known: { state: MessageState; revision: number },
) {
  const { job } = result;
  return updateState(
    ctx.state,
    key,
    (s) => {
      const js = s.jobs[job.jobId];
      if (!js || js.status === 'final' || js.attempt !== job.attempt) return undefined;
      const mark = (list: RecipientOutcome[], res: FinalResult) => {
        for (const o of list)
          s.final[o.recipient] = {
            result: res,
            response: o.response,
            at: result.attemptedAt,
            ...(o.tls ? { tls: o.tls } : {}),
          };
      };
      mark(d.delivered, 'delivered');
      mark(d.failed, 'bounced');
      mark(d.expired, 'expired');
      if (d.next) {
        const deferred = result.outcomes.find((o) => o.status === 'deferred');
        const lastResponse = deferred?.response ?? '';
        const lastTls = deferred?.tls ? { lastTls: deferred.tls } : {};
        s.jobs[job.jobId] = isHolding(js)
          ? { status: 'held', attempt: d.next.job.attempt, job: d.next.job, lastResponse, ...lastTls }
          : {
              status: 'deferred',
              attempt: d.next.job.attempt,
              job: d.next.job,
              nextAttemptAt: d.next.due.toISOString(),
              lastResponse,
              ...lastTls,
            };
      } else {
        s.jobs[job.jobId] = { ...js, status: 'final' };
      }
      return s;
    },
    known,
  );
}

/**
 * The common case — this attempt ends the last open job — needs no state update: the state is deleted with a
 * compare-and-set on the revision just read (false if anyone changed it meanwhile: take the normal path). The
 * state goes before the body, so a crash in between can leave an orphaned body, never a body-less message.
 */
async function finishIfLast(
  ctx: QueueContext,
  key: string,
  result: DeliveryResult,
  d: AttemptDecision,
  current: { state: MessageState; revision: number },
): Promise<boolean> {
  const others = Object.entries(current.state.jobs).filter(([id]) => id !== result.job.jobId);
  if (d.next || others.some(([, j]) => j.status !== 'final')) return false;
  if (!(await deleteStateIf(ctx.state, key, current.revision))) return false;
  await deleteBody(ctx.bodies, current.state.body);
  ctx.log.debug({ messageId: current.state.id }, 'message complete');
  return true;
}

export async function handleResult(ctx: QueueContext, result: DeliveryResult): Promise<void> {
  const { job } = result;
  const key = stateKey(job.messageId);
  const current = await readState(ctx.state, key);
  const js = current?.state.jobs[job.jobId];
  if (!current || !js || js.status === 'final' || js.attempt !== job.attempt) {
    // Already recorded (redelivery), dropped by an operator, or unknown. A complete state left behind by a
    // crash between recording and clean-up is finished here.
    if (current && isComplete(current.state)) await finishMessage(ctx, key, current.state);
    ctx.log.debug(
      { messageId: job.messageId, jobId: job.jobId, attempt: job.attempt },
      'stale result ignored',
    );
    return;
  }
  const d = decideAttempt(result, new Date());
  // A job on hold keeps its deferred recipients without a schedule until an operator releases it.
  if (d.next && !isHolding(js))
    await scheduleJob(ctx.js, { ...d.next.job, body: current.state.body }, d.next.due);
  const suppress = d.failed
    .map((o) => ({ o, reason: suppressionReason(o.response, o.enhanced) }))
    .filter((x): x is { o: RecipientOutcome; reason: string } => x.reason !== undefined);
  await Promise.all(suppress.map(({ o, reason }) => ctx.suppression.add(o.recipient, reason, o.response)));
  const dsnSent = await sendDsn(
    ctx,
    current.state,
    job.jobId,
    job.attempt,
    dsnRecipients(d, result.attemptedAt),
  );
  await publishOutcomeEvents(ctx, result, d);

  const finished = await finishIfLast(ctx, key, result, d, current);
  const written = finished ? undefined : await recordAttempt(ctx, key, result, d, current);
  if (!finished && !written) return;
  const m = ctx.metrics;
  m.recipientsFinal.inc({ result: 'delivered' }, d.delivered.length);
  m.recipientsFinal.inc({ result: 'bounced' }, d.failed.length);
  m.recipientsFinal.inc({ result: 'expired' }, d.expired.length);
  m.bounces.inc({ type: 'hard' }, d.failed.length);
  m.bounces.inc({ type: 'soft' }, d.expired.length);
  if (d.next) {
    m.deferred.inc({ pool: job.pool });
    m.siteDeferrals.inc({ site: m.siteLabel(destinationKey(job.route)) });
  }
  if (dsnSent) m.dsnSent.inc();
  // Delivery already logs every attempt's outcome at info; here only what changes the plan is worth info.
  const eventful = d.next !== undefined || d.failed.length > 0 || d.expired.length > 0;
  ctx.log[eventful ? 'info' : 'debug'](
    {
      messageId: job.messageId,
      jobId: job.jobId,
      attempt: job.attempt,
      delivered: d.delivered.length,
      failed: d.failed.length,
      expired: d.expired.length,
      deferred: d.next?.job.recipients.length ?? 0,
      ...(d.next ? { nextAttemptAt: d.next.due.toISOString() } : {}),
    },
    'attempt recorded',
  );
  if (written && isComplete(written)) await finishMessage(ctx, key, written);
}
