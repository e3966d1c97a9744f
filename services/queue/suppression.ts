/**
 * The suppression list: recipients that hard-bounced as unknown (see bounce-codes.ts) are not tried again for a
 * while. Stored in KV `suppression` under sha256(lower(address)) so the bucket holds no addresses in clear.
 * The bucket's own max age is a ceiling; the entry carries its own expiry so the TTL is a queue setting.
 */
import { createHash } from 'node:crypto';
import type { KV } from '@nats-io/kv';

/** The KV key of an address. */
export function suppressionKey(address: string): string {
  return createHash('sha256').update(address.toLowerCase()).digest('hex');
}

interface SuppressionEntry {
  until: string;
  reason: string;
  response: string;
}

/** Reads and writes suppression entries. */
export class SuppressionList {
  #kv: KV;
  #ttlMs: number;

  constructor(kv: KV, ttlMs: number) {
    this.#kv = kv;
    this.#ttlMs = ttlMs;
  }

  /** The entry for an address when it is suppressed now. */
  async lookup(address: string): Promise<SuppressionEntry | undefined> {
    const e = await this.#kv.get(suppressionKey(address));
    if (e?.operation !== 'PUT' || e.length === 0) return undefined;
    const entry = e.json<SuppressionEntry>();
    return Date.parse(entry.until) > Date.now() ? entry : undefined;
  }

  /** The subset of addresses suppressed now. */
  async suppressed(addresses: string[]): Promise<Set<string>> {
    const hits = await Promise.all(addresses.map(async (a) => ((await this.lookup(a)) ? a : undefined)));
    return new Set(hits.filter((a): a is string => a !== undefined));
  }

  /** Suppresses an address for the configured TTL (a later hard bounce extends it). */
  async add(address: string, reason: string, response: string): Promise<void> {
    const entry: SuppressionEntry = {
      until: new Date(Date.now() + this.#ttlMs).toISOString(),
      reason,
      response,
    };
    await this.#kv.put(suppressionKey(address), JSON.stringify(entry));
  }
}
