/**
 * The MX host names of a recipient domain, for site naming (MX rollup) and MX-suffix rules: looked up through the
 * same resolver as delivery (POSTERN_DNS_SERVERS) and cached. A failed lookup gives no hosts (the site is then
 * the domain itself) and is cached briefly; mx-connect reports the real DNS error on the attempt.
 */
import { resolveMx } from 'node:dns/promises';
import type { ResolveRecords } from '../../common/dns-resolver.ts';

const TTL_MS = 5 * 60_000;
const NEGATIVE_TTL_MS = 30_000;
const MAX_ENTRIES = 100_000;

export class MxHostCache {
  #resolve: ResolveRecords | undefined;
  #cache = new Map<string, { hosts: string[]; expires: number }>();
  #inflight = new Map<string, Promise<string[]>>();

  constructor(resolve: ResolveRecords | undefined) {
    this.#resolve = resolve;
  }

  async hosts(domain: string): Promise<string[]> {
    const hit = this.#cache.get(domain);
    if (hit && hit.expires > Date.now()) return hit.hosts;
    const running = this.#inflight.get(domain);
    if (running) return running;
    const p = this.#lookup(domain).finally(() => this.#inflight.delete(domain));
    this.#inflight.set(domain, p);
    return p;
  }

  async #lookup(domain: string): Promise<string[]> {
    let hosts: string[] = [];
    let ttl = TTL_MS;
    try {
      const records = (this.#resolve ? await this.#resolve(domain, 'MX') : await resolveMx(domain)) as {
        exchange: string;
      }[];
      // A null MX (RFC 7505, exchange ".") is no site at all: the attempt bounces with 5.1.10.
      hosts = records.map((r) => r.exchange.toLowerCase().replace(/\.$/, '')).filter(Boolean);
    } catch {
      ttl = NEGATIVE_TTL_MS;
    }
    if (this.#cache.size >= MAX_ENTRIES) this.#cache.delete(this.#cache.keys().next().value as string);
    this.#cache.set(domain, { hosts, expires: Date.now() + ttl });
    return hosts;
  }
}
