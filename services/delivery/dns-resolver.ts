/**
 * DNS lookups for mx-connect through configurable servers (POSTERN_DNS_SERVERS): a node:dns Resolver with
 * setServers, adapted to mx-connect's `resolveRecords(domain, type)` contract. Errors keep c-ares codes
 * (ENOTFOUND/ENODATA = no such records → mx-connect falls through MX → A → AAAA; others = DNS failure, temporary).
 */
import { Resolver } from 'node:dns/promises';

export type ResolveRecords = (domain: string, type: 'MX' | 'A' | 'AAAA' | 'TXT') => Promise<unknown[]>;

/** undefined = use mx-connect's default (the system resolver). */
export function createRecordResolver(servers: string[], timeoutMs = 5000): ResolveRecords | undefined {
  if (servers.length === 0) return undefined;
  const resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
  resolver.setServers(servers);
  return async (domain, type) => {
    switch (type) {
      case 'MX':
        return resolver.resolveMx(domain);
      case 'A':
        return resolver.resolve4(domain);
      case 'AAAA':
        return resolver.resolve6(domain);
      case 'TXT':
        return resolver.resolveTxt(domain);
      default:
        return [];
    }
  };
}
