import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeliveryJob, DsnNotify, RecipientOutcome, Route } from '../../../services/common/types.ts';
import { planNotices, successAction, wantsNotice } from '../../../services/queue/notices.ts';
import { decideAttempt } from '../../../services/queue/retry.ts';

const smarthost: Route = { kind: 'smarthost', host: '127.0.0.9', port: 25, tls: 'none' };
const mailbox: Route = { kind: 'mailbox', host: '127.0.0.5', port: 24, protocol: 'lmtp', tls: 'none' };
const received = '2030-01-01T00:00:00.000Z';

function job(notify: DsnNotify[] | undefined, extra: Partial<DeliveryJob> = {}): Omit<DeliveryJob, 'body'> {
  return {
    jobId: 'm1.0',
    messageId: 'm1',
    attempt: 1,
    from: 'alice@corp.test',
    recipients: ['bob@far.test'],
    route: smarthost,
    pool: 'default',
    receivedAt: received,
    expiresAt: '2030-01-06T00:00:00.000Z',
    retry: { scheduleMs: [60_000], maxLifetimeMs: 5 * 86_400_000, delayWarningMs: 4 * 3_600_000 },
    kind: 'mail',
    ...(notify ? { dsn: { recipients: { 'bob@far.test': { notify, orcpt: 'rfc822;Bob@far.test' } } } } : {}),
    ...extra,
  };
}

const outcome = (status: RecipientOutcome['status'], peerDsn?: boolean): RecipientOutcome => ({
  recipient: 'bob@far.test',
  status,
  response: { delivered: '250 2.0.0 Ok', deferred: '451 4.3.0 later', failed: '550 5.1.1 unknown' }[status],
  enhanced: { delivered: '2.0.0', deferred: '4.3.0', failed: '5.1.1' }[status],
  ...(peerDsn !== undefined ? { peerDsn } : {}),
});

/** What one attempt notifies: [failure, delay, success] actions (empty string = none). */
function plan(j: Omit<DeliveryJob, 'body'>, o: RecipientOutcome, hoursAfterReceipt = 0) {
  const now = new Date(Date.parse(received) + hoursAfterReceipt * 3_600_000);
  const d = decideAttempt({ job: j, outcomes: [o], attemptedAt: now.toISOString(), durationMs: 1 }, now);
  const n = planNotices(j, d, now.toISOString(), now);
  return [n.failure, n.delay, n.success].map((list) => list.map((r) => r.reason).join(','));
}

describe('which notifications an attempt produces (RFC 3461 §5.2)', () => {
  const table: [string, Omit<DeliveryJob, 'body'>, RecipientOutcome, number, string[]][] = [
    ['failure without NOTIFY → failure DSN', job(undefined), outcome('failed'), 0, ['failed', '', '']],
    ['failure, NOTIFY=NEVER → nothing', job(['NEVER']), outcome('failed'), 0, ['', '', '']],
    ['failure, NOTIFY=SUCCESS → nothing', job(['SUCCESS']), outcome('failed'), 0, ['', '', '']],
    ['failure, NOTIFY=FAILURE → failure DSN', job(['FAILURE']), outcome('failed'), 0, ['failed', '', '']],
    ['delivered without NOTIFY → nothing', job(undefined), outcome('delivered', false), 0, ['', '', '']],
    [
      'delivered, SUCCESS, next hop without DSN → relayed',
      job(['SUCCESS']),
      outcome('delivered', false),
      0,
      ['', '', 'relayed'],
    ],
    [
      'delivered, SUCCESS, next hop with DSN → nothing (it reports)',
      job(['SUCCESS']),
      outcome('delivered', true),
      0,
      ['', '', ''],
    ],
    [
      'delivered to the mailbox store, SUCCESS → delivered',
      job(['SUCCESS'], { route: mailbox }),
      outcome('delivered', false),
      0,
      ['', '', 'delivered'],
    ],
    [
      'deferred, DELAY, before the warning time → nothing',
      job(['DELAY']),
      outcome('deferred'),
      1,
      ['', '', ''],
    ],
    [
      'deferred, DELAY, after the warning time → delayed',
      job(['DELAY']),
      outcome('deferred'),
      5,
      ['', 'delayed', ''],
    ],
    [
      'deferred, DELAY, already warned → nothing',
      job(['DELAY'], { delayWarned: true }),
      outcome('deferred'),
      5,
      ['', '', ''],
    ],
    [
      'deferred without NOTIFY, after the warning time → nothing',
      job(undefined),
      outcome('deferred'),
      5,
      ['', '', ''],
    ],
    [
      'deferred, DELAY, short delayWarning → delayed at once',
      job(['DELAY'], { retry: { scheduleMs: [1000], maxLifetimeMs: 3_600_000, delayWarningMs: 0 } }),
      outcome('deferred'),
      0,
      ['', 'delayed', ''],
    ],
    [
      'expired, NOTIFY=DELAY only → nothing',
      job(['DELAY'], { expiresAt: received }),
      outcome('deferred'),
      1,
      ['', '', ''],
    ],
    [
      'expired without NOTIFY → failure DSN',
      job(undefined, { expiresAt: received }),
      outcome('deferred'),
      1,
      ['expired', '', ''],
    ],
  ];
  for (const [name, j, o, hours, expected] of table) {
    it(name, () => assert.deepEqual(plan(j, o, hours), expected));
  }

  it('reports ORCPT, the class status and, for a delay, when retrying ends', () => {
    const j = job(['DELAY', 'SUCCESS']);
    const now = new Date(Date.parse(received) + 5 * 3_600_000);
    const d = decideAttempt(
      { job: j, outcomes: [outcome('deferred')], attemptedAt: now.toISOString(), durationMs: 1 },
      now,
    );
    const [line] = planNotices(j, d, now.toISOString(), now).delay;
    assert.equal(line?.orcpt, 'rfc822;Bob@far.test');
    assert.equal(line?.status, '4.3.0');
    assert.equal(line?.willRetryUntil, j.expiresAt);
  });

  it('NOTIFY values and success actions', () => {
    assert.ok(wantsNotice(undefined, 'failure'));
    assert.ok(!wantsNotice(undefined, 'delay'));
    assert.ok(!wantsNotice(['NEVER'], 'failure'));
    assert.equal(successAction(smarthost, undefined), 'relayed');
    assert.equal(successAction(mailbox, false), 'delivered');
    assert.equal(successAction(mailbox, true), undefined);
  });
});
