/**
 * Bounded concurrent processing of a JetStream pull consumer's messages: at most `concurrency` handlers run at
 * once (the rest wait client-side, still unacknowledged, so the server's ack_wait protects them), and `stop()`
 * stops pulling, then waits for the handlers in flight — a graceful drain acks nothing it did not finish.
 * `consumeSupervised` keeps such a loop alive: when it fails (consumer deleted, stream gone) the consumer is
 * ensured again and consumed anew under the process's LoopSupervisor.
 */
import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import { NewerContractError } from './contracts.ts';
import type { LoopSupervisor } from './supervise.ts';
import type { Logger } from './telemetry.ts';

/** How long a message of a newer contract version waits before it is offered again (nak delay). */
export const NEWER_CONTRACT_DELAY_MS = 10_000;

/**
 * A message this build cannot read. One written under a newer contract version (a rolling upgrade: a newer
 * producer, this consumer not yet replaced) is handed back with a delay for a replica that can read it — consumers
 * redeliver without limit, so it waits, never lost. Anything else is malformed and terminated, with a log line.
 */
export function setAsideUnreadable(
  m: JsMsg,
  err: unknown,
  log: Logger,
  fields: Record<string, unknown>,
): void {
  const message = (err as Error).message;
  if (err instanceof NewerContractError) {
    log.warn(
      { ...fields, seq: m.seq, err: message },
      'message of a newer release left for an upgraded replica',
    );
    m.nak(NEWER_CONTRACT_DELAY_MS);
    return;
  }
  log.error({ ...fields, seq: m.seq, err: message }, 'malformed message terminated');
  m.term(`malformed: ${message}`);
}

export interface BoundedConsumer {
  stop(): Promise<void>;
  /** Settles when pulling ends: resolves when the messages closed, rejects with the reason the pull failed. */
  readonly done: Promise<void>;
}

export function processConcurrently(
  messages: ConsumerMessages,
  concurrency: number,
  handle: (m: JsMsg) => Promise<void>,
): BoundedConsumer {
  const inflight = new Set<Promise<void>>();
  const done = (async () => {
    for await (const m of messages) {
      while (inflight.size >= concurrency) await Promise.race(inflight);
      const p: Promise<void> = handle(m).finally(() => inflight.delete(p));
      inflight.add(p);
    }
  })();
  return {
    done,
    async stop() {
      await messages.close();
      // A failure of the pull is the supervisor's to report (through `done`); stopping only waits for the end.
      await Promise.allSettled([done]);
      await Promise.all(inflight);
    },
  };
}

/**
 * Consumes under supervision: `open()` ensures the durable consumer and starts consuming (pass
 * `abort_on_missing_resource: true` so a deleted consumer ends the loop instead of waiting forever); each time the
 * loop ends it is opened again after the supervisor's backoff. Handlers of a failed run finish on their own
 * (their acks go to the server like any other; unacked messages return after ack_wait).
 */
export function consumeSupervised(
  loops: LoopSupervisor,
  name: string,
  open: () => Promise<ConsumerMessages>,
  concurrency: number,
  handle: (m: JsMsg) => Promise<void>,
): { started: Promise<void>; stop(): Promise<void> } {
  const runs = new Set<BoundedConsumer>();
  const loop = loops.run(name, async (up, signal) => {
    const messages = await open();
    const run = processConcurrently(messages, concurrency, handle);
    runs.add(run);
    const onAbort = () => void messages.close();
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    up();
    try {
      await run.done;
    } finally {
      signal.removeEventListener('abort', onAbort);
      // Keep the handlers of an ended run reachable for stop(), which waits for them.
      if (!signal.aborted) void run.stop().then(() => runs.delete(run));
    }
  });
  return {
    started: loop.started,
    async stop() {
      await loop.stop();
      await Promise.all([...runs].map((r) => r.stop()));
    },
  };
}
