import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeliveryJob, DeliveryResult } from '../../../services/common/types.ts';
import { decideAttempt, retryDelayMs } from '../../../services/queue/retry.ts';

const job: DeliveryJob = {
  jobId: 'm1.0',
  messageId: 'm1',
  attempt: 1,
  from: 'a@corp.test',
  recipients: ['ok@x.example', 'bad@x.example', 'later@x.example'],
  route: { kind: 'mx', domain: 'x.example', tls: 'opportunistic' },
  pool: 'default',
  body: { inline: '' },
  receivedAt: '2030-01-01T00:00:00.000Z',
  expiresAt: '2030-01-01T01:00:00.000Z',
  retry: { scheduleMs: [60_000, 600_000], maxLifetimeMs: 3_600_000 },
  kind: 'mail',
};

function result(j: DeliveryJob): DeliveryResult {
  return {
    job: j,
    outcomes: [
      { recipient: 'ok@x.example', status: 'delivered', response: '250 ok' },
      { recipient: 'bad@x.example', status: 'failed', response: '550 5.1.1 unknown' },
      { recipient: 'later@x.example', status: 'deferred', response: '451 4.3.0 later' },
    ],
    attemptedAt: '2030-01-01T00:00:01.000Z',
    durationMs: 5,
  };
}

describe('retry schedule', () => {
  it('uses scheduleMs[attempt-1], repeating the last entry', () => {
    const retry = { scheduleMs: [1, 2, 3], maxLifetimeMs: 10 };
    assert.deepEqual(
      [1, 2, 3, 4, 9].map((a) => retryDelayMs(retry, a)),
      [1, 2, 3, 3, 3],
    );
  });

  it('finalises delivered and failed recipients and schedules the deferred ones as attempt+1', () => {
    const d = decideAttempt(result(job), new Date('2030-01-01T00:00:01.000Z'));
    assert.deepEqual(
      d.delivered.map((o) => o.recipient),
      ['ok@x.example'],
    );
    assert.deepEqual(
      d.failed.map((o) => o.recipient),
      ['bad@x.example'],
    );
    assert.deepEqual(d.expired, []);
    assert.equal(d.next?.job.attempt, 2);
    assert.deepEqual(d.next?.job.recipients, ['later@x.example']);
    assert.equal(d.next?.due.toISOString(), '2030-01-01T00:01:01.000Z');
  });

  it('expires deferred recipients whose next attempt would fall after the max lifetime', () => {
    const d = decideAttempt(result({ ...job, attempt: 2 }), new Date('2030-01-01T00:55:00.000Z'));
    assert.equal(d.next, undefined);
    assert.deepEqual(
      d.expired.map((o) => o.recipient),
      ['later@x.example'],
    );
  });

  it('retries a recipient the worker reported nothing for rather than losing it', () => {
    const d = decideAttempt({ ...result(job), outcomes: [] }, new Date('2030-01-01T00:00:01.000Z'));
    assert.deepEqual(d.next?.job.recipients, job.recipients);
  });
});
