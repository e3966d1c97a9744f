/**
 * Start-up steps that depend on NATS (connect, stream/KV set-up, first config load) are retried with a capped
 * exponential backoff instead of failing the process: on a fresh install every pod starts together with NATS,
 * and exiting would only trade the wait for kubelet's CrashLoopBackOff (which grows to 5 minutes).
 */
import type { Logger } from './telemetry.ts';

export interface RetryOptions {
  logger: Logger;
  /** Aborting stops waiting: the pending promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** First delay (default 500 ms), doubled after every failure up to `maxDelayMs` (default 5 s). */
  initialDelayMs?: number;
  maxDelayMs?: number;
}

/** Runs `fn` until it resolves, logging every failure with its reason and the delay before the next try. */
export async function retryUntilDone<T>(what: string, fn: () => Promise<T>, o: RetryOptions): Promise<T> {
  const initial = o.initialDelayMs ?? 500;
  const max = o.maxDelayMs ?? 5000;
  for (let attempt = 1; ; attempt++) {
    o.signal?.throwIfAborted();
    try {
      return await fn();
    } catch (err) {
      o.signal?.throwIfAborted();
      const retryInMs = Math.min(max, initial * 2 ** (attempt - 1));
      o.logger.warn(
        { step: what, attempt, retryInMs, err: (err as Error).message },
        `${what} failed; retrying`,
      );
      await sleep(retryInMs, o.signal);
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', done);
      resolve();
    }, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
