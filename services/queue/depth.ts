/**
 * Queue depth metrics polled from JetStream (DESIGN §6): per consumer num_pending + num_ack_pending — the
 * number the delivery autoscaler also uses — and the age of each stream's oldest stored message.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import { CONSUMERS, STREAMS } from '../common/nats.ts';
import type { Logger } from '../common/telemetry.ts';
import type { QueueMetrics } from './metrics.ts';

/** Consumers whose depth is exported: the queue's own two and every delivery pool on OUTBOUND. */
async function watchedConsumers(jsm: JetStreamManager): Promise<[string, string][]> {
  const list: [string, string][] = [
    [STREAMS.submit, CONSUMERS.queueSubmit],
    [STREAMS.results, CONSUMERS.queueResults],
  ];
  for await (const ci of jsm.consumers.list(STREAMS.outbound)) {
    if (ci.name.startsWith(CONSUMERS.delivery(''))) list.push([STREAMS.outbound, ci.name]);
  }
  return list;
}

/** One poll: updates the depth and oldest-age gauges. */
export async function pollDepth(
  jsm: JetStreamManager,
  metrics: QueueMetrics,
  now = Date.now(),
): Promise<void> {
  for (const [stream, consumer] of await watchedConsumers(jsm)) {
    try {
      const ci = await jsm.consumers.info(stream, consumer);
      metrics.depth.set({ stream, consumer }, ci.num_pending + ci.num_ack_pending);
    } catch {
      metrics.depth.remove({ stream, consumer });
    }
  }
  for (const stream of [STREAMS.submit, STREAMS.outbound, STREAMS.results]) {
    const si = await jsm.streams.info(stream);
    // An empty stream reports first_ts as the zero time (0001-01-01).
    const first = si.state.messages > 0 ? Date.parse(si.state.first_ts) : Number.NaN;
    metrics.oldestAge.set({ stream }, Number.isFinite(first) ? Math.max(0, (now - first) / 1000) : 0);
  }
}

/** Polls every `intervalMs` until stopped; a failed poll is logged and retried on the next tick. */
export function startDepthPoller(
  jsm: JetStreamManager,
  metrics: QueueMetrics,
  log: Logger,
  intervalMs: number,
): { stop(): Promise<void> } {
  let running: Promise<void> = Promise.resolve();
  const tick = () => {
    running = pollDepth(jsm, metrics).catch((err) =>
      log.warn({ err: (err as Error).message }, 'queue depth poll failed'),
    );
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
