/**
 * The one way every service looks names up: a node:dns Resolver pointed at the configured servers
 * (POSTERN_DNS_SERVERS, `ip` or `ip:port`, comma separated; empty = the system resolver), so tests and local mode
 * can answer every query from a local DNS server and nothing leaves the machine.
 *
 * Errors keep c-ares codes (ENOTFOUND/ENODATA = no such records → mx-connect falls through MX → A → AAAA and
 * mailauth reports none/permerror; others = DNS failure, temporary).
 */
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';

export type ResolveRecords = (domain: string, type: 'MX' | 'A' | 'AAAA' | 'TXT') => Promise<unknown[]>;

/** mailauth's `resolver` option: the `dns.promises.resolve(name, rrtype)` contract. */
export type ResolveAny = (name: string, rrtype: string) => Promise<string[][] | string[]>;

/** A resolver with the lookups the services use: any record type (mailauth) and PTR (iprev). */
export interface DnsResolver {
  resolve: ResolveAny;
  /** PTR names of an address (RFC 1035 §3.5 in-addr.arpa / RFC 3596 ip6.arpa). */
  reverse(ip: string): Promise<string[]>;
  /** The servers asked; empty = the system resolver. */
  servers: string[];
}

/** POSTERN_DNS_SERVERS as a list. */
export function readDnsServers(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env['POSTERN_DNS_SERVERS'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** A resolver asking `servers` (the system's own when empty). */
export function createDnsResolver(servers: string[], timeoutMs = 5000): DnsResolver {
  const resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
  if (servers.length > 0) resolver.setServers(servers);
  return {
    servers,
    resolve: (name, rrtype) => resolver.resolve(name, rrtype) as Promise<string[][] | string[]>,
    reverse: (ip) => resolver.reverse(ip),
  };
}

/** An A record with its TTL (the DNS block lists cache a listing no longer than its record lives). */
export interface ARecord {
  address: string;
  ttl: number;
}

/** undefined = no such name or no A record (RFC 5782 §2.1: "not listed"); throws on a DNS failure. */
export type LookupA = (name: string) => Promise<ARecord[] | undefined>;

/** c-ares codes that mean "the name has no A record" rather than "DNS did not answer". */
const NOT_LISTED = new Set(['ENOTFOUND', 'ENODATA']);

/** A-record look-ups for the DNS block lists (RFC 5782): absent = not listed, a thrown error = DNS failure. */
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

/** mx-connect's `resolveRecords(domain, type)`; undefined = use mx-connect's default (the system resolver). */
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

/**
 * The address to connect to for a configured host (smarthost, mailbox store): an IP literal as is; a name through
 * `resolve` (A, then AAAA) so it is looked up at the configured servers like everything else; with no servers
 * configured (`resolve` undefined) the name itself, for the client library to resolve with the system resolver
 * (which also applies resolv.conf search domains, e.g. Kubernetes short service names).
 * A name that does not resolve throws with code EHOSTDNS, category dns: an operator-configured next hop that is
 * missing from DNS is a temporary condition to defer on, not a reason to bounce mail.
 */
export async function hostAddress(resolve: ResolveRecords | undefined, host: string): Promise<string> {
  if (!resolve || isIP(host)) return host;
  const failures: string[] = [];
  for (const type of ['A', 'AAAA'] as const) {
    try {
      const addrs = (await resolve(host, type)) as string[];
      if (addrs[0]) return addrs[0];
    } catch (err) {
      failures.push(`${type}: ${(err as { code?: string }).code ?? (err as Error).message}`);
    }
  }
  const err = new Error(`cannot resolve ${host} (${failures.join(', ') || 'no addresses'})`) as Error & {
    code: string;
    category: string;
  };
  err.code = 'EHOSTDNS';
  err.category = 'dns';
  throw err;
}
