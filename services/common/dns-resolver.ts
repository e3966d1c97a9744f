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
