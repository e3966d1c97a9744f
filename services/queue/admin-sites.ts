/**
 * The sites part of the queue admin API (docs/delivery.md "Sites, limits and automatic backoff"):
 *   GET  /sites                          every known site: domains, limits in force, connections now, observed
 *                                        rate, throttled / suspended until, last reply
 *   POST /sites/:site/suspend[?for=1h]   no attempts to the site until then (default 1h); jobs wait, keep budget
 *   POST /sites/:site/resume             lift a suspension or throttle now
 * `:site` is a site name (`mx:…`, `smtp:host:port`) or a recipient domain the site serves. The state lives in the
 * KV buckets every delivery process reads (services/common/sites.ts), so a change holds cluster-wide at once.
 */
import type { IncomingMessage } from 'node:http';
import type { JetStreamClient } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { parseDuration } from '../common/durations.ts';
import {
  type BucketState,
  findSite,
  listSites,
  publishSiteEvent,
  resumeSite,
  SITE_LEASE_BUCKET,
  SITE_STATE_BUCKET,
  SITE_STATE_TTL_MS,
  type SiteRecord,
  siteKey,
  siteStatus,
  suspendSite,
} from '../common/sites.ts';

export interface SiteView extends SiteRecord {
  status: 'normal' | 'throttled' | 'suspended';
  /** Sessions open now, all delivery processes (connection leases; only for sites with maxConnections). */
  connections?: number;
  /** Messages per minute granted (last full minute, else this one; only for sites with ratePerMinute). */
  ratePerMinute?: number;
}

type Reply = { status: number; body: unknown };

async function buckets(js: JetStreamClient): Promise<{ state: KV; leases: KV | undefined }> {
  const kvm = new Kvm(js);
  const state = await kvm.create(SITE_STATE_BUCKET, { history: 1, ttl: SITE_STATE_TTL_MS });
  // The lease bucket is created by delivery (with its TTL); before any delivery ran there are no leases.
  const leases = await kvm.open(SITE_LEASE_BUCKET).catch(() => undefined);
  return { state, leases };
}

export async function listSiteViews(js: JetStreamClient): Promise<SiteView[]> {
  const { state, leases } = await buckets(js);
  const records = await listSites(state);
  const connections = new Map<string, number>();
  if (leases) {
    for await (const key of await leases.keys()) {
      const m = /^(s[0-9a-f]+)\.c\d+$/.exec(key);
      if (m) connections.set(m[1]!, (connections.get(m[1]!) ?? 0) + 1);
    }
  }
  const views: SiteView[] = [];
  for (const r of records) {
    const key = siteKey(r.site);
    let rate: number | undefined;
    const e = leases ? await leases.get(`${key}.rate`) : null;
    if (e?.operation === 'PUT' && e.length > 0) {
      const b = e.json<BucketState>();
      const win = Math.floor(Date.now() / 60_000) * 60_000;
      rate = win === b.win ? b.prev || b.n : win - b.win === 60_000 ? b.n : 0;
    }
    views.push({
      ...r,
      status: siteStatus(r),
      ...(r.limits?.maxConnections !== undefined ? { connections: connections.get(key) ?? 0 } : {}),
      ...(rate !== undefined ? { ratePerMinute: rate } : {}),
    });
  }
  return views.sort((a, b) => a.site.localeCompare(b.site));
}

/** Handles `/sites…`; `parts` are the decoded path segments. */
export async function handleSites(
  js: JetStreamClient,
  req: IncomingMessage,
  url: URL,
  parts: string[],
): Promise<Reply> {
  if (parts.length === 1 && req.method === 'GET') return { status: 200, body: await listSiteViews(js) };
  const [, name, action] = parts;
  if (!name || parts.length !== 3 || req.method !== 'POST' || (action !== 'suspend' && action !== 'resume'))
    return { status: 404, body: { error: 'not found (GET /sites, POST /sites/:site/suspend|resume)' } };
  const { state } = await buckets(js);
  // A site by name, or by a recipient domain it serves; a name nobody has seen yet may still be suspended ahead.
  const known = findSite(await listSites(state), name);
  const site = known?.site ?? (name.includes(':') ? name : undefined);
  if (!site) return { status: 404, body: { error: `no site named ${name} or serving ${name}` } };
  const at = new Date().toISOString();
  if (action === 'suspend') {
    let ms: number;
    try {
      ms = parseDuration(url.searchParams.get('for') ?? '1h');
    } catch (err) {
      return { status: 400, body: { error: (err as Error).message } };
    }
    if (ms > SITE_STATE_TTL_MS) return { status: 400, body: { error: 'a suspension lasts at most 7d' } };
    const until = new Date(Date.now() + ms);
    await suspendSite(state, site, until, 'operator', 'suspended by an operator');
    await publishSiteEvent(js, {
      kind: 'site.suspended',
      site,
      at,
      until: until.toISOString(),
      by: 'operator',
    });
    return { status: 200, body: { suspended: site, until: until.toISOString() } };
  }
  const changed = await resumeSite(state, site);
  if (changed) await publishSiteEvent(js, { kind: 'site.resumed', site, at, by: 'operator' });
  return { status: 200, body: { resumed: site, changed: changed !== undefined } };
}
