/**
 * `GET /queue/summary[?status=all|active|deferred|held&top=N]`: the queue's shape (summary.ts) over every message
 * state in KV `messages`. The states are read with one KV watch (an ordered consumer replaying the last value of
 * every key) instead of a get per key: one stream read for the whole queue.
 */
import type { KV, KvEntry } from '@nats-io/kv';
import type { QueueContext } from './context.ts';
import { decodeState, type MessageState } from './state.ts';
import { type QueueSummary, type SummaryStatus, summarizeQueue } from './summary.ts';

const STATUSES: SummaryStatus[] = ['all', 'active', 'deferred', 'held'];

/** Every message state currently in the bucket (a snapshot as of the watch's start, plus changes racing it). */
export async function readAllStates(kv: KV): Promise<MessageState[]> {
  const states: MessageState[] = [];
  if ((await kv.status()).values === 0) return states;
  const watch = await kv.watch();
  try {
    for await (const e of watch as AsyncIterable<KvEntry & { delta?: number }>) {
      if (e.operation === 'PUT' && e.length > 0) states.push(decodeState(e.value).state);
      // delta: how many more stored values the replay has to deliver; 0 = the initial values are all here.
      if (!e.delta) break;
    }
  } finally {
    watch.stop();
  }
  return states;
}

export class SummaryRequestError extends Error {}

/** Parses the query and builds the summary; throws SummaryRequestError on a bad parameter. */
export async function queueSummary(ctx: QueueContext, params: URLSearchParams): Promise<QueueSummary> {
  const status = (params.get('status') ?? 'all') as SummaryStatus;
  if (!STATUSES.includes(status)) {
    throw new SummaryRequestError(`status must be one of ${STATUSES.join(', ')}, got "${status}"`);
  }
  const top = Number(params.get('top') ?? 50);
  if (!Number.isInteger(top) || top < 1 || top > 10_000) {
    throw new SummaryRequestError('top must be an integer from 1 to 10000');
  }
  return summarizeQueue(await readAllStates(ctx.state), { status, top });
}
