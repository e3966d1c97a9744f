/**
 * The suppression list: recipients that hard-bounced as unknown (see bounce-codes.ts), or that an operator added
 * (manual, complaint, unsubscribe), are not tried again until the entry expires. Stored in KV `suppression` under
 * sha256(lower(address)), so a lookup is one get; the value carries the address itself so the list can be shown
 * and exported (`postern suppression`, admin-suppression.ts). The bucket's max age (30 days,
 * SUPPRESSION_MAX_AGE_MS) is a ceiling; each entry carries its own expiry.
 */
import { createHash } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import { SUPPRESSION_MAX_AGE_MS } from './nats.ts';
import { domainOf } from './router.ts';

/** The KV key of an address. */
export function suppressionKey(address: string): string {
  return createHash('sha256').update(address.toLowerCase()).digest('hex');
}

/** Why an address is suppressed. */
export const SUPPRESSION_REASONS = ['hard-bounce', 'manual', 'complaint', 'unsubscribe'] as const;
export type SuppressionReason = (typeof SUPPRESSION_REASONS)[number];

export interface SuppressionEntry {
  /** The address as first given (matching is case-insensitive). Absent in entries written before it was kept. */
  address?: string;
  reason: SuppressionReason;
  /** Human detail: the bounce rule's description, or the operator's note. */
  detail?: string;
  /** The remote reply of a hard bounce. */
  response?: string;
  createdAt?: string;
  until: string;
}

/** An entry as listed: with its key (the only name of entries that carry no address). */
export type ListedSuppression = SuppressionEntry & { key: string };

/** Entries written before reasons were categories had `reason` = the bounce rule's text. */
function normalise(raw: SuppressionEntry): SuppressionEntry {
  if ((SUPPRESSION_REASONS as readonly string[]).includes(raw.reason)) return raw;
  return { ...raw, reason: 'hard-bounce', detail: raw.detail ?? raw.reason };
}

/** Reads and writes suppression entries. */
export class SuppressionList {
  #kv: KV;
  #ttlMs: number;

  /** @param ttlMs how long a hard bounce suppresses its address (POSTERN_SUPPRESSION_TTL). */
  constructor(kv: KV, ttlMs: number) {
    this.#kv = kv;
    this.#ttlMs = ttlMs;
  }

  async #read(key: string): Promise<SuppressionEntry | undefined> {
    const e = await this.#kv.get(key);
    if (e?.operation !== 'PUT' || e.length === 0) return undefined;
    const entry = normalise(e.json<SuppressionEntry>());
    return Date.parse(entry.until) > Date.now() ? entry : undefined;
  }

  /** The entry for an address when it is suppressed now. */
  lookup(address: string): Promise<SuppressionEntry | undefined> {
    return this.#read(suppressionKey(address));
  }

  /** The subset of addresses suppressed now. */
  async suppressed(addresses: string[]): Promise<Set<string>> {
    const hits = await Promise.all(addresses.map(async (a) => ((await this.lookup(a)) ? a : undefined)));
    return new Set(hits.filter((a): a is string => a !== undefined));
  }

  /** Suppresses a hard-bounced address for the configured TTL (a later hard bounce extends it). */
  async add(address: string, detail: string, response: string): Promise<void> {
    await this.put({ address, reason: 'hard-bounce', detail, response }, this.#ttlMs);
  }

  /** Writes an entry expiring `ttlMs` from now (at most the bucket's max age, which would drop it earlier). */
  async put(entry: Omit<SuppressionEntry, 'until' | 'createdAt'>, ttlMs: number): Promise<SuppressionEntry> {
    const now = Date.now();
    const full: SuppressionEntry = {
      ...entry,
      createdAt: new Date(now).toISOString(),
      until: new Date(now + Math.min(ttlMs, SUPPRESSION_MAX_AGE_MS)).toISOString(),
    };
    await this.#kv.put(suppressionKey(entry.address ?? ''), JSON.stringify(full));
    return full;
  }

  /** Removes an address; false when it was not suppressed. */
  async remove(address: string): Promise<boolean> {
    const key = suppressionKey(address);
    if (!(await this.#read(key))) return false;
    await this.#kv.delete(key);
    return true;
  }

  /** Entries in force now, optionally only for one recipient domain, at most `limit`. */
  async list(filter: { domain?: string; limit: number }): Promise<ListedSuppression[]> {
    const out: ListedSuppression[] = [];
    const domain = filter.domain?.toLowerCase();
    const keys = await this.#kv.keys();
    for await (const key of keys) {
      if (out.length >= filter.limit) {
        keys.stop();
        break;
      }
      const entry = await this.#read(key);
      if (!entry) continue;
      if (domain && (!entry.address || domainOf(entry.address) !== domain)) continue;
      out.push({ key, ...entry });
    }
    return out;
  }
}
