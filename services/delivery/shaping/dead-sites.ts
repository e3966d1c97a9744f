/**
 * Dead sites (docs/delivery.md "Dead sites"): what Postfix's qmgr does when a destination's cohort of attempts
 * all fail — it marks the destination dead and defers its remaining mail without connecting ("delivery
 * temporarily suspended"), until a timer lets one probe through. Here: a site whose attempts in a row found it
 * down (connection refused or timed out, a 4xx greeting, a 4xx for every recipient) is suspended in KV `sites`
 * for `deadMs` with `suspendedBy: 'dead'`; every delivery process watches that bucket, and defers the site's jobs
 * at once with an ordinary deferral. When the spell is over, each process lets one job through as a probe and
 * defers the others until it answers: a delivered probe clears the state, a failed one marks the site dead again.
 *
 * This module holds the decisions (pure, per process); shaping/gate.ts holds the shared state.
 */
import type { RecipientOutcome } from '../../common/types.ts';
import { classifyError, classifyReply, type ErrorLike } from '../classify.ts';

/** `suspendedBy` of a suspension written because the site was found dead. */
export const DEAD_BY = 'dead';

/** What one attempt says about its site: it answered, it is down, or nothing either way (local trouble). */
export type SiteVerdict = 'up' | 'down' | 'neutral';

/**
 * Reply categories (classify.ts) that say the site is not taking mail now. Not greylisting and not a full mailbox:
 * those are about one sender or recipient, and a greylisted triplet only passes if it is really tried again.
 */
const DOWN = new Set(['transient', 'protocol', 'network', 'timeout', 'dns']);

/** The verdict of a session's replies: every recipient deferred for a site-level reason = down. */
export function outcomesVerdict(outcomes: RecipientOutcome[]): SiteVerdict {
  if (outcomes.length === 0) return 'neutral';
  if (outcomes.some((o) => o.status !== 'deferred')) return 'up';
  return outcomes.every((o) => DOWN.has(classifyReply(o.response).category)) ? 'down' : 'neutral';
}

/** The verdict of a failure to get or keep a session (connect, greeting, EHLO, TLS, a connection lost). */
export function errorVerdict(err: ErrorLike): SiteVerdict {
  return DOWN.has(classifyError(err).category) ? 'down' : 'neutral';
}

/** The reply a job of a dead site is deferred with (RFC 3463 X.4.1: no answer from host). */
export function suspendedOutcomes(recipients: string[], reason: string): RecipientOutcome[] {
  return recipients.map((recipient) => ({
    recipient,
    status: 'deferred',
    response: `delivery temporarily suspended: ${reason}`,
    enhanced: '4.4.1',
  }));
}

/** Before a job: go, go as the probe of a site whose dead spell is over, or defer without a connection. */
export type DeadAdmission = 'go' | 'probe' | 'defer';

/**
 * One process's view: consecutive down verdicts per site, the end of the last dead spell it saw, the probe in
 * flight. Sites are KV keys (`siteKey`). Memory: sites with failures in a row, or a dead spell within `deadMs`.
 */
export class DeadSites {
  private readonly fails = new Map<string, number>();
  private readonly spellEnd = new Map<string, number>();
  private readonly probing = new Set<string>();
  private readonly opts: { after: number; deadMs: number };

  constructor(opts: { after: number; deadMs: number }) {
    this.opts = opts;
  }

  /** `deadUntil`: the end of a dead suspension in force for the site (from the watched record), if any. */
  admit(site: string, deadUntil: number | undefined, now = Date.now()): DeadAdmission {
    if (deadUntil !== undefined && deadUntil > now) {
      this.spellEnd.set(site, deadUntil);
      return 'defer';
    }
    const ended = this.spellEnd.get(site);
    if (ended === undefined) return 'go';
    // A spell long over with no job since: the site starts afresh.
    if (now - ended > this.opts.deadMs) {
      this.spellEnd.delete(site);
      this.probing.delete(site);
      return 'go';
    }
    if (this.probing.has(site)) return 'defer';
    this.probing.add(site);
    return 'probe';
  }

  /** After an attempt (or a probe that did not get to try): true = mark the site dead now. */
  record(site: string, verdict: SiteVerdict, probe: boolean): boolean {
    if (probe) this.probing.delete(site);
    if (verdict === 'up') {
      this.fails.delete(site);
      this.spellEnd.delete(site);
      return false;
    }
    if (verdict === 'neutral') return false;
    const n = (this.fails.get(site) ?? 0) + 1;
    if (probe || n >= this.opts.after) {
      this.fails.delete(site);
      return true;
    }
    this.fails.set(site, n);
    return false;
  }
}
