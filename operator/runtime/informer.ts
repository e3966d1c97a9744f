/**
 * List + watch with an object cache (a reflector/informer), written on client-node's `Watch` because its own
 * informer stops for good on a watch error. This one never gives up while started:
 * - list, then watch from the list's resourceVersion with `allowWatchBookmarks` so quiet resources still
 *   advance the resourceVersion;
 * - `410 Gone` (an ERROR event or status) → relist; the relist is diffed against the cache, so deletes that
 *   happened while disconnected are still reported;
 * - watch errors and closed connections (API server restart) → re-watch from the last resourceVersion after a
 *   bounded backoff;
 * - silent stalls: client-node 2.0.1's Watch aborts a request after `requestTimeoutMs` without data (30 s by
 *   default). We set it to `stallTimeoutMs` and ask the server to end each watch earlier (`timeoutSeconds`), so a
 *   healthy watch is always closed by the server first and only a stalled one hits the client timeout.
 */
import { EventEmitter } from 'node:events';
import { type KubeConfig, type KubernetesObject, Watch } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { describeError } from './api-errors.ts';
import { InterruptibleSleep } from './interruptible-sleep.ts';

export interface ListResult<T> {
  items: T[];
  metadata?: { resourceVersion?: string };
}

export interface InformerOptions<T> {
  kubeConfig: KubeConfig;
  /** Collection path for watches, e.g. `/apis/postern.dev/v1alpha1/maildomains`. */
  path: string;
  list: () => Promise<ListResult<T>>;
  logger: Logger;
  /** No event or bookmark for this long → restart the watch (default 90 s). */
  stallTimeoutMs?: number;
  /** Upper bound of the server-side watch timeout; the actual value is randomised in [half, full] (60 s). */
  watchTimeoutSeconds?: number;
  /** Longest wait between failed attempts (default 5 s). */
  maxRetryDelayMs?: number;
}

type Events<T> = { add: [T]; update: [T, T]; delete: [T]; synced: [] };

/** `namespace/name` (or `name` for cluster-scoped objects): the work-queue key. */
export function objectKey(obj: KubernetesObject): string {
  const { namespace, name } = obj.metadata ?? {};
  return namespace ? `${namespace}/${name}` : `${name}`;
}

export class Informer<T extends KubernetesObject> extends EventEmitter<Events<T>> {
  readonly #opts: InformerOptions<T>;
  readonly #cache = new Map<string, T>();
  #resourceVersion = '';
  #running = false;
  #abort?: AbortController;
  readonly #pause = new InterruptibleSleep();
  #loop?: Promise<void>;
  #synced = false;
  /** Once stopped, an informer never starts again (a stop may race a pending start). */
  #stopped = false;

  constructor(opts: InformerOptions<T>) {
    super();
    this.#opts = opts;
  }

  get(key: string): T | undefined {
    return this.#cache.get(key);
  }

  list(): T[] {
    return [...this.#cache.values()];
  }

  hasSynced(): boolean {
    return this.#synced;
  }

  /** Starts the list/watch loop; resolves after the first successful list. */
  async start(): Promise<void> {
    if (this.#running || this.#stopped) return;
    this.#running = true;
    const synced = new Promise<void>((res) => this.once('synced', res));
    this.#loop = this.#run();
    await Promise.race([synced, this.#loop]);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#running = false;
    this.#abort?.abort();
    this.#pause.wake();
    await this.#loop;
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (this.#running) {
      try {
        await this.#relist();
        failures = 0;
      } catch (err) {
        this.#opts.logger.warn({ path: this.#opts.path, err: describeError(err) }, 'list failed');
        await this.#pause.sleep(this.#retryDelay(++failures));
        continue;
      }
      // Watch until the resourceVersion expires (410) or we stop; each pass restarts from the last version.
      while (this.#running) {
        const outcome = await this.#watchOnce();
        if (outcome === 'gone') {
          this.#opts.logger.info({ path: this.#opts.path }, 'resourceVersion expired (410 Gone); relisting');
          break;
        }
        if (outcome === 'error') await this.#pause.sleep(this.#retryDelay(++failures));
        else failures = 0;
      }
    }
  }

  #retryDelay(failures: number): number {
    return Math.min(this.#opts.maxRetryDelayMs ?? 5000, 100 * 2 ** Math.min(failures, 10));
  }

  async #relist(): Promise<void> {
    const res = await this.#opts.list();
    const seen = new Set<string>();
    for (const obj of res.items) {
      const key = objectKey(obj);
      seen.add(key);
      const old = this.#cache.get(key);
      this.#cache.set(key, obj);
      if (!old) this.emit('add', obj);
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) this.emit('update', old, obj);
    }
    for (const [key, old] of this.#cache) {
      if (!seen.has(key)) {
        this.#cache.delete(key);
        this.emit('delete', old);
      }
    }
    this.#resourceVersion = res.metadata?.resourceVersion ?? '';
    if (!this.#synced) {
      this.#synced = true;
      this.emit('synced');
    }
  }

  /** One watch request; resolves how it ended. */
  #watchOnce(): Promise<'closed' | 'gone' | 'error'> {
    return new Promise((resolve) => {
      const watch = new Watch(this.#opts.kubeConfig);
      // `requestTimeoutMs` is private in the typings but is the inactivity timeout watch.js resets on every
      // chunk (client-node 2.0.1): exactly the stall detector we need, so we set it rather than wrap the stream.
      (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs =
        this.#opts.stallTimeoutMs ?? 90_000;
      const max = this.#opts.watchTimeoutSeconds ?? 60;
      let gone = false;
      const onEvent = (type: string, obj: T & { code?: number }) => {
        if (type === 'ERROR') {
          if (obj.code === 410) gone = true;
          else this.#opts.logger.warn({ path: this.#opts.path, status: obj }, 'watch error event');
          this.#abort?.abort();
          return;
        }
        const rv = obj.metadata?.resourceVersion;
        if (rv) this.#resourceVersion = rv;
        if (type === 'BOOKMARK') return;
        const key = objectKey(obj);
        const old = this.#cache.get(key);
        if (type === 'DELETED') {
          this.#cache.delete(key);
          this.emit('delete', obj);
        } else {
          this.#cache.set(key, obj);
          if (old) this.emit('update', old, obj);
          else this.emit('add', obj);
        }
      };
      const onDone = (err: unknown) => {
        if (gone || (err as { statusCode?: number } | null)?.statusCode === 410) return resolve('gone');
        if (err && this.#running) {
          this.#opts.logger.info({ path: this.#opts.path, err: describeError(err) }, 'watch ended; resuming');
          return resolve('error');
        }
        resolve('closed');
      };
      watch
        .watch(
          this.#opts.path,
          {
            resourceVersion: this.#resourceVersion,
            allowWatchBookmarks: true,
            timeoutSeconds: Math.ceil(max / 2 + (Math.random() * max) / 2),
          },
          onEvent,
          onDone,
        )
        .then(
          (controller) => {
            this.#abort = controller;
            if (!this.#running) controller.abort();
          },
          (err) => onDone(err ?? new Error('watch failed')),
        );
    });
  }
}
