/**
 * iprev (RFC 8601 §3): the client address's PTR names, each looked up forward; pass when one of them resolves
 * back to the address. mailauth has no iprev, so it is done here through the shared resolver.
 */
import { isIPv4 } from 'node:net';
import type { DnsResolver } from '../common/dns-resolver.ts';

export interface IprevResult {
  result: 'pass' | 'fail' | 'temperror' | 'permerror';
  /** The name that resolved back to the address (pass). */
  name?: string;
}

/** RFC 8601 §3: a reasonable limit on PTR names checked (like SPF's 10 for the ptr mechanism, RFC 7208 §5.5). */
const MAX_NAMES = 10;

/** c-ares codes meaning "the name has no such record": a fail, not a DNS outage. */
const NO_RECORDS = new Set(['ENOTFOUND', 'ENODATA', 'NXDOMAIN']);

function plain(ip: string): string {
  return /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1] ?? ip;
}

export async function iprev(resolver: DnsResolver, address: string): Promise<IprevResult> {
  const ip = plain(address);
  let names: string[];
  try {
    names = await resolver.reverse(ip);
  } catch (err) {
    return { result: NO_RECORDS.has((err as { code?: string }).code ?? '') ? 'fail' : 'temperror' };
  }
  let temp = false;
  for (const name of names.slice(0, MAX_NAMES)) {
    try {
      const addrs = (await resolver.resolve(name, isIPv4(ip) ? 'A' : 'AAAA')) as string[];
      if (addrs.some((a) => a.toLowerCase() === ip.toLowerCase())) return { result: 'pass', name };
    } catch (err) {
      if (!NO_RECORDS.has((err as { code?: string }).code ?? '')) temp = true;
    }
  }
  return { result: temp ? 'temperror' : 'fail' };
}

/** The resinfo for Authentication-Results (RFC 8601 §2.7.3: property policy.iprev = the address checked). */
export function iprevInfo(r: IprevResult, address: string): string {
  // An IPv6 address has ':' (a tspecial), so it is no token and travels quoted (RFC 8601 §2.2 pvalue).
  const ip = plain(address);
  return `iprev=${r.result}${r.name ? ` (${r.name})` : ''} policy.iprev=${ip.includes(':') ? `"${ip}"` : ip}`;
}
