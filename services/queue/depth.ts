/**
 * Queue depth metrics polled from JetStream (DESIGN §6): per consumer num_pending + num_ack_pending — the
 * number the delivery autoscaler also uses — and the age of each stream's oldest stored message.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import { CONSUMERS, STREAMS } from '../common/nats.ts';
import { type LoopSupervisor, pause } from '../common/supervise.ts';
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

/**
 * Polls every `intervalMs` until stopped, as a supervised loop: a failed poll ends the run (logged, counted,
 * /readyz 503 while the depth is unknown) and the supervisor starts it again with backoff.
 */
export function startDepthPoller(
  jsm: JetStreamManager,
  metrics: QueueMetrics,
  loops: LoopSupervisor,
  intervalMs: number,
): { stop(): Promise<void> } {
  return loops.run('queue-depth', async (up, signal) => {
    while (!signal.aborted) {
      await pollDepth(jsm, metrics);
      up();
      await pause(intervalMs, signal);
    }
  });
}
