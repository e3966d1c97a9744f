/**
 * The shell around the lifecycle (lifecycle.ts): read a message's state → transition → publish what must precede
 * the write → compare-and-set the state → what follows the write. Several handlers change one message at once
 * (results of its jobs on different queue replicas, operator actions), so a lost compare-and-set reads afresh
 * and runs the transition again; outputs published by a lost round are published again under the same
 * Nats-Msg-Ids and deduplicated by the stream.
 */
import { publishEvent } from '../common/events.ts';
import { STREAMS, SUBJECTS } from '../common/nats.ts';
import { deleteBody } from './body.ts';
import { sendDsn } from './bounces.ts';
import type { QueueContext } from './context.ts';
import { type LifecycleEvent, type Output, type Transition, transition } from './lifecycle.ts';
import { publishJob, scheduleJob } from './outputs.ts';
import { encodeState, isCasConflict, type MessageState, readState, stateKey, wasDeleted } from './state.ts';

const MAX_ROUNDS = 100;

export interface Applied extends Transition {
  /** The state as it was read before the event (undefined: the message was not queued). */
  previous: MessageState | undefined;
  dsnSent: number;
}

/**
 * Publishes a group of outputs (each awaits its PubAck); the body goes last, after everything that reads it.
 * `attached`: the bytes of the message's attached body, for the jobs and DSNs that carry or quote it.
 */
async function run(
  ctx: QueueContext,
  t: Transition,
  outputs: Output[],
  attached: Buffer | undefined,
): Promise<number> {
  let dsnSent = 0;
  const one = async (o: Output): Promise<void> => {
    switch (o.kind) {
      case 'publish':
        return publishJob(ctx.js, o.job, attached);
      case 'schedule':
        return scheduleJob(ctx.js, o.job, o.due, o.msgID, attached);
      case 'unschedule':
        // A schedule that fires before this purge becomes an attempt whose result the state then handles.
        await ctx.jsm.streams.purge(STREAMS.outbound, { filter: SUBJECTS.scheduled(o.pool, o.jobId) });
        return;
      case 'event':
        return publishEvent(ctx.js, o.event, o.occurrence);
      case 'dsn':
        if (
          t.message &&
          (await sendDsn(ctx, t.message, attached, o.occurrence, o.attempt, o.recipients, o.params))
        )
          dsnSent++;
        return;
      case 'suppress':
        return ctx.suppression.add(o.recipient, o.reason, o.response);
      case 'delete-body':
        if (t.message) await deleteBody(ctx.bodies, t.message.body);
        return;
    }
  };
  // A message's `received` event first; then DSNs: a notice (and its dsn event) is out before the attempt's other
  // events and its next schedule.
  const received = (o: Output) => o.kind === 'event' && o.event.kind === 'received';
  await Promise.all(outputs.filter(received).map(one));
  await Promise.all(outputs.filter((o) => o.kind === 'dsn').map(one));
  await Promise.all(
    outputs.filter((o) => o.kind !== 'delete-body' && o.kind !== 'dsn' && !received(o)).map(one),
  );
  for (const o of outputs) if (o.kind === 'delete-body') await one(o);
  return dsnSent;
}

/**
 * Applies one lifecycle event to a message and carries out its outputs; see the module comment. `attached`: the
 * bytes of an attached body that came with the event (a submission's, an adopted direct job's); otherwise those
 * kept in the state entry are used.
 */
export async function applyEvent(
  ctx: QueueContext,
  messageId: string,
  event: LifecycleEvent,
  attached?: Buffer,
): Promise<Applied> {
  const key = stateKey(messageId);
  for (let round = 0; round < MAX_ROUNDS; round++) {
    // A new submission's state is created without reading first (the common case); a redelivered one loses
    // the create and reads what the first one planned.
    const current = round === 0 && event.kind === 'submitted' ? undefined : await readState(ctx.state, key);
    // A direct job's result without state: adopted, unless a deletion marker says the message completed.
    const completed =
      event.kind === 'attempted' && event.result.job.direct && !current && (await wasDeleted(ctx.state, key));
    const t = transition(current?.state, completed ? { ...event, completed } : event);
    const body = current?.attached ?? attached;
    let dsnSent = await run(ctx, t, t.before, body);
    try {
      if (t.write === 'create') await ctx.state.create(key, encodeState(t.state!, body));
      else if (t.write === 'update')
        await ctx.state.update(key, encodeState(t.state!, body), current!.revision);
      else if (t.write === 'delete') {
        // A purge marker with a TTL goes away by itself; a plain delete marker would stay for good.
        const previousSeq = current!.revision;
        if (ctx.stateMarkerTtl) await ctx.state.purge(key, { previousSeq, ttl: ctx.stateMarkerTtl });
        else await ctx.state.delete(key, { previousSeq });
      }
    } catch (err) {
      if (isCasConflict(err)) continue;
      throw err;
    }
    dsnSent += await run(ctx, t, t.after, body);
    return { ...t, previous: current?.state, dsnSent };
  }
  throw new Error(`message ${messageId}: state update lost ${MAX_ROUNDS} compare-and-set races in a row`);
}
