/**
 * A controller: informers feed keys into a work queue; a bounded number of workers run the reconciler, one
 * key at a time per key (the queue guarantees it). Level-triggered: the reconciler gets only the key and reads
 * the current state from the cache, so merged or missed events never matter.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { OperatorMetrics } from '../metrics.ts';
import { describeError } from './api-errors.ts';
import { type Informer, objectKey } from './informer.ts';
import { WorkQueue, type WorkQueueOptions } from './work-queue.ts';

export interface ReconcileResult {
  /** Reconcile this key again after this long even without a change (e.g. waiting for something). */
  requeueAfterMs?: number;
}

/** Reconciles one `namespace/name`; throwing retries the key with exponential backoff. */
export type Reconcile = (key: string) => Promise<ReconcileResult | undefined>;

export interface ControllerOptions {
  kind: string;
  reconcile: Reconcile;
  logger: Logger;
  metrics: OperatorMetrics;
  /** Keys reconciled in parallel (different keys only). */
  concurrency?: number;
  queue?: Omit<WorkQueueOptions, 'onDepth'>;
}

export class Controller {
  readonly queue: WorkQueue;
  readonly #opts: ControllerOptions;
  #workers: Promise<void>[] = [];

  constructor(opts: ControllerOptions) {
    this.#opts = opts;
    this.queue = new WorkQueue({
      ...opts.queue,
      onDepth: (d) => opts.metrics.workqueueDepth.set({ kind: opts.kind }, d),
    });
  }

  /**
   * Enqueues keys for every change the informer sees. `map` turns an object into the keys to reconcile
   * (default: the object's own key); e.g. a Secret maps to the RelayPolicies that reference it.
   */
  watch<T extends KubernetesObject>(
    informer: Informer<T>,
    map: (obj: T) => string[] = (o) => [objectKey(o)],
  ) {
    const enqueue = (obj: T) => {
      for (const key of map(obj)) this.queue.add(key);
    };
    informer.on('add', enqueue);
    informer.on('update', (old, obj) => {
      enqueue(old);
      enqueue(obj);
    });
    informer.on('delete', enqueue);
    for (const obj of informer.list()) enqueue(obj);
  }

  start(): void {
    // Both outcomes exist from the start (at 0), so "reconcile errors / s" is a real 0, not an empty query.
    for (const result of ['success', 'error'])
      this.#opts.metrics.reconcileTotal.inc({ kind: this.#opts.kind, result }, 0);
    const n = this.#opts.concurrency ?? 2;
    for (let i = 0; i < n; i++) this.#workers.push(this.#work());
  }

  /** Stops handing out keys and waits for reconciles in flight to finish. */
  async stop(): Promise<void> {
    this.queue.shutDown();
    await Promise.all(this.#workers);
    this.#workers = [];
  }

  async #work(): Promise<void> {
    const { kind, reconcile, logger, metrics } = this.#opts;
    for (let key = await this.queue.get(); key !== undefined; key = await this.queue.get()) {
      const end = metrics.reconcileDuration.startTimer({ kind });
      try {
        const result = await reconcile(key);
        metrics.reconcileTotal.inc({ kind, result: 'success' });
        this.queue.forget(key);
        if (result?.requeueAfterMs) this.queue.addAfter(key, result.requeueAfterMs);
      } catch (err) {
        metrics.reconcileTotal.inc({ kind, result: 'error' });
        const delayMs = this.queue.addRateLimited(key);
        logger.warn({ kind, key, err: describeError(err), retryInMs: delayMs }, 'reconcile failed');
      } finally {
        end();
        this.queue.done(key);
      }
    }
  }
}
