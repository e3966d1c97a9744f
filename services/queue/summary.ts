/**
 * The shape of the queue (like Postfix's qshape): pending messages and recipients by site and age bucket, the
 * oldest message, and the most frequent deferral reasons. Pure: message states in, summary out.
 *
 * "Site" here is the job's destination as the queue knows it (router.ts `destinationKey`): the smarthost
 * `host:port`, the mailbox store `host:port`, or the recipient domain of an MX route. Domains that share MX hosts
 * are not rolled up here: that happens in delivery, after DNS, which the queue does not do.
 */
import { destinationKey } from '../common/router.ts';
import type { JobState, MessageState } from './state.ts';

/** qshape's columns: upper bounds in minutes; the last bucket holds everything older. */
export const AGE_BUCKETS_MINUTES = [5, 10, 20, 40, 80, 160, 320, 640, 1280] as const;
export const AGE_BUCKET_LABELS = [...AGE_BUCKETS_MINUTES.map(String), '1280+'];

export type SummaryStatus = 'all' | 'active' | 'deferred' | 'held';

export interface SiteShape {
  site: string;
  /** Messages with at least one pending recipient at this site. */
  messages: number;
  recipients: number;
  /** Messages per age bucket (AGE_BUCKET_LABELS), by time since the message was received. */
  messagesByAge: number[];
  recipientsByAge: number[];
  /** Recipients by job status. */
  active: number;
  deferred: number;
  held: number;
}

export interface DeferralReason {
  /** The last reply (or error) of deferred attempts, with long numbers and hex ids collapsed to `…`. */
  reason: string;
  recipients: number;
  messages: number;
  /** Up to three sites that answered it. */
  sites: string[];
}

export interface QueueSummary {
  generatedAt: string;
  status: SummaryStatus;
  buckets: string[];
  total: SiteShape;
  /** Sites by pending recipients, largest first, at most `top`; the rest are summed in `other`. */
  sites: SiteShape[];
  other?: SiteShape & { sites: number };
  oldest?: { id: string; receivedAt: string; ageSeconds: number; sites: string[] };
  topReasons: DeferralReason[];
}

function emptyShape(site: string): SiteShape {
  const zeros = () => AGE_BUCKET_LABELS.map(() => 0);
  return {
    site,
    messages: 0,
    recipients: 0,
    messagesByAge: zeros(),
    recipientsByAge: zeros(),
    active: 0,
    deferred: 0,
    held: 0,
  };
}

/** Index of the age bucket for an age in minutes: the first bound it is below, else the last ("1280+"). */
export function ageBucket(ageMinutes: number): number {
  const i = AGE_BUCKETS_MINUTES.findIndex((bound) => ageMinutes < bound);
  return i === -1 ? AGE_BUCKETS_MINUTES.length : i;
}

/** Groups replies that differ only in queue ids, timestamps or other long numbers. */
export function normaliseReason(response: string): string {
  return response
    .replace(/\s+/g, ' ')
    .replace(/\b[0-9A-F]{8,}\b/gi, '…')
    .replace(/\b\d{5,}\b/g, '…')
    .trim()
    .slice(0, 160);
}

function add(shape: SiteShape, into: SiteShape): void {
  into.messages += shape.messages;
  into.recipients += shape.recipients;
  into.active += shape.active;
  into.deferred += shape.deferred;
  into.held += shape.held;
  shape.messagesByAge.forEach((n, i) => {
    into.messagesByAge[i] = (into.messagesByAge[i] ?? 0) + n;
  });
  shape.recipientsByAge.forEach((n, i) => {
    into.recipientsByAge[i] = (into.recipientsByAge[i] ?? 0) + n;
  });
}

function selected(job: JobState, status: SummaryStatus): boolean {
  if (job.status === 'final') return false;
  return status === 'all' || job.status === status;
}

/** Builds the summary of `states` at `now`: `top` sites (default 50) and `reasons` deferral reasons (default 10). */
export function summarizeQueue(
  states: Iterable<MessageState>,
  opts: { now?: number; status?: SummaryStatus; top?: number; reasons?: number } = {},
): QueueSummary {
  const now = opts.now ?? Date.now();
  const status = opts.status ?? 'all';
  const bySite = new Map<string, SiteShape>();
  const total = emptyShape('TOTAL');
  const reasons = new Map<string, { recipients: number; messages: Set<string>; sites: Set<string> }>();
  let oldest: QueueSummary['oldest'];

  for (const s of states) {
    const jobs = Object.values(s.jobs).filter((j) => selected(j, status));
    if (jobs.length === 0) continue;
    const ageSeconds = Math.max(0, (now - Date.parse(s.receivedAt)) / 1000);
    const bucket = ageBucket(ageSeconds / 60);
    const sitesOfMessage = new Set<string>();
    let recipientsOfMessage = 0;
    for (const j of jobs) {
      const site = destinationKey(j.job.route);
      let shape = bySite.get(site);
      if (!shape) {
        shape = emptyShape(site);
        bySite.set(site, shape);
      }
      const n = j.job.recipients.length;
      if (!sitesOfMessage.has(site)) {
        shape.messages++;
        shape.messagesByAge[bucket] = (shape.messagesByAge[bucket] ?? 0) + 1;
        sitesOfMessage.add(site);
      }
      shape.recipients += n;
      shape.recipientsByAge[bucket] = (shape.recipientsByAge[bucket] ?? 0) + n;
      const state = j.status as 'active' | 'deferred' | 'held';
      shape[state] += n;
      total[state] += n;
      recipientsOfMessage += n;
      if ((j.status === 'deferred' || j.status === 'held') && j.lastResponse) {
        const reason = normaliseReason(j.lastResponse);
        let r = reasons.get(reason);
        if (!r) {
          r = { recipients: 0, messages: new Set(), sites: new Set() };
          reasons.set(reason, r);
        }
        r.recipients += n;
        r.messages.add(s.id);
        if (r.sites.size < 3) r.sites.add(site);
      }
    }
    total.messages++;
    total.messagesByAge[bucket] = (total.messagesByAge[bucket] ?? 0) + 1;
    total.recipients += recipientsOfMessage;
    total.recipientsByAge[bucket] = (total.recipientsByAge[bucket] ?? 0) + recipientsOfMessage;
    if (!oldest || Date.parse(s.receivedAt) < Date.parse(oldest.receivedAt)) {
      oldest = {
        id: s.id,
        receivedAt: s.receivedAt,
        ageSeconds: Math.round(ageSeconds),
        sites: [...sitesOfMessage],
      };
    }
  }

  const ranked = [...bySite.values()].sort(
    (a, b) => b.recipients - a.recipients || b.messages - a.messages || (a.site < b.site ? -1 : 1),
  );
  const top = opts.top ?? 50;
  const rest = ranked.slice(top);
  let other: QueueSummary['other'];
  if (rest.length) {
    const shape = emptyShape('other');
    for (const r of rest) add(r, shape);
    other = { ...shape, sites: rest.length };
  }
  const topReasons = [...reasons.entries()]
    .map(([reason, r]) => ({
      reason,
      recipients: r.recipients,
      messages: r.messages.size,
      sites: [...r.sites],
    }))
    .sort((a, b) => b.recipients - a.recipients || (a.reason < b.reason ? -1 : 1))
    .slice(0, opts.reasons ?? 10);
  return {
    generatedAt: new Date(now).toISOString(),
    status,
    buckets: AGE_BUCKET_LABELS,
    total,
    sites: ranked.slice(0, top),
    ...(other ? { other } : {}),
    ...(oldest ? { oldest } : {}),
    topReasons,
  };
}
