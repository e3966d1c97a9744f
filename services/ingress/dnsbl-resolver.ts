/**
 * A-record look-ups for the DNS block lists through the configured resolvers (POSTERN_DNS_SERVERS), like
 * delivery's services/delivery/dns-resolver.ts. Kept separate for now because that module is moving to
 * services/common; the two are meant to become one.
 */
import { Resolver } from 'node:dns/promises';

export interface ARecord {
  address: string;
  ttl: number;
}

/** undefined = no such name or no A record (RFC 5782 §2.1: "not listed"); throws on a DNS failure. */
export type LookupA = (name: string) => Promise<ARecord[] | undefined>;

/** c-ares codes that mean "the name has no A record" rather than "DNS did not answer". */
const NOT_LISTED = new Set(['ENOTFOUND', 'ENODATA']);

/** `servers`: `ip` or `ip:port`; empty = the system's resolvers (/etc/resolv.conf). */
export function createLookupA(servers: string[], timeoutMs: number): LookupA {
  // One try per server: the caller has its own deadline and fails open, so retrying only delays the greeting.
  const resolver = new Resolver({ timeout: timeoutMs, tries: 1 });
  if (servers.length > 0) resolver.setServers(servers);
  return async (name) => {
    try {
      return await resolver.resolve4(name, { ttl: true });
    } catch (err) {
      if (NOT_LISTED.has((err as NodeJS.ErrnoException).code ?? '')) return undefined;
      throw err;
    }
  };
}
