/**
 * Cluster-wide per-client message rate (RelayPolicy `limits.messagesPerMinute`), shared by every ingress replica
 * through NATS counters (server ≥ 2.12, ADR-49 "distributed counters"): one subject per client per one-minute
 * window in the CLIENT_RATE stream. A publish with `Nats-Incr: +1` makes the server add one and return the new
 * total in the PubAck, so the count a replica sees already includes every message another replica counted before
 * it: no read-modify-write race, no CAS retries, one round trip per message.
 *
 * A message is counted (reserved) when its transaction asks for its first recipient, kept when the message is
 * accepted with 250, and given back (`Nats-Incr: -1`) when the session ends without that. So the counter holds
 * accepted messages plus transactions in flight, and a replica can never admit a message another replica's
 * concurrent transaction already used up. A reservation the limit refuses is given back at once.
 *
 * When NATS does not answer within the timeout the decision falls back to this replica's own window
 * (rate-limit.ts RateWindow): degraded to per-replica precision (N replicas → up to N× the limit), neither an
 * open door nor a refusal of every limited client. docs/ingress.md "Client rate limit" says why.
 */
import { createHash } from 'node:crypto';
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers } from '@nats-io/nats-core';
import type { NatsConnection } from '@nats-io/transport-node';
import { STREAMS, SUBJECTS } from '../common/nats.ts';
import type { Logger } from '../common/telemetry.ts';
import { overLimit, RateWindow, slidingEstimate, windowOf } from './rate-limit.ts';

/** One message counted for one client, until it is accepted (commit) or given back (release). */
export interface Reservation {
  allowed: boolean;
  /** `cluster`: judged by the shared counters; `local`: by this replica's window (counters unreachable). */
  source: 'cluster' | 'local';
  /** Messages counted against the client over the last minute, this one included (sliding estimate). */
  count: number;
  /** The message was accepted (250): it stays counted. */
  commit(): void;
  /** The transaction ended without a 250: the message is no longer counted. Idempotent; never throws. */
  release(): Promise<void>;
}

export interface ClientRateOptions {
  /** How long a counter operation may take before the local fallback decides (default 500 ms). */
  timeoutMs?: number;
  /** Called when the counters could not be reached and the local window decided. */
  onFallback?: (err: Error) => void;
  /** Called when giving a reservation back failed (the counter then over-counts by one for that minute). */
  onReleaseError?: (err: Error) => void;
  now?: () => number;
}

/** Counter subjects carry a hash: user names and addresses may hold characters a subject cannot. */
function clientHash(client: string): string {
  return createHash('sha256').update(client).digest('hex').slice(0, 32);
}

export class ClientRateLimiter {
  readonly #js: JetStreamClient;
  readonly #jsm: Promise<JetStreamManager>;
  readonly #local = new RateWindow();
  /** Final counts of the previous window, fetched once per client per window per replica. */
  readonly #previous = new Map<string, { index: number; count: number }>();
  readonly #timeoutMs: number;
  readonly #opts: ClientRateOptions;
  readonly #now: () => number;

  constructor(nc: NatsConnection, opts: ClientRateOptions = {}) {
    this.#timeoutMs = opts.timeoutMs ?? 500;
    this.#js = jetstream(nc, { timeout: this.#timeoutMs });
    this.#jsm = jetstreamManager(nc, { timeout: this.#timeoutMs, checkAPI: false });
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  /** Counts one message for `client` (`user:<name>` or `ip:<address>`) and says whether `limit` allows it. */
  async reserve(client: string, limit: number): Promise<Reservation> {
    const now = this.#now();
    const { index, elapsed } = windowOf(now);
    const hash = clientHash(client);
    const subject = SUBJECTS.clientRate(index, hash);
    let current: number;
    let previous: number;
    try {
      [current, previous] = await Promise.all([this.#add(subject, 1), this.#previousCount(index - 1, hash)]);
    } catch (err) {
      this.#opts.onFallback?.(err as Error);
      return this.#localReservation(client, limit, now);
    }
    const allowed = !overLimit(previous, current, elapsed, limit);
    let done = false;
    const release = async () => {
      if (done) return;
      done = true;
      try {
        await this.#add(subject, -1);
      } catch (err) {
        this.#opts.onReleaseError?.(err as Error);
      }
    };
    if (!allowed) await release();
    return {
      allowed,
      source: 'cluster',
      count: slidingEstimate(previous, current, elapsed),
      commit: () => {
        done = true;
        this.#local.record(client, this.#now());
      },
      release,
    };
  }

  /** Forgets what idle clients left behind in memory (the counters themselves age out of the stream). */
  sweep(): void {
    const { index } = windowOf(this.#now());
    for (const [hash, entry] of this.#previous) if (entry.index < index - 1) this.#previous.delete(hash);
    this.#local.sweep(this.#now());
  }

  #localReservation(client: string, limit: number, now: number): Reservation {
    const count = this.#local.count(client, now) + 1;
    return {
      allowed: count <= limit,
      source: 'local',
      count,
      commit: () => this.#local.record(client, this.#now()),
      release: async () => {},
    };
  }

  async #add(subject: string, delta: 1 | -1): Promise<number> {
    const h = headers();
    h.set('Nats-Incr', delta > 0 ? '+1' : '-1');
    const ack = (await this.#js.publish(subject, undefined, { headers: h })) as { val?: string };
    const value = Number(ack.val);
    if (!Number.isFinite(value)) throw new Error(`counter ${subject} answered without a value`);
    return value;
  }

  async #previousCount(index: number, hash: string): Promise<number> {
    const cached = this.#previous.get(hash);
    if (cached?.index === index) return cached.count;
    const jsm = await this.#jsm;
    const msg = await jsm.direct.getMessage(STREAMS.clientRate, {
      last_by_subj: SUBJECTS.clientRate(index, hash),
    });
    const count = msg ? Number((msg.json<{ val?: string }>().val ?? 0) || 0) : 0;
    // The previous window is closed: its count only changes by releases of transactions still in flight.
    this.#previous.set(hash, { index, count });
    return count;
  }
}

/**
 * The limiter as ingress and the HTTP API run it: every decision taken per replica counts in `fallbacks`, and one
 * log line per 30 s says the shared counters are unreachable (the metric counts every case).
 */
export function createClientRateLimiter(
  nc: NatsConnection,
  opts: { timeoutMs: number; fallbacks: { inc(): void }; logger: Logger },
): ClientRateLimiter {
  let lastFallbackLog = 0;
  return new ClientRateLimiter(nc, {
    timeoutMs: opts.timeoutMs,
    onFallback: (err) => {
      opts.fallbacks.inc();
      if (Date.now() - lastFallbackLog < 30_000) return;
      lastFallbackLog = Date.now();
      opts.logger.warn(
        { err: err.message },
        'client rate counters unreachable: limiting per replica meanwhile',
      );
    },
    onReleaseError: (err) =>
      opts.logger.warn({ err: err.message }, 'could not give back a client rate reservation'),
  });
}
