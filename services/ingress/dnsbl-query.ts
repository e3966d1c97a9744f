/**
 * PURE pieces of a DNS block list check (RFC 5782): the query name for a client address and whether an answer
 * means "listed".
 */
import { isIPv4, isIPv6 } from 'node:net';

/** `::ffff:192.0.2.1` (IPv4 on a dual-stack socket) → `192.0.2.1`; others unchanged. */
export function plainAddress(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped?.[1] ?? address;
}

/** The 8 groups of an IPv6 address as 4-digit hex strings (handles `::` and a trailing dotted IPv4 part). */
function ipv6Groups(address: string): string[] {
  let text = address.toLowerCase().replace(/%.*$/, '');
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1]) {
    const b = v4[1].split('.').map(Number) as [number, number, number, number];
    const hex = (x: number, y: number) => ((x << 8) | y).toString(16);
    text = `${text.slice(0, -v4[1].length)}${hex(b[0], b[1])}:${hex(b[2], b[3])}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const middle = tail === undefined ? [] : Array(8 - left.length - right.length).fill('0');
  return [...left, ...middle, ...right].map((g) => g.padStart(4, '0'));
}

/**
 * The name to look up for `address` in `zone` (RFC 5782 §2.1 for IPv4: octets reversed; §2.4 for IPv6: the 32
 * nibbles reversed, dot-separated). Undefined for something that is not an IP address.
 */
export function dnsblQueryName(address: string, zone: string): string | undefined {
  const ip = plainAddress(address);
  if (isIPv4(ip)) return `${ip.split('.').reverse().join('.')}.${zone}`;
  if (isIPv6(ip)) return `${[...ipv6Groups(ip).join('')].reverse().join('.')}.${zone}`;
  return undefined;
}

function ipv4Number(ip: string): number {
  return ip.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
}

/**
 * Whether A answers mean "listed". With `codes`, an answer must be one of them (single addresses or ranges
 * `a-b`). Without, any 127.0.0.0/8 answer counts (RFC 5782 §2.3) except 127.255.255.0/24, which Spamhaus
 * uses for "your query was refused" (public resolver, over quota), not for a listing — counting those would
 * block every client at once.
 */
export function isListed(answers: string[], codes?: string[]): boolean {
  return answers.some((a) => {
    if (!isIPv4(a)) return false;
    const n = ipv4Number(a);
    if (!codes?.length) return a.startsWith('127.') && !a.startsWith('127.255.255.');
    return codes.some((code) => {
      const [from, to] = code.split('-') as [string, string | undefined];
      return n >= ipv4Number(from) && n <= ipv4Number(to ?? from);
    });
  });
}
