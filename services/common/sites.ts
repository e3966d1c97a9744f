/**
 * Sites — where delivery connections go (docs/delivery.md "Sites, limits and automatic backoff") — and their
 * cluster-wide state in NATS KV, shared by every delivery process, the queue's admin API and the CLI.
 *
 * - A site is the MX host set of a recipient domain (domains with the same MX set share one site: "MX rollup"),
 *   or a smarthost / mailbox host:port. `siteName` is the one naming function.
 * - KV `sites` (key: `siteKey(site)`): the state an operator or a response rule put on a site (suspended or
 *   throttled until a time), plus what delivery last saw (recipient domains, limits in force, last reply).
 * - KV `site-leases` (bucket TTL = the lease time): connection leases `<key>.c<slot>` and token buckets
 *   `<key>.rate` / `<key>.cpm`. Every write refreshes a key's age; a key nobody rewrites within the TTL is
 *   removed by the server (stream max_age), so a dead process's leases expire by themselves.
 */

import { createHash } from 'node:crypto';
import type { JetStreamClient } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { msgIds } from './msg-ids.ts';
import { SUBJECTS } from './nats.ts';
import type { Route } from './types.ts';

export const SITE_STATE_BUCKET = 'sites';
export const SITE_LEASE_BUCKET = 'site-leases';
/** Records of sites nobody wrote for a week disappear (a suspension longer than that is refused). */
export const SITE_STATE_TTL_MS = 7 * 86_400_000;
/** Recipient domains remembered per site (for `postern destinations list`). */
const MAX_DOMAINS = 20;

/** The limits of a site (RelayPolicy `destinations[]`, the provider rules file, automation). */
export interface SiteLimits {
  /** Concurrent SMTP sessions, all delivery processes together. */
  maxConnections?: number;
  /** Messages over one session before it is closed. */
  messagesPerConnection?: number;
  /** Messages per minute, all processes together (token bucket, burst = one second's worth, at least 1). */
  ratePerMinute?: number;
  /** New sessions per minute, all processes together (token bucket like ratePerMinute). */
  connectionsPerMinute?: number;
}

/** A response rule's or an operator's reduction of a site's limits, until a time. */
export interface SiteThrottle {
  ratePerMinute?: number;
  maxConnections?: number;
  until: string;
  /** `rule:<id>` or `operator`. */
  by: string;
}

export interface SiteRecord {
  site: string;
  /** Recipient domains delivery routed to this site (most recent first, bounded). */
  domains: string[];
  /** Limits a delivery process last enforced, and where they came from. */
  limits?: SiteLimits;
  limitSource?: string[];
  throttle?: SiteThrottle;
  suspendedUntil?: string;
  suspendedBy?: string;
  /** The reply (or reason) behind the current suspension or throttle. */
  reason?: string;
  lastReply?: string;
  lastReplyAt?: string;
  updatedAt: string;
}

/** A shared token bucket (`<site key>.rate`, `<site key>.cpm`; delivery/shaping/token-bucket.ts). */
export interface BucketState {
  /** Tokens left at `at` (ms since epoch). */
  tokens: number;
  at: number;
  /** Grants in the current minute (`win` = its start) and the one before: the observed rate. */
  win: number;
  n: number;
  prev: number;
}

export type SiteEventKind = 'site.throttled' | 'site.suspended' | 'site.resumed';

/** Published on EVENTS (`mail.event.site.<what>`) when a site's state changes. */
export interface SiteEvent {
  kind: SiteEventKind;
  site: string;
  at: string;
  until?: string;
  by?: string;
  reason?: string;
  throttle?: Omit<SiteThrottle, 'until' | 'by'>;
}

/** The site of a route; `mxHosts` are the recipient domain's MX host names (empty: implicit MX or unknown). */
export function siteName(route: Route, mxHosts: string[] = [], mxPort = 25): string {
  if (route.kind === 'mx') {
    const hosts = [...new Set(mxHosts.map((h) => h.toLowerCase().replace(/\.$/, '')))].sort();
    const port = mxPort === 25 ? '' : `:${mxPort}`;
    return hosts.length ? `mx:${hosts.join(',')}${port}` : `mx:${route.domain.toLowerCase()}${port}`;
  }
  const scheme = route.kind === 'mailbox' ? route.protocol : 'smtp';
  return `${scheme}:${route.host.toLowerCase()}:${route.port}`;
}

/** KV key of a site: site names hold characters KV keys cannot (`:`, `,`), and can be long. */
export function siteKey(site: string): string {
  return `s${createHash('sha256').update(site).digest('hex').slice(0, 24)}`;
}

export async function openSiteBuckets(
  nc: NatsConnection,
  opts: { leaseTtlMs: number; replicas: number },
): Promise<{ state: KV; leases: KV }> {
  const kvm = new Kvm(nc);
  const state = await kvm.create(SITE_STATE_BUCKET, {
    history: 1,
    replicas: opts.replicas,
    ttl: SITE_STATE_TTL_MS,
  });
  const leases = await kvm.create(SITE_LEASE_BUCKET, {
    history: 1,
    replicas: opts.replicas,
    ttl: opts.leaseTtlMs,
  });
  return { state, leases };
}

/** Opens the state bucket only (admin API, CLI): never creates it with other settings. */
export async function openSiteState(nc: NatsConnection): Promise<KV> {
  return new Kvm(nc).create(SITE_STATE_BUCKET, { history: 1, ttl: SITE_STATE_TTL_MS });
}

export async function readSite(
  kv: KV,
  site: string,
): Promise<{ record: SiteRecord; revision: number } | undefined> {
  const e = await kv.get(siteKey(site));
  if (e?.operation !== 'PUT' || e.length === 0) return undefined;
  return { record: e.json<SiteRecord>(), revision: e.revision };
}

/**
 * Read-modify-write of a site's record with compare-and-set (KV revision), retried on conflicts: every process
 * may change a site at once. `change` returns undefined to leave the record as it is.
 */
export async function updateSite(
  kv: KV,
  site: string,
  change: (r: SiteRecord) => SiteRecord | undefined,
): Promise<{ before?: SiteRecord; after: SiteRecord } | undefined> {
  const key = siteKey(site);
  for (let i = 0; i < 20; i++) {
    const cur = await readSite(kv, site);
    const before = cur?.record;
    const next = change(before ? structuredClone(before) : { site, domains: [], updatedAt: '' });
    if (!next) return undefined;
    next.updatedAt = new Date().toISOString();
    try {
      if (cur) await kv.update(key, JSON.stringify(next), cur.revision);
      else await kv.create(key, JSON.stringify(next));
      return { ...(before ? { before } : {}), after: next };
    } catch (err) {
      if (!isCasConflict(err)) throw err;
    }
  }
  throw new Error(`site ${site}: too many concurrent updates`);
}

/** A KV create/update that lost a compare-and-set (JetStream "wrong last sequence", 10071). */
export function isCasConflict(err: unknown): boolean {
  const e = err as { api_error?: { err_code?: number }; message?: string };
  return (
    e?.api_error?.err_code === 10071 || /wrong last sequence|key exists/i.test(String(e?.message ?? err))
  );
}

export function addDomain(domains: string[], domain: string): string[] {
  return [domain, ...domains.filter((d) => d !== domain)].slice(0, MAX_DOMAINS);
}

/** Is the site suspended or throttled at `now`? */
export function siteStatus(
  r: SiteRecord | undefined,
  now = Date.now(),
): 'suspended' | 'throttled' | 'normal' {
  if (r?.suspendedUntil && Date.parse(r.suspendedUntil) > now) return 'suspended';
  if (r?.throttle && Date.parse(r.throttle.until) > now) return 'throttled';
  return 'normal';
}

export async function listSites(kv: KV): Promise<SiteRecord[]> {
  const out: SiteRecord[] = [];
  for await (const key of await kv.keys()) {
    const e = await kv.get(key);
    if (e && e.operation === 'PUT' && e.length > 0) out.push(e.json<SiteRecord>());
  }
  return out;
}

/** Finds a site by its name or by a recipient domain it serves. */
export function findSite(records: SiteRecord[], nameOrDomain: string): SiteRecord | undefined {
  const q = nameOrDomain.toLowerCase();
  return records.find((r) => r.site === q) ?? records.find((r) => r.domains.includes(q));
}

/** Suspends a site until `until` (operator or rule); jobs for it wait and keep their retry budget. */
export async function suspendSite(kv: KV, site: string, until: Date, by: string, reason: string) {
  return updateSite(kv, site, (r) => {
    // A rule never shortens a suspension already in force; an operator sets what they say.
    if (by !== 'operator' && r.suspendedUntil && Date.parse(r.suspendedUntil) >= until.getTime())
      return undefined;
    return { ...r, suspendedUntil: until.toISOString(), suspendedBy: by, reason };
  });
}

/** Lifts a suspension and any throttle now. */
export async function resumeSite(kv: KV, site: string) {
  return updateSite(kv, site, (r) => {
    if (!r.suspendedUntil && !r.throttle) return undefined;
    const { suspendedUntil: _s, suspendedBy: _b, throttle: _t, ...rest } = r;
    return rest;
  });
}

/** Publishes a site event; the id makes a repeated publish of the same change a duplicate. */
export async function publishSiteEvent(js: JetStreamClient, event: SiteEvent): Promise<void> {
  await js.publish(SUBJECTS.event(event.kind), JSON.stringify(event), {
    msgID: msgIds.siteEvent(event.kind, siteKey(event.site), event.until ?? event.at),
  });
}
