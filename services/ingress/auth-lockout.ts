/**
 * AUTH failures per client IP and per user name, held across every ingress replica with the same NATS counters
 * client-rate.ts uses (server ≥ 2.12, ADR-49): one subject per key per fixed lockout window in the AUTH_FAILURES
 * stream; a publish with `Nats-Incr: +1` adds a failure atomically on the stream leader.
 *
 * A key is locked out while its current window or the previous one holds `limit` failures or more: the lockout
 * starts at the failure that reaches the limit and lasts between one and two windows. Before a password is
 * checked the two windows of the IP and of the user are read (direct gets), so a locked-out guesser learns
 * nothing, not even from a right password. Concurrent guesses on several replicas can each pass the check before
 * any of them is counted, so the limit can be overrun by the number of AUTHs in flight at once — bounded by the
 * per-IP connection limit, and each of them is still counted.
 *
 * When NATS does not answer within the timeout, this replica's own counts decide (per-replica precision, like the
 * client rate fallback): neither locking everyone out during a JetStream election nor dropping the limit.
 */
import { createHash } from 'node:crypto';
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers } from '@nats-io/nats-core';
import type { NatsConnection } from '@nats-io/transport-node';
import { STREAMS, SUBJECTS } from '../common/nats.ts';

export interface AuthLockoutOptions {
  perIp: number;
  perUser: number;
  windowSeconds: number;
  timeoutMs: number;
  /** The counters could not be reached; this replica's own counts decided. */
  onFallback?: (err: Error) => void;
  now?: () => number;
}

type Kind = 'ip' | 'user';

const hash = (key: string) => createHash('sha256').update(key).digest('hex').slice(0, 32);

export class AuthLockout {
  readonly #js: JetStreamClient;
  readonly #jsm: Promise<JetStreamManager>;
  readonly #opts: AuthLockoutOptions;
  readonly #now: () => number;
  /** Fallback counts: `<kind>:<window>:<key>` → failures seen by this replica. */
  readonly #local = new Map<string, number>();

  constructor(nc: NatsConnection, opts: AuthLockoutOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#js = jetstream(nc, { timeout: opts.timeoutMs });
    this.#jsm = jetstreamManager(nc, { timeout: opts.timeoutMs, checkAPI: false });
  }

  /** Which key, if any, is locked out for an AUTH from `ip` as `user`. */
  async lockedOut(ip: string, user: string): Promise<Kind | undefined> {
    const window = this.#window();
    const checks: [Kind, string, number][] = [
      ['ip', ip, this.#opts.perIp],
      ['user', user, this.#opts.perUser],
    ];
    for (const [kind, key, limit] of checks) {
      const counts = await Promise.all([this.#count(kind, key, window), this.#count(kind, key, window - 1)]);
      if (counts.some((c) => c >= limit)) return kind;
    }
    return undefined;
  }

  /** Counts one failed AUTH against the IP and the user. */
  async failed(ip: string, user: string): Promise<void> {
    const window = this.#window();
    await Promise.all([this.#add('ip', ip, window), this.#add('user', user, window)]);
  }

  /** Forgets fallback counts of windows that can no longer lock anyone out. */
  sweep(): void {
    const window = this.#window();
    for (const k of this.#local.keys()) if (Number(k.split(':')[1]) < window - 1) this.#local.delete(k);
  }

  #window(): number {
    return Math.floor(this.#now() / (this.#opts.windowSeconds * 1000));
  }

  #subject(kind: Kind, key: string, window: number): string {
    return SUBJECTS.authFailure(kind, this.#opts.windowSeconds, window, hash(key));
  }

  #localKey(kind: Kind, key: string, window: number): string {
    return `${kind}:${window}:${key}`;
  }

  async #count(kind: Kind, key: string, window: number): Promise<number> {
    try {
      const jsm = await this.#jsm;
      const msg = await jsm.direct.getMessage(STREAMS.authFailures, {
        last_by_subj: this.#subject(kind, key, window),
      });
      const cluster = msg ? Number(msg.json<{ val?: string }>().val ?? 0) || 0 : 0;
      // A failure counted locally while NATS was away still counts when it comes back.
      return Math.max(cluster, this.#local.get(this.#localKey(kind, key, window)) ?? 0);
    } catch (err) {
      this.#opts.onFallback?.(err as Error);
      return this.#local.get(this.#localKey(kind, key, window)) ?? 0;
    }
  }

  async #add(kind: Kind, key: string, window: number): Promise<void> {
    const local = this.#localKey(kind, key, window);
    this.#local.set(local, (this.#local.get(local) ?? 0) + 1);
    const h = headers();
    h.set('Nats-Incr', '+1');
    try {
      await this.#js.publish(this.#subject(kind, key, window), undefined, { headers: h });
    } catch (err) {
      this.#opts.onFallback?.(err as Error);
    }
  }
}
