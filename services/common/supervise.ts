/**
 * Supervision of a service's long-lived loops (JetStream consume loops, KV watches, pollers): a loop that ends or
 * throws while the service is running is logged with its reason, counted in `postern_loop_restarts_total{loop}`,
 * marked down (`postern_loop_up{loop}` 0, /readyz 503 through `healthy()`) and started again after a capped
 * exponential backoff (the same one as start-up, services/common/retry.ts). It is up again once the new run says
 * it is established (`up()`), e.g. the consumer is pulling or the watch has replayed the bucket.
 * Like a pod's restartPolicy, but for one loop: the rest of the process keeps serving meanwhile.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from './telemetry.ts';

/** One run of a loop: resolves or rejects when the loop ends; calls `up()` once it is established. */
export type LoopBody = (up: () => void, signal: AbortSignal) => Promise<void>;

export interface SupervisedLoop {
  /** Resolves on the first `up()`; rejects if the loop is stopped before that. */
  readonly started: Promise<void>;
  /** Stops restarting and aborts the current run's signal; resolves when the current run has ended. */
  stop(): Promise<void>;
}

export interface LoopSupervisorOptions {
  logger: Logger;
  registry: Registry;
  /** True once the process is shutting down (NATS connection closed): a loop ending then is not a failure. */
  closing?: () => boolean;
  /** First restart delay (default 500 ms), doubled per consecutive failure up to `maxDelayMs` (default 10 s). */
  initialDelayMs?: number;
  maxDelayMs?: number;
}

/** Waits `ms`, or less if `signal` aborts first (never rejects): the wait between two runs of a loop. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

function metric<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export class LoopSupervisor {
  readonly #o: LoopSupervisorOptions;
  readonly #down = new Set<string>();
  readonly #restarts: Counter<'loop'>;
  readonly #up: Gauge<'loop'>;

  constructor(o: LoopSupervisorOptions) {
    this.#o = o;
    const registers = [o.registry];
    this.#restarts = metric(
      o.registry,
      'postern_loop_restarts_total',
      () =>
        new Counter({
          name: 'postern_loop_restarts_total',
          help: 'Long-lived loops (consume, watch, poll) restarted after they failed or ended, by loop',
          labelNames: ['loop'],
          registers,
        }),
    );
    this.#up = metric(
      o.registry,
      'postern_loop_up',
      () =>
        new Gauge({
          name: 'postern_loop_up',
          help: '1 while the loop runs, 0 while it is broken and waiting to be restarted',
          labelNames: ['loop'],
          registers,
        }),
    );
  }

  /** False while any loop is broken (waiting for or in a restart): /readyz answers 503 then. */
  healthy(): boolean {
    return this.#down.size === 0;
  }

  /** Names of the loops that are down. */
  broken(): string[] {
    return [...this.#down];
  }

  /** Runs `body` until `stop()`, restarting it whenever it ends or throws. */
  run(name: string, body: LoopBody): SupervisedLoop {
    const abort = new AbortController();
    const { logger } = this.#o;
    const initial = this.#o.initialDelayMs ?? 500;
    const max = this.#o.maxDelayMs ?? 10_000;
    let markStarted!: () => void;
    let failStart!: (err: Error) => void;
    const started = new Promise<void>((res, rej) => {
      markStarted = res;
      failStart = rej;
    });
    // A caller that never awaits `started` (it stopped first) must not see an unhandled rejection.
    started.catch(() => undefined);
    this.#restarts.labels({ loop: name }).inc(0);
    this.#down.add(name);
    this.#up.set({ loop: name }, 0);
    let failures = 0;
    const finished = (async () => {
      while (!abort.signal.aborted) {
        let reason: string;
        try {
          await body(() => {
            failures = 0;
            this.#down.delete(name);
            this.#up.set({ loop: name }, 1);
            markStarted();
          }, abort.signal);
          reason = 'loop ended';
        } catch (err) {
          reason = (err as Error).message;
        }
        if (abort.signal.aborted || this.#o.closing?.()) break;
        failures++;
        const retryInMs = Math.min(max, initial * 2 ** (failures - 1));
        this.#down.add(name);
        this.#up.set({ loop: name }, 0);
        this.#restarts.inc({ loop: name });
        logger.warn({ loop: name, err: reason, failures, retryInMs }, `${name} loop failed; restarting`);
        await pause(retryInMs, abort.signal);
      }
      this.#down.delete(name);
      failStart(new Error(`${name} stopped before it was up`));
    })();
    return {
      started,
      async stop() {
        abort.abort(new Error(`${name} stopped`));
        await finished;
      },
    };
  }
}
