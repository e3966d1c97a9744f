/**
 * The controller work queue (client-go's workqueue semantics, which controller-runtime builds on):
 * - keys (`namespace/name`) are merged: adding a key that is already waiting does nothing;
 * - a key is never handed out twice at once: adding a key that is being processed marks it dirty, and it is
 *   queued again when its worker calls `done()`;
 * - per-key exponential backoff on failure (`addRateLimited`: base · 2^failures, capped), reset by `forget()`;
 * - delayed adds (`addAfter`) for requeue-after; the earliest pending delay wins.
 * Pure logic with an injectable clock, so its unit tests need no real time.
 */

/** Timer functions the queue uses; tests pass a manual clock. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    // A pending requeue must not keep a stopping process alive.
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface WorkQueueOptions {
  /** First retry delay after an error (controller-runtime: 5 ms). */
  baseDelayMs?: number;
  /** Longest retry delay (controller-runtime: 1000 s). */
  maxDelayMs?: number;
  clock?: Clock;
  /** Called whenever the number of waiting keys changes (for the workqueue depth gauge). */
  onDepth?: (depth: number) => void;
}

export class WorkQueue {
  readonly #queue: string[] = [];
  readonly #queued = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #delayed = new Map<string, { at: number; handle: unknown }>();
  readonly #waiters: ((key: string | undefined) => void)[] = [];
  readonly #base: number;
  readonly #max: number;
  readonly #clock: Clock;
  readonly #onDepth: (depth: number) => void;
  #shutDown = false;

  constructor(opts: WorkQueueOptions = {}) {
    this.#base = opts.baseDelayMs ?? 5;
    this.#max = opts.maxDelayMs ?? 1_000_000;
    this.#clock = opts.clock ?? realClock;
    this.#onDepth = opts.onDepth ?? (() => {});
  }

  /** Queues a key now (merged with a waiting copy; deferred until done() while it is being processed). */
  add(key: string): void {
    if (this.#shutDown) return;
    this.#cancelDelay(key);
    if (this.#processing.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    const waiter = this.#waiters.shift();
    if (waiter) {
      this.#processing.add(key);
      waiter(key);
      return;
    }
    this.#queued.add(key);
    this.#queue.push(key);
    this.#onDepth(this.#queue.length);
  }

  /** Queues a key after `ms`; an earlier pending delay for the same key is kept. */
  addAfter(key: string, ms: number): void {
    if (this.#shutDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const at = this.#clock.now() + ms;
    const pending = this.#delayed.get(key);
    if (pending && pending.at <= at) return;
    if (pending) this.#clock.clearTimeout(pending.handle);
    const handle = this.#clock.setTimeout(() => {
      this.#delayed.delete(key);
      this.add(key);
    }, ms);
    this.#delayed.set(key, { at, handle });
  }

  /** Queues a key after its backoff delay and counts the failure. Returns the delay used. */
  addRateLimited(key: string): number {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    const delay = Math.min(this.#max, this.#base * 2 ** Math.min(failures, 60));
    this.addAfter(key, delay);
    return delay;
  }

  /** Resets a key's backoff (after a successful reconcile). */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  /** Failures counted for a key since its last forget(). */
  numRequeues(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** The next key to process; waits for one. Resolves undefined once the queue is shut down. */
  get(): Promise<string | undefined> {
    const key = this.#queue.shift();
    if (key !== undefined) {
      this.#queued.delete(key);
      this.#processing.add(key);
      this.#onDepth(this.#queue.length);
      return Promise.resolve(key);
    }
    if (this.#shutDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Marks a key's processing finished; a key added meanwhile is queued again now. */
  done(key: string): void {
    this.#processing.delete(key);
    if (this.#dirty.delete(key)) this.add(key);
  }

  /** Keys waiting (not counting those being processed or delayed). */
  len(): number {
    return this.#queue.length;
  }

  isProcessing(key: string): boolean {
    return this.#processing.has(key);
  }

  /** Stops handing out keys: waiting get() calls resolve undefined; pending delays are cancelled. */
  shutDown(): void {
    this.#shutDown = true;
    for (const { handle } of this.#delayed.values()) this.#clock.clearTimeout(handle);
    this.#delayed.clear();
    for (const w of this.#waiters.splice(0)) w(undefined);
  }

  #cancelDelay(key: string): void {
    const pending = this.#delayed.get(key);
    if (pending) {
      this.#clock.clearTimeout(pending.handle);
      this.#delayed.delete(key);
    }
  }
}
