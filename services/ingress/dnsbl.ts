/**
 * DNS block lists at connect (RFC 5782), like Postfix's `reject_rbl_client`: every configured zone is asked
 * about the client address in parallel; the first zone to answer that it lists the client refuses the
 * connection with `554 5.7.1 Service unavailable; client [ip] blocked using <zone>`. Answers are cached
 * (listed and not listed; bounded, TTL) and concurrent connections from one address share one query.
 * A DNS failure never refuses: the zone is skipped (fail open), logged and counted.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { LRUCache } from 'lru-cache';
import { Counter, type Registry } from 'prom-client';
import type { ConfigSnapshot } from '../common/config/resolved.ts';
import { createLookupA, type LookupA } from '../common/dns-resolver.ts';
import type { Logger } from '../common/telemetry.ts';
import { dnsblQueryName, isListed, plainAddress } from './dnsbl-query.ts';
import type { DnsblSettings, DnsblZone } from './filter-settings.ts';
import { clientPolicy } from './recipient-policy.ts';
import { REPLIES, type SmtpReply } from './replies.ts';

export interface DnsblHit {
  zone: string;
  /** The A record that listed the client (its return code). */
  answer: string;
  reply: SmtpReply;
}

interface DnsblMetrics {
  lookups: Counter<'zone' | 'result'>;
  hits: Counter<'listener' | 'zone'>;
  cacheHits: Counter<'zone'>;
  skipped: Counter<'reason'>;
}

/** A zone's answer for one address: the listing A record, or null for "not listed". */
type Answer = string | null;

function createMetrics(registry: Registry): DnsblMetrics {
  return {
    lookups: new Counter({
      name: 'postern_dnsbl_lookups_total',
      help: 'DNS block list queries sent, by zone and result (listed, clean, error = DNS failure, failed open)',
      labelNames: ['zone', 'result'],
      registers: [registry],
    }),
    hits: new Counter({
      name: 'postern_dnsbl_hits_total',
      help: 'Connections refused with 554 5.7.1 because a DNS block list zone lists the client',
      labelNames: ['listener', 'zone'],
      registers: [registry],
    }),
    cacheHits: new Counter({
      name: 'postern_dnsbl_cache_hits_total',
      help: 'DNS block list answers reused from the cache',
      labelNames: ['zone'],
      registers: [registry],
    }),
    skipped: new Counter({
      name: 'postern_dnsbl_skipped_total',
      help: 'Connections not checked: client in the allow list or in a RelayPolicy network',
      labelNames: ['reason'],
      registers: [registry],
    }),
  };
}

function blockListOf(cidrs: string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [ip = '', bits] = cidr.split('/');
    const type = isIPv4(ip) ? 'ipv4' : 'ipv6';
    list.addSubnet(ip, bits === undefined ? (type === 'ipv4' ? 32 : 128) : Number(bits), type);
  }
  return list;
}

/**
 * The first listing any zone answers, without waiting for slower zones (a listed client is refused as soon as
 * one list says so); undefined once every zone answered "not listed" or failed.
 */
function firstListing<T>(answers: Promise<T | undefined>[]): Promise<T | undefined> {
  return new Promise((resolve) => {
    let left = answers.length;
    if (left === 0) resolve(undefined);
    for (const a of answers) {
      void a.then((hit) => {
        left--;
        if (hit !== undefined) resolve(hit);
        else if (left === 0) resolve(undefined);
      });
    }
  });
}

export class Dnsbl {
  readonly #settings: DnsblSettings;
  readonly #lookup: LookupA;
  readonly #allow: BlockList;
  readonly #cache: LRUCache<string, { answer: Answer }>;
  readonly #inflight = new Map<string, Promise<Answer | undefined>>();
  readonly #metrics: DnsblMetrics;
  readonly #log: Logger;
  #lastErrorLog = 0;

  constructor(settings: DnsblSettings, deps: { registry: Registry; logger: Logger; lookup?: LookupA }) {
    this.#settings = settings;
    this.#lookup = deps.lookup ?? createLookupA(settings.dnsServers, settings.timeoutMs);
    this.#allow = blockListOf(settings.allow);
    this.#cache = new LRUCache({ max: settings.cacheSize, ttl: settings.cacheTtlSeconds * 1000 });
    this.#metrics = createMetrics(deps.registry);
    this.#log = deps.logger.child({ check: 'dnsbl' });
  }

  /**
   * The listing that refuses this client on `listener`, or undefined (not listed, exempt, or DNS failed).
   * Never rejects. Clients in the allow list or in any RelayPolicy's `clients.networks` are not looked up:
   * they are ours (Postfix's `permit_mynetworks` before `reject_rbl_client`).
   */
  async listed(listener: string, address: string, snapshot: ConfigSnapshot): Promise<DnsblHit | undefined> {
    const ip = plainAddress(address);
    const type = isIPv4(ip) ? 'ipv4' : isIPv6(ip) ? 'ipv6' : undefined;
    if (!type) return undefined;
    if (this.#allow.check(ip, type)) {
      this.#metrics.skipped.inc({ reason: 'allow' });
      return undefined;
    }
    if (clientPolicy({ address: ip, tls: false }, snapshot)) {
      this.#metrics.skipped.inc({ reason: 'relay-policy' });
      return undefined;
    }
    const hit = await firstListing(
      this.#settings.zones.map((z) =>
        this.#answer(ip, z).then((a) => (typeof a === 'string' ? { zone: z.zone, answer: a } : undefined)),
      ),
    );
    if (!hit) return undefined;
    const { zone, answer } = hit;
    this.#metrics.hits.inc({ listener, zone });
    return { zone, answer, reply: REPLIES.dnsblListed(ip, zone) };
  }

  /** The zone's answer for `ip`: cached, shared with a query in flight, or asked; undefined = DNS failed. */
  #answer(ip: string, zone: DnsblZone): Promise<Answer | undefined> {
    const key = `${zone.zone}|${ip}`;
    const cached = this.#cache.get(key);
    if (cached) {
      this.#metrics.cacheHits.inc({ zone: zone.zone });
      return Promise.resolve(cached.answer);
    }
    let pending = this.#inflight.get(key);
    if (!pending) {
      pending = this.#query(ip, zone, key).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, pending);
    }
    return pending;
  }

  async #query(ip: string, zone: DnsblZone, key: string): Promise<Answer | undefined> {
    const name = dnsblQueryName(ip, zone.zone)!;
    let timer: NodeJS.Timeout | undefined;
    try {
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${this.#settings.timeoutMs} ms`)),
          this.#settings.timeoutMs,
        );
      });
      const records = await Promise.race([this.#lookup(name), deadline]);
      const listing = records?.find((r) => isListed([r.address], zone.codes));
      if (listing) {
        this.#metrics.lookups.inc({ zone: zone.zone, result: 'listed' });
        // A listing lives no longer than its record says (a delisted client is let in again soon).
        const ttl = Math.max(1, Math.min(listing.ttl, this.#settings.cacheTtlSeconds)) * 1000;
        this.#cache.set(key, { answer: listing.address }, { ttl });
        return listing.address;
      }
      this.#metrics.lookups.inc({ zone: zone.zone, result: 'clean' });
      this.#cache.set(key, { answer: null });
      return null;
    } catch (err) {
      // Fail open: a broken or slow list must not stop mail. Not cached, so the next connection asks again.
      this.#metrics.lookups.inc({ zone: zone.zone, result: 'error' });
      if (Date.now() - this.#lastErrorLog > 10_000) {
        this.#lastErrorLog = Date.now();
        this.#log.warn(
          { zone: zone.zone, query: name, err: (err as Error).message },
          'DNSBL lookup failed: not checked',
        );
      }
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }
}
