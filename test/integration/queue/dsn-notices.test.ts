/**
 * The queue's RFC 3461 notices against a real nats-server, the test playing ingress and delivery: the delay
 * warning's once-only mark travels with the job and the state, and routing-time suppression honours NOTIFY.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { bodyText, eventually, policy, type QueueHarness, startHarness } from './harness.ts';

const deferred = { status: 'deferred' as const, response: '451 4.3.0 try again later', enhanced: '4.3.0' };

describe('queue: RFC 3461 notices', () => {
  let h: QueueHarness;
  before(async () => {
    h = await startHarness({
      policies: {
        'mail.warn': policy({ retry: { scheduleMs: [300], maxLifetimeMs: 3_600_000, delayWarningMs: 0 } }),
      },
    });
  });
  after(async () => {
    await h?.close();
  });

  const dsnEvents = (id: string) => h.events.filter((e) => e.kind === 'dsn' && e.messageId === id);

  it('sends one delay warning: the next attempts and the message state carry the mark', async () => {
    await h.submit({
      id: 'w1',
      to: ['slow@one.example'],
      policy: 'mail.warn',
      dsn: { envid: 'W1', recipients: { 'slow@one.example': { notify: ['DELAY', 'SUCCESS'] } } },
    });
    const first = await h.jobFor('w1');
    assert.deepEqual(first.job.dsn?.recipients?.['slow@one.example']?.notify, ['DELAY', 'SUCCESS']);
    await h.report(first.job, [deferred]);
    const second = await h.jobFor('w1', 2);
    assert.equal(second.job.delayWarned, true, 'attempt 2 knows the warning went');
    await eventually(
      'the state records the mark',
      async () => (await h.readState('w1'))?.jobs['w1.0']?.job.delayWarned,
    );
    const warning = await eventually('the delay warning', () =>
      h.submitted.find((e) => e.kind === 'dsn' && e.id.startsWith('w1-delay-')),
    );
    const text = bodyText(warning);
    assert.match(text, /Original-Envelope-Id: W1\r\n/);
    assert.match(text, /Action: delayed\r\nStatus: 4\.3\.0\r\n/);
    await h.report(second.job, [deferred]);
    const third = await h.jobFor('w1', 3);
    assert.equal(third.job.delayWarned, true);
    await h.report(third.job, [{ status: 'delivered', response: '250 2.0.0 ok', peerDsn: false }]);
    await eventually('delivered', () => h.events.find((e) => e.kind === 'delivered' && e.messageId === 'w1'));
    await eventually('the success notice, a message of its own', () =>
      h.submitted.find((e) => e.kind === 'dsn' && e.id.startsWith('w1-ok-')),
    );
    assert.deepEqual(
      dsnEvents('w1').map((e) => e.action),
      ['delayed', 'relayed'],
      'one warning, then the success notice',
    );
  });

  it('routing-time suppression: NOTIFY=NEVER stays silent, NOTIFY=FAILURE gets a DSN with its ORCPT', async () => {
    await h.submit({ id: 's1', to: ['gone@two.example'], policy: 'mail.warn' });
    const first = await h.jobFor('s1');
    await h.report(first.job, [{ status: 'failed', response: '550 5.1.1 unknown', enhanced: '5.1.1' }]);
    await eventually('suppressed after the hard bounce', () =>
      h.events.find((e) => e.kind === 'bounced' && e.messageId === 's1'),
    );
    await h.submit({
      id: 's2',
      to: ['gone@two.example'],
      policy: 'mail.warn',
      dsn: { recipients: { 'gone@two.example': { notify: ['NEVER'] } } },
    });
    await h.submit({
      id: 's3',
      to: ['gone@two.example'],
      policy: 'mail.warn',
      dsn: {
        envid: 'S3',
        recipients: { 'gone@two.example': { notify: ['FAILURE'], orcpt: 'rfc822;Gone@two.example' } },
      },
    });
    // 'received' is published after the routing-time DSN (and its dsn event).
    await eventually('s2 and s3 routed', () =>
      ['s2', 's3'].every((id) => h.events.some((e) => e.kind === 'received' && e.messageId === id)),
    );
    assert.deepEqual(dsnEvents('s2'), []);
    assert.equal(dsnEvents('s3').length, 1);
    const dsn = await eventually('the suppression DSN of s3', () =>
      h.submitted.find((e) => e.kind === 'dsn' && e.id.startsWith('s3')),
    );
    assert.match(
      bodyText(dsn),
      /Original-Recipient: rfc822; Gone@two\.example\r\nFinal-Recipient: rfc822; gone@two\.example/,
    );
  });
});
