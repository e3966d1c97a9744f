/**
 * A durable pull consumer processed by a bounded pool of concurrent handlers. The message is acked only after
 * its handler resolved (i.e. after the handler's own publishes were acknowledged); a failing handler naks
 * with a delay so the message returns later; input that can never be processed is terminated with a log line.
 */
import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { consumeSupervised, setAsideUnreadable } from '../common/consume.ts';
import type { LoopSupervisor } from '../common/supervise.ts';
import type { Logger } from '../common/telemetry.ts';

/** Thrown by a parser: the message is malformed, retrying cannot help. */
export class PoisonMessageError extends Error {}

export interface ConsumerOptions<T> {
  js: JetStreamClient;
  stream: string;
  durable: string;
  log: Logger;
  /** Pull batch size (messages buffered client-side). */
  maxMessages: number;
  /** Handlers running at once. */
  concurrency: number;
  /** Delay before a failed message is redelivered. */
  retryDelayMs: number;
  /** Reads a message's contract (and a body attached to it, body-wire.ts). */
  parse: (m: JsMsg) => T;
  /** An id for log lines (the message id). */
  idOf: (item: T) => string;
  handle: (item: T) => Promise<void>;
  /** Restarts the consume loop when it fails; `ensure` re-creates a deleted consumer first. */
  loops: LoopSupervisor;
  ensure: () => Promise<void>;
}

export interface RunningConsumer {
  /** Stops pulling, waits for in-flight handlers. */
  stop(): Promise<void>;
}

export async function runConsumer<T>(opts: ConsumerOptions<T>): Promise<RunningConsumer> {
  const open = async () => {
    await opts.ensure();
    const consumer = await opts.js.consumers.get(opts.stream, opts.durable);
    // A deleted consumer ends the loop (the supervisor re-creates it) instead of being waited for forever.
    return consumer.consume({ max_messages: opts.maxMessages, abort_on_missing_resource: true });
  };

  const process = async (m: JsMsg) => {
    let item: T;
    try {
      item = opts.parse(m);
    } catch (err) {
      setAsideUnreadable(m, err, opts.log, { stream: opts.stream });
      return;
    }
    try {
      await opts.handle(item);
      m.ack();
    } catch (err) {
      opts.log.error(
        { messageId: opts.idOf(item), stream: opts.stream, err: (err as Error).message },
        'processing failed; will retry',
      );
      m.nak(opts.retryDelayMs);
    }
  };

  const running = consumeSupervised(opts.loops, opts.durable, open, opts.concurrency, process);
  await running.started;
  return running;
}
