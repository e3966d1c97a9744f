/**
 * Settings of the two client/content filters from the environment (the chart renders `ingress.dnsbl.*` and
 * `ingress.contentFilter.*` into these; docs/ingress.md "DNS block lists" and "Content filter").
 * Which listeners use them is a per-listener switch (ListenerSettings.dnsbl / .contentFilter).
 */

import { isIP } from 'node:net';
import { readDnsServers } from '../common/dns-resolver.ts';

/** One DNS block list zone; `codes` limits which A answers count as "listed" (Postfix `zone=127.0.0.[2..11]`). */
export interface DnsblZone {
  zone: string;
  /** Single addresses or inclusive ranges `a-b` (IPv4); empty/absent = the default filter (see dnsbl-query.ts). */
  codes?: string[];
}

export interface DnsblSettings {
  zones: DnsblZone[];
  /** CIDRs whose clients are never looked up (besides every RelayPolicy's `clients.networks`). */
  allow: string[];
  /** Longest time an answer (listed or not) is reused; a listed answer lives at most its record's TTL. */
  cacheTtlSeconds: number;
  /** Cached answers (client × zone), least recently used dropped first. */
  cacheSize: number;
  /** Per-query deadline; past it the zone counts as failed (fail open). */
  timeoutMs: number;
  /** `ip` or `ip:port` resolvers (POSTERN_DNS_SERVERS); empty = the system's. */
  dnsServers: string[];
}

export type FailMode = 'open' | 'closed';

export interface ContentFilterSettings {
  /** rspamd's normal worker (or proxy in self-scan mode), e.g. `http://rspamd:11333`; `/checkv2` is appended. */
  url: string;
  timeoutMs: number;
  /** open: accept when rspamd cannot answer; closed: `451 4.3.0`. */
  failMode: FailMode;
  /** Messages larger than this are not scanned (accepted as if rspamd said no action), like spamc's -s. */
  maxSize: number;
}

const DNS_NAME =
  /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)+$/i;

function positiveInt(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got "${text}"`);
  return n;
}

function list(text: string | undefined): string[] {
  return (text ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function validCode(code: string): boolean {
  const [from, to, ...rest] = code.split('-');
  return rest.length === 0 && isIP(from ?? '') === 4 && (to === undefined || isIP(to) === 4);
}

/** `POSTERN_DNSBL_ZONES`: JSON array of zone names or `{zone, codes}` objects. */
export function parseZones(text: string): DnsblZone[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`POSTERN_DNSBL_ZONES is not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(raw)) throw new Error('POSTERN_DNSBL_ZONES must be a JSON array');
  return raw.map((z: unknown, i) => {
    const zone = typeof z === 'string' ? { zone: z } : (z as DnsblZone);
    const name = typeof zone?.zone === 'string' ? zone.zone.toLowerCase().replace(/\.$/, '') : '';
    if (!DNS_NAME.test(name)) {
      throw new Error(`POSTERN_DNSBL_ZONES[${i}] needs a DNS zone name (e.g. "zen.spamhaus.org")`);
    }
    const codes = zone.codes ?? [];
    if (!Array.isArray(codes) || !codes.every((c) => typeof c === 'string' && validCode(c))) {
      throw new Error(
        `POSTERN_DNSBL_ZONES[${i}].codes must be IPv4 addresses or ranges like "127.0.0.2-127.0.0.11"`,
      );
    }
    return { zone: name, ...(codes.length ? { codes } : {}) };
  });
}

/** The DNSBL settings, or undefined when no zone is configured (the check is off). */
export function readDnsblSettings(env: NodeJS.ProcessEnv = process.env): DnsblSettings | undefined {
  const zonesText = env['POSTERN_DNSBL_ZONES'];
  if (!zonesText) return undefined;
  const zones = parseZones(zonesText);
  if (zones.length === 0) return undefined;
  const allow = list(env['POSTERN_DNSBL_ALLOW']);
  for (const cidr of allow) {
    const [ip, bits, ...rest] = cidr.split('/');
    const family = isIP(ip ?? '');
    const max = family === 4 ? 32 : 128;
    const prefix = bits === undefined ? max : Number(bits);
    if (!family || rest.length || !Number.isInteger(prefix) || prefix < 0 || prefix > max) {
      throw new Error(`POSTERN_DNSBL_ALLOW: "${cidr}" is not an address or CIDR`);
    }
  }
  return {
    zones,
    allow,
    cacheTtlSeconds: positiveInt(env, 'POSTERN_DNSBL_CACHE_TTL_SECONDS', 300),
    cacheSize: positiveInt(env, 'POSTERN_DNSBL_CACHE_SIZE', 10_000),
    timeoutMs: positiveInt(env, 'POSTERN_DNSBL_TIMEOUT_MS', 2000),
    dnsServers: readDnsServers(env),
  };
}

/** The content-filter settings, or undefined when no URL is configured (no filter). */
export function readContentFilterSettings(
  env: NodeJS.ProcessEnv = process.env,
): ContentFilterSettings | undefined {
  const url = env['POSTERN_CONTENT_FILTER_URL'];
  if (!url) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`POSTERN_CONTENT_FILTER_URL is not a URL: "${url}"`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new Error(`POSTERN_CONTENT_FILTER_URL must be http(s), got "${url}"`);
  }
  const failMode = env['POSTERN_CONTENT_FILTER_FAIL_MODE'] || 'open';
  if (failMode !== 'open' && failMode !== 'closed') {
    throw new Error(`POSTERN_CONTENT_FILTER_FAIL_MODE must be open or closed, got "${failMode}"`);
  }
  return {
    url: url.replace(/\/+$/, ''),
    timeoutMs: positiveInt(env, 'POSTERN_CONTENT_FILTER_TIMEOUT_MS', 10_000),
    failMode,
    maxSize: positiveInt(env, 'POSTERN_CONTENT_FILTER_MAX_SIZE', 20 * 1024 * 1024),
  };
}
