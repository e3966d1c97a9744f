/**
 * Connection leases shared by every delivery process: a site with `maxConnections: N` has N lease keys
 * `<site key>.c0 … c<N-1>` in the `site-leases` bucket. A session may exist only while its process holds one:
 * taken with a KV create (succeeds only when the key is absent or deleted — the compare-and-set that makes N a
 * hard bound), refreshed every TTL/3 by an update on the revision it holds, deleted when the session closes.
 * The bucket's TTL (stream max_age) removes a key nobody refreshed: a dead process's leases expire by themselves
 * after at most one TTL.
 */
import type { KV } from '@nats-io/kv';
import { isCasConflict } from '../../common/sites.ts';
import type { Logger } from '../../common/telemetry.ts';

export interface Lease {
  key: string;
  revision: number;
  /** Set when a refresh found the lease taken over (this process stalled longer than the TTL). */
  lost: boolean;
}

/** Slots tried per acquire: a site near its limit may be seen full early, never over it. */
const MAX_PROBES = 16;

export class ConnectionLeases {
  #kv: KV;
  #owner: string;
  #held = new Set<Lease>();
  #timer: NodeJS.Timeout;
  #log: Logger;

  constructor(kv: KV, owner: string, ttlMs: number, log: Logger) {
    this.#kv = kv;
    this.#owner = owner;
    this.#log = log;
    this.#timer = setInterval(() => void this.#refresh(), Math.max(500, Math.floor(ttlMs / 3)));
    this.#timer.unref();
  }

  get held(): number {
    return this.#held.size;
  }

  /** One of the site's `max` leases, or undefined when all are held (by any process). */
  async acquire(siteKey: string, max: number): Promise<Lease | undefined> {
    const start = Math.floor(Math.random() * max);
    for (let i = 0; i < Math.min(max, MAX_PROBES); i++) {
      const key = `${siteKey}.c${(start + i) % max}`;
      try {
        const revision = await this.#kv.create(key, this.#owner);
        const lease = { key, revision, lost: false };
        this.#held.add(lease);
        return lease;
      } catch (err) {
        if (!isCasConflict(err)) throw err;
      }
    }
    return undefined;
  }

  async release(lease: Lease): Promise<void> {
    if (!this.#held.delete(lease) || lease.lost) return;
    try {
      await this.#kv.delete(lease.key, { previousSeq: lease.revision });
    } catch (err) {
      // Taken over after a stall, or NATS unreachable: the TTL removes it either way.
      if (!isCasConflict(err))
        this.#log.warn({ lease: lease.key, err: (err as Error).message }, 'lease release failed');
    }
  }

  async #refresh(): Promise<void> {
    for (const lease of [...this.#held]) {
      try {
        lease.revision = await this.#kv.update(lease.key, this.#owner, lease.revision);
      } catch (err) {
        if (isCasConflict(err)) {
          lease.lost = true;
          this.#held.delete(lease);
          this.#log.warn(
            { lease: lease.key },
            'connection lease lost (expired while held); closing the session',
          );
        } else {
          this.#log.warn({ lease: lease.key, err: (err as Error).message }, 'lease refresh failed');
        }
      }
    }
  }

  /** Stops refreshing; the caller releases what it still holds. */
  close(): void {
    clearInterval(this.#timer);
  }
}
