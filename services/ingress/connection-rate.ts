/**
 * Connections per client address per minute (Postfix anvil's smtpd_client_connection_rate_limit), across every
 * ingress replica: the same NATS counters as the message rate (client-rate.ts, stream CLIENT_RATE) under the key
 * `conn:<address>`, judged by the same sliding one-minute window. A connection over the limit gets
 * `421 4.7.0` at connect; a refused one is given back, so what the limit counts is connections admitted.
 *
 * Clients in a RelayPolicy's networks are exempt, like Postfix's default smtpd_client_event_limit_exceptions
 * ($mynetworks): the operator's own relay clients may connect as often as they need. 0 switches the limit off
 * (Postfix's default) and costs nothing.
 */
import type { ConfigSnapshot } from '../common/config/resolved.ts';
import type { ClientRateLimiter } from './client-rate.ts';
import { clientPolicy } from './recipient-policy.ts';

export type ConnectionRateDecision =
  | { allowed: true }
  | { allowed: false; count: number; limit: number; source: 'cluster' | 'local' };

const ALLOWED: ConnectionRateDecision = { allowed: true };

export class ConnectionRate {
  readonly #rates: ClientRateLimiter;
  readonly #limit: number;
  readonly #snapshot: () => ConfigSnapshot;

  constructor(rates: ClientRateLimiter, limit: number, snapshot: () => ConfigSnapshot) {
    this.#rates = rates;
    this.#limit = limit;
    this.#snapshot = snapshot;
  }

  /** Counts one connection from `address` (the real client, after any PROXY header) and says whether it may stay. */
  async admit(address: string): Promise<ConnectionRateDecision> {
    if (this.#limit <= 0) return ALLOWED;
    // At connect nobody is authenticated: a policy the client belongs to can only be one whose networks hold it.
    if (clientPolicy({ address, tls: false }, this.#snapshot())) return ALLOWED;
    const r = await this.#rates.reserve(`conn:${address}`, this.#limit);
    if (!r.allowed) return { allowed: false, count: r.count, limit: this.#limit, source: r.source };
    r.commit();
    return ALLOWED;
  }
}
