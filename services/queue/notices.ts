/**
 * Which delivery status notifications one delivery attempt produces (RFC 3461 §5.2, RFC 3464): pure, so the
 * rules have a table test and move with the job lifecycle (issue #10).
 *
 * - failed / expired → a failure DSN, unless the recipient's NOTIFY leaves FAILURE out (NEVER included).
 *   Without NOTIFY: failures only, Postern's behaviour before DSN support (RFC 3461 §4.1 leaves the choice).
 * - deferred, NOTIFY has DELAY, the job was not warned yet and the message is older than the retry policy's
 *   delayWarningMs → one delay warning (Action: delayed) for those recipients; the job remembers it.
 * - delivered, NOTIFY has SUCCESS → a success notice unless the next hop advertised DSN: then the parameters were
 *   passed on and the next hop reports (§5.2.1, Postfix does the same). Otherwise `relayed` (§5.2.2) on
 *   smarthost/MX routes, `delivered` on mailbox routes: the domain's own mailbox store is final delivery
 *   (§5.2.3, like Postfix's lmtp_assume_final).
 * Whether any DSN may be sent at all (never to `<>`, never for a DSN) is mayBounce's decision (dsn.ts).
 */
import { DEFAULT_RETRY } from '../common/config/resolved.ts';
import type { DeliveryJob, DsnNotify, RecipientOutcome, Route } from '../common/types.ts';
import { dsnStatus, enhancedCode } from './bounce-codes.ts';
import type { DsnRecipient } from './dsn.ts';
import type { AttemptDecision } from './retry.ts';

export type NoticeKind = 'failure' | 'delay' | 'success';

const NOTIFY_OF: Record<NoticeKind, DsnNotify> = { failure: 'FAILURE', delay: 'DELAY', success: 'SUCCESS' };

/** Whether a recipient's NOTIFY asks for this kind of notice (absent NOTIFY: failures only). */
export function wantsNotice(notify: DsnNotify[] | undefined, kind: NoticeKind): boolean {
  if (!notify || notify.length === 0) return kind === 'failure';
  return notify.includes(NOTIFY_OF[kind]);
}

/** The Action of a success notice, or undefined when the next hop took the duty over (advertised DSN). */
export function successAction(
  route: Route,
  peerDsn: boolean | undefined,
): 'delivered' | 'relayed' | undefined {
  if (peerDsn) return undefined;
  return route.kind === 'mailbox' ? 'delivered' : 'relayed';
}

/** Whether a job's deferred recipients are due a delay warning at `now`. */
export function delayWarningDue(job: Omit<DeliveryJob, 'body'>, now: Date): boolean {
  if (job.delayWarned) return false;
  const after = job.retry.delayWarningMs ?? DEFAULT_RETRY.delayWarningMs!;
  return now.getTime() - Date.parse(job.receivedAt) >= after;
}

export interface AttemptNotices {
  /** Failed and expired recipients to report (Action: failed). */
  failure: DsnRecipient[];
  /** Deferred recipients to warn (Action: delayed). */
  delay: DsnRecipient[];
  /** Delivered recipients to report (Action: delivered or relayed). */
  success: DsnRecipient[];
}

/** The notices of one attempt (see the module comment); `d` is decideAttempt's verdict on it. */
export function planNotices(
  job: Omit<DeliveryJob, 'body'>,
  d: AttemptDecision,
  attemptedAt: string,
  now: Date,
): AttemptNotices {
  const notify = (r: string) => job.dsn?.recipients?.[r]?.notify;
  const line = (o: RecipientOutcome, reason: DsnRecipient['reason'], status: string): DsnRecipient => {
    const orcpt = job.dsn?.recipients?.[o.recipient]?.orcpt;
    return {
      recipient: o.recipient,
      status,
      reason,
      diagnostic: o.response,
      lastAttemptAt: attemptedAt,
      ...(o.remoteMta ? { remoteMta: o.remoteMta } : {}),
      ...(o.tls ? { tls: o.tls } : {}),
      ...(orcpt ? { orcpt } : {}),
    };
  };
  const failure = [
    ...d.failed
      .filter((o) => wantsNotice(notify(o.recipient), 'failure'))
      .map((o) => line(o, 'failed', dsnStatus(o.response, o.enhanced))),
    // RFC 3463 §3.5: 4.4.7 "delivery time expired".
    ...d.expired
      .filter((o) => wantsNotice(notify(o.recipient), 'failure'))
      .map((o) => line(o, 'expired', '4.4.7')),
  ];
  const deferred = d.next ? d.deferred.filter((o) => wantsNotice(notify(o.recipient), 'delay')) : [];
  const delay =
    deferred.length > 0 && delayWarningDue(job, now)
      ? deferred.map((o) => ({
          ...line(o, 'delayed', classStatus(o, '4')),
          willRetryUntil: job.expiresAt,
        }))
      : [];
  const success = d.delivered.flatMap((o) => {
    const action = successAction(job.route, o.peerDsn);
    return action && wantsNotice(notify(o.recipient), 'success')
      ? [line(o, action, classStatus(o, '2'))]
      : [];
  });
  return { failure, delay, success };
}

/** The outcome's enhanced code (given, or in the reply text) when it is of the expected class, else `<class>.0.0`. */
function classStatus(o: RecipientOutcome, cls: '2' | '4'): string {
  const code = enhancedCode(o.response, o.enhanced);
  return code?.startsWith(`${cls}.`) ? code : `${cls}.0.0`;
}
