/**
 * Bounded concurrent processing of a JetStream pull consumer's messages: at most `concurrency` handlers run at
 * once (the rest wait client-side, still unacknowledged, so the server's ack_wait protects them), and `stop()`
 * stops pulling, then waits for the handlers in flight — a graceful drain acks nothing it did not finish.
 */
import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream';

export interface BoundedConsumer {
  stop(): Promise<void>;
}

export function processConcurrently(
  messages: ConsumerMessages,
  concurrency: number,
  handle: (m: JsMsg) => Promise<void>,
): BoundedConsumer {
  const inflight = new Set<Promise<void>>();
  const loop = (async () => {
    for await (const m of messages) {
      while (inflight.size >= concurrency) await Promise.race(inflight);
      const p: Promise<void> = handle(m).finally(() => inflight.delete(p));
      inflight.add(p);
    }
  })();
  return {
    async stop() {
      await messages.close();
      await loop.catch(() => {});
      await Promise.all(inflight);
    },
  };
}
