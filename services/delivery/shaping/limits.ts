/**
 * The limits in force for one job at its site: pure, from the RelayPolicy's `destinations[]`, the provider rules
 * and the site's automation state. Matching order (docs/delivery.md "Which entry applies"), field by field, the
 * first that sets a field wins:
 *   1. the entry whose `match` is the recipient domain (`example.com`, MX routes);
 *   2. entries whose `match` is an MX host suffix (`.google.com`) of the site's MX hosts, longest first;
 *   3. the entry whose `match` is the smarthost (or mailbox) host, or `host:port`;
 *   4. the provider rule of the site (provider-rules.yaml);
 *   5. the `*` entry.
 * A throttle in force then caps ratePerMinute / maxConnections (never raises them).
 */
import type { PolicyConfig } from '../../common/config/resolved.ts';
import type { SiteLimits, SiteRecord } from '../../common/sites.ts';
import type { Route } from '../../common/types.ts';
import { hostHasSuffix, type ProviderRule } from './rules.ts';

export type Destination = PolicyConfig['delivery']['destinations'][number];

const FIELDS = ['maxConnections', 'messagesPerConnection', 'ratePerMinute', 'connectionsPerMinute'] as const;

export interface LimitsInForce {
  limits: SiteLimits;
  /** Where each contributing layer came from, for `postern destinations list` (e.g. `policy:.google.com`). */
  source: string[];
}

/** The layers that apply to a route, most specific first. */
function layers(
  route: Route,
  mxHosts: string[],
  destinations: Destination[],
  provider: ProviderRule | undefined,
): { name: string; limits: SiteLimits }[] {
  const out: { name: string; limits: SiteLimits }[] = [];
  const m = (d: Destination) => d.match.toLowerCase();
  if (route.kind === 'mx') {
    for (const d of destinations)
      if (m(d) === route.domain) out.push({ name: `policy:${d.match}`, limits: d });
    const suffixes = destinations
      .filter((d) => m(d).startsWith('.') && mxHosts.some((h) => hostHasSuffix(h, m(d))))
      .sort((a, b) => b.match.length - a.match.length);
    for (const d of suffixes) out.push({ name: `policy:${d.match}`, limits: d });
  } else {
    const host = route.host.toLowerCase();
    for (const d of destinations)
      if (m(d) === host || m(d) === `${host}:${route.port}`)
        out.push({ name: `policy:${d.match}`, limits: d });
  }
  if (provider) out.push({ name: `provider:${provider.id}`, limits: provider.limits });
  for (const d of destinations) if (d.match === '*') out.push({ name: 'policy:*', limits: d });
  return out;
}

export function limitsFor(
  route: Route,
  mxHosts: string[],
  destinations: Destination[],
  provider: ProviderRule | undefined,
  record: SiteRecord | undefined,
  now = Date.now(),
): LimitsInForce {
  const limits: SiteLimits = {};
  const source: string[] = [];
  for (const layer of layers(route, mxHosts, destinations, provider)) {
    let used = false;
    for (const f of FIELDS) {
      const v = layer.limits[f];
      if (v !== undefined && limits[f] === undefined) {
        limits[f] = v;
        used = true;
      }
    }
    if (used) source.push(layer.name);
  }
  const t = record?.throttle;
  if (t && Date.parse(t.until) > now) {
    if (t.ratePerMinute !== undefined)
      limits.ratePerMinute = Math.min(limits.ratePerMinute ?? Infinity, t.ratePerMinute);
    if (t.maxConnections !== undefined)
      limits.maxConnections = Math.min(limits.maxConnections ?? Infinity, t.maxConnections);
    source.push(`throttle:${t.by}`);
  }
  return { limits, source };
}

/** A token bucket's burst: one second's worth of the rate, at least one token. */
export function burstOf(perMinute: number): number {
  return Math.max(1, Math.ceil(perMinute / 60));
}

/** Does a job at this site need any cluster-wide bookkeeping? */
export function isLimited(l: SiteLimits): boolean {
  return (
    l.maxConnections !== undefined || l.ratePerMinute !== undefined || l.connectionsPerMinute !== undefined
  );
}
