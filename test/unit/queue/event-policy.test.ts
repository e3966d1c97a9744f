/**
 * Mail events name the RelayPolicy the message was relayed under (`policy`), so webhooks can filter on it:
 * received and suppressed from the routing plan, delivered / deferred / bounced / expired from the job.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeliveryJob, Envelope, MailEvent } from '../../../services/common/types.ts';
import { type Output, transition } from '../../../services/queue/lifecycle.ts';
import type { MessageState } from '../../../services/queue/state.ts';

const T0 = new Date('2026-11-26T10:00:00.000Z');
const body = { inline: '' };
const job: DeliveryJob = {
  jobId: 'm1.0',
  messageId: 'm1',
  attempt: 1,
  from: 'app@corp.test',
  recipients: ['bob@example.net'],
  route: { kind: 'smarthost', host: '127.0.0.1', port: 2526, tls: 'none' },
  pool: 'default',
  body,
  receivedAt: T0.toISOString(),
  expiresAt: '2026-12-01T10:00:00.000Z',
  retry: { scheduleMs: [60_000], maxLifetimeMs: 432_000_000 },
  kind: 'mail',
  policy: 'mail/submission',
};
const envelope: Envelope = {
  id: 'm1',
  from: 'app@corp.test',
  to: ['bob@example.net', 'eve@example.net'],
  receivedAt: T0.toISOString(),
  client: { address: '127.0.0.1', helo: 'client.test', tls: false },
  size: 0,
  body,
  policy: 'mail.submission',
};

const events = (outputs: Output[]) =>
  outputs
    .filter((o): o is Extract<Output, { kind: 'event' }> => o.kind === 'event')
    .map((o) => o.event as MailEvent);

describe('mail events carry the relaying policy', () => {
  it('received and suppressed take it from the routing plan', () => {
    const t = transition(undefined, {
      kind: 'submitted',
      envelope,
      plan: { jobs: [job], suppressed: ['eve@example.net'], policy: 'mail/submission' },
      at: T0,
    });
    const evs = events(t.after);
    assert.deepEqual(
      evs.map((e) => [e.kind, e.policy]),
      [
        ['suppressed', 'mail/submission'],
        ['received', 'mail/submission'],
      ],
    );
  });

  it('attempt outcomes take it from the job; mail no policy relayed has none', () => {
    const { body: _b, ...stored } = job;
    const state: MessageState = {
      id: 'm1',
      from: job.from,
      receivedAt: job.receivedAt,
      kind: 'mail',
      body,
      jobs: { 'm1.0': { status: 'active', attempt: 1, job: stored } },
      final: {},
    };
    const result = (j: typeof stored) => ({
      job: j,
      outcomes: [{ recipient: 'bob@example.net', status: 'delivered' as const, response: '250 ok' }],
      attemptedAt: T0.toISOString(),
      durationMs: 5,
    });
    const t = transition(state, { kind: 'attempted', result: result(stored), at: T0 });
    assert.deepEqual(
      events([...t.before, ...t.after]).map((e) => [e.kind, e.policy]),
      [['delivered', 'mail/submission']],
    );
    const { policy: _p, ...inbound } = stored;
    const t2 = transition(
      { ...state, jobs: { 'm1.0': { status: 'active', attempt: 1, job: inbound } } },
      { kind: 'attempted', result: result(inbound), at: T0 },
    );
    assert.equal(events([...t2.before, ...t2.after])[0]?.policy, undefined);
  });
});
