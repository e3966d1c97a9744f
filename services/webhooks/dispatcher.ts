/**
 * The webhook dispatcher: follows the KV bucket `webhooks` (services/common/config/webhook.ts) and keeps one
 * running endpoint (endpoint.ts) per document — started when it appears, restarted with the new settings when it
 * changes, stopped and its consumer deleted when it goes. Consumers of endpoints deleted while no dispatcher ran
 * are removed after each full replay of the bucket. A poller exports each endpoint's backlog.
 * Several dispatcher replicas share each endpoint's durable consumer, so they split the work.
 */
import { isDeepStrictEqual } from 'node:util';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm, type KvWatchEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Registry } from 'prom-client';
import { WEBHOOK_BUCKET, type WebhookConfig } from '../common/config/webhook.ts';
import { followBucket } from '../common/kv-watch.ts';
import { isConsumerNotFound, STREAMS } from '../common/nats.ts';
import { type LoopSupervisor, pause } from '../common/supervise.ts';
import type { Logger } from '../common/telemetry.ts';
import { consumerName, type EndpointDeps, type RunningEndpoint, startEndpoint } from './endpoint.ts';
import { createWebhookMetrics } from './metrics.ts';
import type { WebhookSettings } from './settings.ts';

export interface Dispatcher {
  /** Endpoints running now, by `<namespace>/<name>`. */
  endpoints(): string[];
  close(): Promise<void>;
}

export async function startDispatcher(opts: {
  nc: NatsConnection;
  logger: Logger;
  registry: Registry;
  loops: LoopSupervisor;
  settings: WebhookSettings;
}): Promise<Dispatcher> {
  const { nc, logger: log, loops, settings } = opts;
  const jsm = await jetstreamManager(nc);
  const metrics = createWebhookMetrics(opts.registry);
  const deps: EndpointDeps = {
    js: jetstream(nc),
    jsm,
    loops,
    metrics,
    log,
    concurrency: settings.concurrency,
    maxPending: settings.maxPending,
  };
  const running = new Map<string, RunningEndpoint>();
  // Changes are applied one at a time, in the order the watch saw them.
  let chain = Promise.resolve();
  const serial = (fn: () => Promise<void>) => {
    chain = chain.then(fn).catch((err: Error) => log.error({ err: err.message }, 'webhook change failed'));
    return chain;
  };

  const deleteConsumer = async (source: string) => {
    try {
      await jsm.consumers.delete(STREAMS.events, consumerName(source));
    } catch (err) {
      // Another dispatcher replica deleted it first.
      if (!isConsumerNotFound(err)) throw err;
    }
  };

  const apply = async (source: string, cfg: WebhookConfig | undefined) => {
    const current = running.get(source);
    if (cfg && current && isDeepStrictEqual(current.config, cfg)) return;
    if (current) {
      await current.stop();
      running.delete(source);
    }
    if (cfg) {
      running.set(source, startEndpoint(cfg, deps));
      log.info(
        { endpoint: source, url: cfg.url, events: cfg.events },
        current ? 'webhook updated' : 'webhook added',
      );
    } else {
      metrics.pending.remove({ endpoint: source });
      await deleteConsumer(source);
      log.info({ endpoint: source }, 'webhook removed');
    }
  };

  /** After a full replay: the bucket is the whole truth (endpoints and consumers not in it go). */
  const converge = async (docs: Map<string, WebhookConfig>) => {
    for (const source of running.keys()) if (!docs.has(source)) await apply(source, undefined);
    for (const [source, cfg] of docs) await apply(source, cfg);
    // Ready means consuming: events from here on reach every endpoint (their consumers start at "new"). Bounded,
    // so an endpoint whose consumer cannot be made (its loop keeps retrying, /readyz says so) blocks no change.
    const started = Promise.allSettled([...running.values()].map((r) => r.started));
    await Promise.race([started, new Promise((r) => setTimeout(r, 10_000).unref())]);
    const wanted = new Set([...docs.keys()].map(consumerName));
    for await (const c of jsm.consumers.list(STREAMS.events)) {
      const name = c.config.durable_name ?? c.name;
      if (name.startsWith('webhook-') && !wanted.has(name)) {
        await jsm.consumers.delete(STREAMS.events, name).catch((err: Error) => {
          if (!isConsumerNotFound(err)) throw err;
        });
        log.info({ consumer: name }, 'consumer of a removed webhook deleted');
      }
    }
  };

  const parse = (e: KvWatchEntry): WebhookConfig | undefined => {
    if (e.operation !== 'PUT') return undefined;
    try {
      return e.json<WebhookConfig>();
    } catch (err) {
      log.warn({ key: e.key, err: (err as Error).message }, 'webhook document ignored');
      return undefined;
    }
  };

  const watch = loops.run('webhook-config', async (up, signal) => {
    const kv = await new Kvm(nc).create(WEBHOOK_BUCKET, { history: 1 });
    let replay: Map<string, WebhookConfig> | undefined = new Map();
    await followBucket(
      kv,
      () => {
        const docs = replay;
        replay = undefined;
        if (docs) void serial(() => converge(docs)).then(up);
      },
      signal,
      (e) => {
        const cfg = parse(e);
        if (replay) {
          if (cfg) replay.set(cfg.source, cfg);
          return;
        }
        const source = cfg?.source ?? e.key.replace('.', '/');
        void serial(() => apply(source, cfg));
      },
    );
  });

  const poller = loops.run('webhook-pending', async (up, signal) => {
    up();
    while (!signal.aborted) {
      for (const source of running.keys()) {
        try {
          const info = await jsm.consumers.info(STREAMS.events, consumerName(source));
          metrics.pending.set({ endpoint: source }, info.num_pending + info.num_ack_pending);
        } catch (err) {
          // Not created yet (the endpoint is starting) or just removed: the next round asks again.
          if (!isConsumerNotFound(err)) throw err;
        }
      }
      await pause(settings.pendingIntervalMs, signal);
    }
  });

  await watch.started;
  return {
    endpoints: () => [...running.keys()],
    async close() {
      await Promise.all([watch.stop(), poller.stop()]);
      await chain;
      await Promise.all([...running.values()].map((r) => r.stop()));
      running.clear();
    },
  };
}
