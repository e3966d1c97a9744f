/**
 * Traffic shaping for one delivery process (docs/delivery.md "Sites, limits and automatic backoff"): names the
 * site of a job, works out the limits in force, and asks the cluster-wide state in NATS whether a job may go now —
 * connection leases and token buckets (`site-leases`), suspensions and throttles (`sites`, watched). What the
 * remote servers answer is matched against the response rules, which suspend or throttle the site for everyone.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { ConfigStore } from '../../common/config/store.ts';
import type { ResolveRecords } from '../../common/dns-resolver.ts';
import {
  addDomain,
  openSiteBuckets,
  publishSiteEvent,
  type SiteLimits,
  type SiteRecord,
  siteKey,
  siteName,
  siteStatus,
  updateSite,
} from '../../common/sites.ts';
import type { LoopSupervisor } from '../../common/supervise.ts';
import type { Logger } from '../../common/telemetry.ts';
import type { DeliveryJob, RecipientOutcome } from '../../common/types.ts';
import { DEAD_BY, DeadSites, type SiteVerdict } from './dead-sites.ts';
import { ConnectionLeases } from './leases.ts';
import { isLimited, limitsFor } from './limits.ts';
import { MxHostCache } from './mx-hosts.ts';
import {
  loadProviderRules,
  loadResponseRules,
  type ProviderRule,
  providerRuleFor,
  type ResponseRule,
  responseRuleFor,
} from './rules.ts';
import { watchSites } from './site-watch.ts';
import { SharedTokenBuckets } from './token-bucket.ts';

export interface ShapingSettings {
  leaseTtlMs: number;
  /** Dead sites (shaping/dead-sites.ts): down attempts in a row that mark a site dead, and for how long. */
  deadAfter?: number;
  deadMs?: number;
  providerRulesFile?: string | undefined;
  responseRulesFile?: string | undefined;
}

/** The site of one job and what holds there now. */
export interface JobSite {
  name: string;
  key: string;
  domain?: string;
  mxHosts: string[];
  limits: SiteLimits;
  source: string[];
}

/** A permission to hold one session at a site; released when the session closes. */
export interface SessionPermit {
  release(): void;
  readonly lost: boolean;
}

/** The process may not go to the site now: try again at `untilMs` (the job is re-scheduled, not held). */
export interface SiteWait {
  untilMs: number;
  reason: string;
  /** A message token reserved for the job at `untilMs` (it sends then without taking another). */
  token?: { site: string; at: number };
}

/**
 * Whether a job may try its site now: `wait` for a suspension in force (rule or operator: re-scheduled, no
 * attempt spent); `defer` for a site known dead (reported deferred at once, without a connection); `go` — as the
 * probe of a site whose dead spell is over when `probe` (pass it back to `observe`).
 */
export type Admission = { go: true; probe: boolean } | { wait: SiteWait } | { defer: string };

export interface ShapingGate {
  siteOf(job: DeliveryJob): Promise<JobSite>;
  admit(site: JobSite): Admission;
  /** A new session's permission (connection lease and connections-per-minute token), or how long to wait. */
  permit(site: JobSite, job: DeliveryJob): Promise<SessionPermit | SiteWait>;
  /**
   * The job's message token (ratePerMinute): `waitMs` 0 = go now; else come back then — with a token reserved
   * for that time when `reserved`.
   */
  messageToken(site: JobSite, job: DeliveryJob): Promise<{ waitMs: number; reserved: boolean }>;
  /**
   * The attempt's replies (none when it did not get to try): response rules, last reply, domains served, and what
   * it says about the site (dead sites). Never throws.
   */
  observe(site: JobSite, outcomes: RecipientOutcome[], verdict: SiteVerdict, probe: boolean): void;
  /** Sites by volume this process sent to, with their state (for the postern_site_state gauge). */
  volumes(): { site: string; messages: number; state: ReturnType<typeof siteStatus> }[];
  close(): void;
}

const FREE: SessionPermit = { release() {}, lost: false };

export async function startShaping(opts: {
  nc: import('@nats-io/transport-node').NatsConnection;
  js: JetStreamClient;
  config?: ConfigStore | undefined;
  resolveRecords?: ResolveRecords | undefined;
  mxPort: number;
  replicas: number;
  settings: ShapingSettings;
  log: Logger;
  loops: LoopSupervisor;
}): Promise<ShapingGate> {
  const { js, log, mxPort } = opts;
  const providers: ProviderRule[] = loadProviderRules(opts.settings.providerRulesFile);
  const responses: ResponseRule[] = loadResponseRules(opts.settings.responseRulesFile);
  const { state, leases: leaseKv } = await openSiteBuckets(opts.nc, {
    leaseTtlMs: opts.settings.leaseTtlMs,
    replicas: opts.replicas,
  });
  const owner = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const leases = new ConnectionLeases(leaseKv, owner, opts.settings.leaseTtlMs, log);
  const buckets = new SharedTokenBuckets(leaseKv);
  const mx = new MxHostCache(opts.resolveRecords);
  const records = new Map<string, SiteRecord>();
  const watch = await watchSites(state, records, opts.loops);
  const volume = new Map<string, number>();
  const seen = new Map<string, { domains: Set<string>; limits: string; wroteAt: number; replyAt: number }>();
  const deadMs = opts.settings.deadMs ?? 300_000;
  const dead = new DeadSites({ after: opts.settings.deadAfter ?? 5, deadMs });

  const sweeper = setInterval(() => void resumeExpired(state, js, records, log), 5000);
  sweeper.unref();

  const destinationsOf = (job: DeliveryJob) => {
    if (!job.policy || !opts.config) return [];
    return opts.config.snapshot().policies.get(job.policy.replace('/', '.'))?.delivery.destinations ?? [];
  };

  const gate: ShapingGate = {
    async siteOf(job) {
      const route = job.route;
      const mxHosts = route.kind === 'mx' ? await mx.hosts(route.domain) : [];
      const name = siteName(route, mxHosts, mxPort);
      const key = siteKey(name);
      // Mail for the mailbox stores is our own hand-off, not a remote provider: never shaped.
      const provider = route.kind === 'mx' ? providerRuleFor(providers, mxHosts) : undefined;
      const { limits, source } =
        route.kind === 'mailbox'
          ? { limits: {}, source: [] }
          : limitsFor(route, mxHosts, destinationsOf(job), provider, records.get(key));
      volume.set(name, (volume.get(name) ?? 0) + 1);
      return { name, key, mxHosts, limits, source, ...(route.kind === 'mx' ? { domain: route.domain } : {}) };
    },

    admit(site) {
      const r = records.get(site.key);
      const suspended = siteStatus(r) === 'suspended';
      if (suspended && r!.suspendedBy !== DEAD_BY)
        return {
          wait: {
            untilMs: Date.parse(r!.suspendedUntil!),
            reason: `site ${site.name} suspended until ${r!.suspendedUntil} (${r!.suspendedBy}: ${r!.reason ?? ''})`,
          },
        };
      const admission = dead.admit(site.key, suspended ? Date.parse(r!.suspendedUntil!) : undefined);
      if (admission === 'defer') return { defer: r?.reason ?? `site ${site.name} is not answering` };
      return { go: true, probe: admission === 'probe' };
    },

    async permit(site, job) {
      const { maxConnections, connectionsPerMinute } = site.limits;
      if (maxConnections === undefined && connectionsPerMinute === undefined) return FREE;
      let lease: Awaited<ReturnType<ConnectionLeases['acquire']>>;
      if (maxConnections !== undefined) {
        lease = await leases.acquire(site.key, maxConnections);
        if (!lease)
          return {
            untilMs: Date.now() + busyBackoffMs(job),
            reason: `site ${site.name} at its connection limit (${maxConnections})`,
          };
      }
      if (connectionsPerMinute !== undefined) {
        const { waitMs } = await buckets.takeOne(`${site.key}.cpm`, connectionsPerMinute);
        if (waitMs > 0) {
          if (lease) await leases.release(lease);
          return {
            untilMs: Date.now() + waitMs + Math.floor(Math.random() * 500),
            reason: `site ${site.name} at its connection rate (${connectionsPerMinute}/min)`,
          };
        }
      }
      if (!lease) return FREE;
      const held = lease;
      return {
        release: () => void leases.release(held),
        get lost() {
          return held.lost;
        },
      };
    },

    async messageToken(site, job) {
      const rate = site.limits.ratePerMinute;
      if (rate === undefined) return { waitMs: 0, reserved: false };
      const mine = job.siteWait?.token;
      // A token this job reserved on an earlier pass is spent now (or waited for), never taken twice.
      if (mine?.site === site.key) return { waitMs: Math.max(0, mine.at - Date.now()), reserved: true };
      return buckets.takeOne(`${site.key}.rate`, rate, true);
    },

    observe(site, outcomes, verdict, probe) {
      try {
        if (dead.record(site.key, verdict, probe)) markDead(site, outcomes);
        if (outcomes.length) observeReplies(site, outcomes);
      } catch (err) {
        log.error({ site: site.name, err: (err as Error).message }, 'response rule handling failed');
      }
    },

    volumes() {
      return [...volume].map(([name, messages]) => ({
        site: name,
        messages,
        state: siteStatus(records.get(siteKey(name))),
      }));
    },

    close() {
      clearInterval(sweeper);
      void watch.stop();
      leases.close();
    },
  };

  function observeReplies(site: JobSite, outcomes: RecipientOutcome[]) {
    const now = Date.now();
    const bad = outcomes.find((o) => o.status !== 'delivered');
    const rule = bad ? responseRuleFor(responses, bad.response) : undefined;
    if (rule && bad) {
      void applyRule(site, rule, bad.response).catch((err: Error) =>
        log.error({ site: site.name, rule: rule.id, err: err.message }, 'could not apply response rule'),
      );
    }
    // What `postern destinations list` shows: written when something new is seen, not per message.
    let s = seen.get(site.key);
    if (!s) {
      s = { domains: new Set(), limits: '', wroteAt: 0, replyAt: 0 };
      seen.set(site.key, s);
    }
    const limits = JSON.stringify([site.limits, site.source]);
    const newDomain = site.domain !== undefined && !s.domains.has(site.domain);
    const newReply = bad !== undefined && now - s.replyAt > 10_000;
    if (!newDomain && s.limits === limits && !newReply) return;
    if (!newReply && now - s.wroteAt < 5000 && !newDomain) return;
    if (site.domain) s.domains.add(site.domain);
    s.limits = limits;
    s.wroteAt = now;
    if (bad) s.replyAt = now;
    void updateSite(state, site.name, (r) => ({
      ...r,
      domains: site.domain ? addDomain(r.domains, site.domain) : r.domains,
      limits: site.limits,
      limitSource: site.source,
      ...(bad ? { lastReply: bad.response, lastReplyAt: new Date(now).toISOString() } : {}),
    })).catch((err: Error) => log.warn({ site: site.name, err: err.message }, 'site record not written'));
  }

  /**
   * Marks a site dead for `deadMs`: in this process at once, for every process through the watched record. A
   * suspension already in force (another process found it dead first, a rule, an operator) is left as it is.
   */
  function markDead(site: JobSite, outcomes: RecipientOutcome[]) {
    const now = Date.now();
    const until = new Date(now + deadMs).toISOString();
    const reason = outcomes[0]?.response ?? 'no answer';
    const cur = records.get(site.key);
    if (siteStatus(cur, now) !== 'suspended')
      records.set(site.key, {
        ...(cur ?? { site: site.name, domains: [], updatedAt: '' }),
        suspendedUntil: until,
        suspendedBy: DEAD_BY,
        reason,
      });
    void (async () => {
      const changed = await updateSite(state, site.name, (r) => {
        if (siteStatus(r, now) === 'suspended') return undefined;
        return { ...r, suspendedUntil: until, suspendedBy: DEAD_BY, reason };
      });
      if (!changed) return;
      log.warn({ site: site.name, until, reply: reason }, 'site.suspended: destination dead');
      await publishSiteEvent(js, {
        kind: 'site.suspended',
        site: site.name,
        at: new Date(now).toISOString(),
        until,
        by: DEAD_BY,
        reason,
      });
    })().catch((err: Error) => log.error({ site: site.name, err: err.message }, 'could not mark site dead'));
  }

  async function applyRule(site: JobSite, rule: ResponseRule, reply: string) {
    const now = Date.now();
    const until = new Date(now + rule.durationMs).toISOString();
    const by = `rule:${rule.id}`;
    // The same rule firing again for replies to sessions already under way changes nothing for a while.
    const fresh = (t: string | undefined) => t !== undefined && Date.parse(t) - now > rule.durationMs * 0.75;
    const changed = await updateSite(state, site.name, (r) => {
      if (rule.action === 'suspend') {
        if (fresh(r.suspendedUntil) && r.suspendedBy === by) return undefined;
        return { ...r, suspendedUntil: until, suspendedBy: by, reason: reply };
      }
      if (r.throttle?.by === by && fresh(r.throttle.until)) return undefined;
      const caps =
        rule.action === 'throttle'
          ? {
              ...(rule.ratePerMinute ? { ratePerMinute: rule.ratePerMinute } : {}),
              ...(rule.maxConnections ? { maxConnections: rule.maxConnections } : {}),
            }
          : slowdown(site.limits, rule);
      return { ...r, throttle: { ...caps, until, by }, reason: reply };
    });
    if (!changed) return;
    const { after } = changed;
    const kind = rule.action === 'suspend' ? 'site.suspended' : 'site.throttled';
    log.warn({ site: site.name, rule: rule.id, until, reply }, kind);
    await publishSiteEvent(js, {
      kind,
      site: site.name,
      at: new Date(now).toISOString(),
      until,
      by,
      reason: reply,
      ...(after.throttle && kind === 'site.throttled'
        ? {
            throttle: {
              ...(after.throttle.ratePerMinute ? { ratePerMinute: after.throttle.ratePerMinute } : {}),
              ...(after.throttle.maxConnections ? { maxConnections: after.throttle.maxConnections } : {}),
            },
          }
        : {}),
    });
  }

  return gate;
}

/**
 * How long a job waits when its site has no free connection: 1 s, doubling with each wait it already had, up to
 * 8 s (plus up to as much jitter) — a backlog for a site at its connection limit does not come back all at once.
 */
export function busyBackoffMs(job: Pick<DeliveryJob, 'siteWait'>): number {
  const base = 1000 * 2 ** Math.min(3, job.siteWait?.waits ?? 0);
  return base + Math.floor(Math.random() * base);
}

/** slowdown: the limits in force times the rule's factor (a site without a rate starts from fromRatePerMinute). */
export function slowdown(l: SiteLimits, rule: Pick<ResponseRule, 'factor' | 'fromRatePerMinute'>) {
  const f = rule.factor ?? 0.5;
  const rate = l.ratePerMinute ?? rule.fromRatePerMinute ?? 600;
  return {
    ratePerMinute: Math.max(1, Math.floor(rate * f)),
    ...(l.maxConnections !== undefined
      ? { maxConnections: Math.max(1, Math.floor(l.maxConnections * f)) }
      : {}),
  };
}

/** Clears suspensions and throttles whose time is up; the process whose compare-and-set wins says so. */
async function resumeExpired(state: KV, js: JetStreamClient, records: Map<string, SiteRecord>, log: Logger) {
  const now = Date.now();
  for (const r of [...records.values()]) {
    const expired =
      (r.suspendedUntil && Date.parse(r.suspendedUntil) <= now) ||
      (r.throttle && Date.parse(r.throttle.until) <= now);
    if (!expired) continue;
    try {
      const done = await updateSite(state, r.site, (cur) => {
        const next = { ...cur };
        let changed = false;
        if (next.suspendedUntil && Date.parse(next.suspendedUntil) <= now) {
          delete next.suspendedUntil;
          delete next.suspendedBy;
          changed = true;
        }
        if (next.throttle && Date.parse(next.throttle.until) <= now) {
          delete next.throttle;
          changed = true;
        }
        return changed ? next : undefined;
      });
      if (done && siteStatus(done.after, now) === 'normal') {
        log.info({ site: r.site }, 'site.resumed');
        await publishSiteEvent(js, {
          kind: 'site.resumed',
          site: r.site,
          at: new Date(now).toISOString(),
          by: 'expiry',
        });
      }
    } catch (err) {
      log.warn({ site: r.site, err: (err as Error).message }, 'could not clear an expired site state');
    }
  }
}

export { isLimited };
