/**
 * The job lifecycle of one message, as one pure function: `transition(state, event)` returns the next state and
 * the outputs the event calls for. The queue's handlers (submissions.ts, results.ts, admin-actions.ts) are thin
 * shells around it (apply.ts): read the state → transition → publish → compare-and-set → clean up.
 *
 * A job is `active` (on OUTBOUND or being attempted), `deferred` (waiting as a message schedule), `held` (no
 * schedule, waiting for release, like Postfix's hold queue) or `final`; `hold` on an active job turns its next
 * deferral into `held`. A message whose jobs are all final is complete: its state is deleted, then its body.
 *
 * Ordering (docs/queue.md): the outputs in `before` are published and acknowledged before the state is written, so
 * a crash in between repeats them under the same Nats-Msg-Ids (deduplicated) and then writes the state; the
 * outputs in `after` follow the write (a submission's jobs follow the state that lists them; purges and body
 * deletion follow the state that no longer needs them).
 */
import { attemptEvent, receivedEvent } from '../common/events.ts';
import { attemptOccurrence, msgIds, suppressionOccurrence } from '../common/msg-ids.ts';
import type { DeliveryPlan } from '../common/router.ts';
import type {
  DeliveryJob,
  DeliveryResult,
  DsnParams,
  Envelope,
  MailEvent,
  RecipientOutcome,
} from '../common/types.ts';
import { suppressionReason } from './bounce-codes.ts';
import type { DsnRecipient } from './dsn.ts';
import { planNotices, wantsNotice } from './notices.ts';
import { type AttemptDecision, decideAttempt } from './retry.ts';
import type { FinalResult, JobState, MessageState } from './state.ts';

/** Local reason recorded for recipients on the suppression list. */
export const SUPPRESSED_RESPONSE = '550 5.1.1 recipient suppressed after a recent hard bounce';

export type LifecycleEvent =
  /** An accepted message from SUBMIT, routed by the queue (router.ts). */
  | { kind: 'submitted'; envelope: Envelope; plan: DeliveryPlan; at: Date }
  /**
   * One delivery attempt's result from RESULTS: delivered, deferred, failed or expired per recipient. `completed`:
   * the message's state was deleted recently (a marker is left), so a direct job's result is a redelivered one.
   */
  | { kind: 'attempted'; result: DeliveryResult; at: Date; completed?: boolean }
  /** Operator actions (admin API, `postern queue …`), like postsuper -h / -H / -d and postqueue -i. */
  | { kind: 'hold' | 'release' | 'retry-now' | 'delete'; at: Date };

export type Output =
  /** A job for immediate delivery on OUTBOUND. */
  | { kind: 'publish'; job: DeliveryJob }
  /** A job as a message schedule due at `due` (replaces the job's earlier schedule). */
  | { kind: 'schedule'; job: DeliveryJob; due: Date; msgID: string }
  /** Purge a deferred job's schedule. */
  | { kind: 'unschedule'; pool: string; jobId: string }
  | { kind: 'event'; event: MailEvent; occurrence: string }
  /**
   * A DSN to the sender for these recipients (the shell skips it for null senders and DSNs): failures, a delay
   * warning or a success notice (notices.ts), with the message's RFC 3461 RET/ENVID. The shell publishes DSNs
   * before the other outputs of their group, so a notice precedes the attempt's events and its next schedule.
   */
  | { kind: 'dsn'; occurrence: string; attempt: number; recipients: DsnRecipient[]; params?: DsnParams }
  | { kind: 'suppress'; recipient: string; reason: string; response: string }
  | { kind: 'delete-body' };

export interface Transition {
  /** The state after the event; undefined when the message is complete (or never needed a state). */
  state: MessageState | undefined;
  /** How the stored state changes: nothing, created, updated or deleted (each a compare-and-set). */
  write: 'none' | 'create' | 'update' | 'delete';
  before: Output[];
  after: Output[];
  /** The message the outputs speak of (the state before a deletion, the planned state of a submission). */
  message: MessageState | undefined;
  /** Jobs an operator action affected; the attempt's decision for a result (for logs and metrics). */
  jobs: string[];
  decision?: AttemptDecision;
}

const nothing = (state: MessageState | undefined): Transition => ({
  state,
  write: 'none',
  before: [],
  after: [],
  message: state,
  jobs: [],
});

const withBody = (s: MessageState, j: JobState): DeliveryJob => ({ ...j.job, body: s.body });
const isHolding = (j: JobState) => j.status === 'held' || j.hold === true;
const allFinal = (s: MessageState) => Object.values(s.jobs).every((j) => j.status === 'final');

/**
 * Ends a change: a message whose jobs are all final is complete — its state is deleted, then its body (never the
 * other way round: a crash in between leaves an orphaned body, never a message without one).
 */
function settle(prev: MessageState, next: MessageState, t: Omit<Transition, 'state' | 'write' | 'message'>) {
  if (!allFinal(next)) return { ...t, state: next, write: 'update' as const, message: next };
  return {
    ...t,
    state: undefined,
    write: 'delete' as const,
    after: [...t.after, { kind: 'delete-body' as const }],
    message: prev,
  };
}

export function transition(state: MessageState | undefined, event: LifecycleEvent): Transition {
  switch (event.kind) {
    case 'submitted':
      return submitted(state, event);
    case 'attempted':
      return attempted(state, event);
    default:
      if (!state) return nothing(undefined);
      return operator(state, event.kind, event.at);
  }
}

/**
 * A routed submission: the state is created first and lists the jobs; the jobs and events follow. A redelivered
 * submission finds that state and republishes exactly its first-attempt jobs (deduplicated by id).
 */
function submitted(existing: MessageState | undefined, e: Extract<LifecycleEvent, { kind: 'submitted' }>) {
  const { envelope: env, plan } = e;
  const at = e.at.toISOString();
  const planned: MessageState = existing ?? {
    id: env.id,
    from: env.from,
    receivedAt: env.receivedAt,
    kind: env.kind ?? 'mail',
    body: env.body,
    jobs: Object.fromEntries(
      plan.jobs.map((job) => {
        const { body: _body, ...stored } = job;
        // A message ingress quarantined (Envelope.hold) waits in the hold queue until an operator releases it.
        return [job.jobId, { status: env.hold ? 'held' : 'active', attempt: 1, job: stored }];
      }),
    ),
    final: Object.fromEntries(
      plan.suppressed.map((r) => [r, { result: 'suppressed', response: SUPPRESSED_RESPONSE, at }]),
    ),
  };
  const hasJobs = Object.keys(planned.jobs).length > 0;
  const after: Output[] = Object.values(planned.jobs)
    .filter((j) => j.status === 'active' && j.attempt === 1)
    .map((j) => ({ kind: 'publish', job: withBody(planned, j) }));
  const suppressed = Object.entries(planned.final)
    .filter(([, f]) => f.result === 'suppressed')
    .map(([r]) => r);
  if (suppressed.length > 0) {
    const occurrence = suppressionOccurrence(env.id);
    after.push(
      {
        kind: 'event',
        event: {
          kind: 'suppressed',
          messageId: env.id,
          at,
          from: env.from,
          recipients: suppressed,
          response: SUPPRESSED_RESPONSE,
          ...(plan.policy ? { policy: plan.policy } : {}),
        },
        occurrence,
      },
      {
        kind: 'dsn',
        occurrence,
        attempt: 0,
        // RFC 3461: only recipients whose NOTIFY asks for failures (or gave none) are reported.
        recipients: suppressed
          .filter((r) => wantsNotice(env.dsn?.recipients?.[r]?.notify, 'failure'))
          .map((recipient) => {
            const orcpt = env.dsn?.recipients?.[recipient]?.orcpt;
            return {
              recipient,
              status: '5.1.1',
              reason: 'suppressed' as const,
              diagnostic: SUPPRESSED_RESPONSE,
              ...(orcpt ? { orcpt } : {}),
            };
          }),
        ...(env.dsn ? { params: env.dsn } : {}),
      },
    );
  }
  after.push({
    kind: 'event',
    event: receivedEvent({ messageId: env.id, from: env.from, recipients: env.to, policy: plan.policy }, at),
    occurrence: env.id,
  });
  // Every recipient suppressed: no state is kept and nothing will ever read the body again.
  if (!hasJobs) after.push({ kind: 'delete-body' });
  return {
    state: hasJobs ? planned : undefined,
    write: existing || !hasJobs ? ('none' as const) : ('create' as const),
    before: [],
    after,
    message: planned,
    jobs: Object.keys(planned.jobs),
  };
}

/**
 * A delivery attempt's result. A result whose job is unknown, final or at another attempt was already recorded
 * (a redelivery) or belongs to a dropped message: nothing changes, except that a complete state a crash left
 * behind is cleaned up now.
 */
function attempted(
  state: MessageState | undefined,
  e: Extract<LifecycleEvent, { kind: 'attempted' }>,
): Transition {
  if (!state && e.result.job.direct) return adopted(e);
  return recorded(state, e);
}

/**
 * The result of a direct job (routed at receipt, no state yet) that did not deliver every recipient: the queue
 * adopts the message — the state it would have planned at submission, then the attempt on it — so retries, holds,
 * bounces and `postern queue` work as for any message. Its `received` event was not published yet (delivery
 * publishes it only with a delivery it settles itself). A result for a message completed meanwhile (a redelivered
 * result) or without its body changes nothing.
 */
function adopted(e: Extract<LifecycleEvent, { kind: 'attempted' }>): Transition {
  const { result } = e;
  const { direct: _direct, ...job } = result.job;
  if (e.completed || !result.body) return nothing(undefined);
  const planned: MessageState = {
    id: job.messageId,
    from: job.from,
    receivedAt: job.receivedAt,
    kind: job.kind,
    body: result.body,
    jobs: { [job.jobId]: { status: 'active', attempt: job.attempt, job } },
    final: {},
  };
  const t = recorded(planned, { ...e, result: { ...result, job } });
  const received: Output = {
    kind: 'event',
    event: receivedEvent({ ...job, recipients: job.recipients }, job.receivedAt),
    occurrence: job.messageId,
  };
  // The state did not exist: it is created, and a message this very result completes needs none at all.
  return { ...t, before: [received, ...t.before], write: t.write === 'update' ? 'create' : 'none' };
}

function recorded(state: MessageState | undefined, e: Extract<LifecycleEvent, { kind: 'attempted' }>) {
  const { result } = e;
  const { job } = result;
  const js = state?.jobs[job.jobId];
  if (!state || !js || js.status === 'final' || js.attempt !== job.attempt) {
    if (state && allFinal(state)) return settle(state, state, { before: [], after: [], jobs: [] });
    return nothing(state);
  }
  const d = decideAttempt(result, e.at);
  const notices = planNotices(job, d, result.attemptedAt, e.at);
  // The delay warning goes once per job: the next attempt carries the mark, and so does the state below.
  if (d.next && notices.delay.length > 0) d.next.job.delayWarned = true;
  const before: Output[] = [];
  // A job on hold keeps its deferred recipients without a schedule until an operator releases it.
  if (d.next && !isHolding(js)) {
    before.push({
      kind: 'schedule',
      job: { ...d.next.job, body: state.body },
      due: d.next.due,
      msgID: msgIds.job(job.jobId, d.next.job.attempt),
    });
  }
  for (const o of d.failed) {
    const reason = suppressionReason(o.response, o.enhanced);
    if (reason) before.push({ kind: 'suppress', recipient: o.recipient, reason, response: o.response });
  }
  const occurrence = attemptOccurrence(job.jobId, job.attempt);
  for (const recipients of [notices.failure, notices.delay, notices.success]) {
    if (recipients.length === 0) continue;
    before.push({
      kind: 'dsn',
      occurrence: job.jobId,
      attempt: job.attempt,
      recipients,
      ...(job.dsn ? { params: job.dsn } : {}),
    });
  }
  const deferred = d.next ? result.outcomes.filter((o) => d.next!.job.recipients.includes(o.recipient)) : [];
  const groups: [Parameters<typeof attemptEvent>[0], RecipientOutcome[]][] = [
    ['delivered', d.delivered],
    ['bounced', d.failed],
    ['expired', d.expired],
    ['deferred', deferred],
  ];
  for (const [kind, list] of groups) {
    if (list.length > 0)
      before.push({ kind: 'event', occurrence, event: attemptEvent(kind, job, list, result.attemptedAt) });
  }

  const next = structuredClone(state);
  const mark = (list: RecipientOutcome[], res: FinalResult) => {
    for (const o of list)
      next.final[o.recipient] = {
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
    const first = result.outcomes.find((o) => o.status === 'deferred');
    const last = { lastResponse: first?.response ?? '', ...(first?.tls ? { lastTls: first.tls } : {}) };
    next.jobs[job.jobId] = isHolding(js)
      ? { status: 'held', attempt: d.next.job.attempt, job: d.next.job, ...last }
      : {
          status: 'deferred',
          attempt: d.next.job.attempt,
          job: d.next.job,
          nextAttemptAt: d.next.due.toISOString(),
          ...last,
        };
  } else {
    next.jobs[job.jobId] = { ...js, status: 'final' };
  }
  return settle(state, next, { before, after: [], jobs: [job.jobId], decision: d });
}

/**
 * Operator actions. hold: deferred jobs lose their schedule (purged after the write) and wait as `held`; a job in
 * flight is marked so its deferral is held. release / retry-now: held / deferred jobs get a schedule due now (a
 * schedule replaces the job's earlier one) before they are marked active. delete: every pending job is final
 * ('dropped'), schedules are purged, the message is complete.
 */
function operator(
  state: MessageState,
  action: 'hold' | 'release' | 'retry-now' | 'delete',
  at: Date,
): Transition {
  const next = structuredClone(state);
  const jobs: string[] = [];
  const before: Output[] = [];
  const after: Output[] = [];
  const now = at.toISOString();
  for (const [jobId, j] of Object.entries(state.jobs)) {
    if (j.status === 'final') continue;
    if (action === 'hold') {
      if (j.status === 'deferred') {
        after.push({ kind: 'unschedule', pool: j.job.pool, jobId });
        const { nextAttemptAt: _next, ...rest } = j;
        next.jobs[jobId] = { ...rest, status: 'held' };
      } else if (j.status === 'active') next.jobs[jobId] = { ...j, hold: true };
      else continue;
    } else if (action === 'release' || action === 'retry-now') {
      if (action === 'release' && j.hold) {
        const { hold: _hold, ...rest } = j;
        next.jobs[jobId] = rest;
      }
      if (j.status !== (action === 'release' ? 'held' : 'deferred')) continue;
      const verb = action === 'release' ? 'release' : 'now';
      before.push({
        kind: 'schedule',
        job: withBody(state, j),
        due: at,
        msgID: msgIds.jobNow(jobId, j.attempt, verb, at.getTime()),
      });
      next.jobs[jobId] = { ...j, status: 'active', nextAttemptAt: now };
    } else {
      if (j.status === 'deferred') after.push({ kind: 'unschedule', pool: j.job.pool, jobId });
      for (const r of j.job.recipients)
        next.final[r] = { result: 'dropped', response: 'dropped by operator', at: now };
      next.jobs[jobId] = { ...j, status: 'final' };
    }
    jobs.push(jobId);
  }
  if (action === 'delete') return settle(state, next, { before, after, jobs });
  const changed = JSON.stringify(next) !== JSON.stringify(state);
  return changed
    ? { state: next, write: 'update', before, after, message: next, jobs }
    : { ...nothing(state), jobs };
}
