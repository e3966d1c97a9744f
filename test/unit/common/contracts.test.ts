import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  encodeContract,
  NewerContractError,
  readDeliveryJob,
  readDeliveryResult,
  readEnvelope,
  readMailEvent,
} from '../../../services/common/contracts.ts';
import { CONTRACT_VERSION, type DeliveryJob, type Envelope } from '../../../services/common/types.ts';

const envelope: Envelope = {
  id: 'm1',
  from: 'alice@corp.test',
  to: ['bob@example.net'],
  receivedAt: '2026-11-26T10:00:00.000Z',
  client: { address: '127.0.0.1', helo: 'client.test', tls: false },
  size: 12,
  body: { inline: 'SGVsbG8=' },
};

const job: DeliveryJob = {
  jobId: 'm1.0',
  messageId: 'm1',
  attempt: 1,
  from: 'alice@corp.test',
  recipients: ['bob@example.net'],
  route: { kind: 'mx', domain: 'example.net', tls: 'opportunistic' },
  pool: 'default',
  body: { stored: 'm1', size: 20000 },
  receivedAt: envelope.receivedAt,
  expiresAt: '2026-11-31T10:00:00.000Z',
  retry: { scheduleMs: [60000], maxLifetimeMs: 432000000 },
  kind: 'mail',
};

describe('contracts between services', () => {
  it('a published message is stamped with the contract version and reads back unchanged', () => {
    const text = encodeContract(envelope);
    assert.equal(JSON.parse(text).v, 1);
    assert.deepEqual(readEnvelope(text), { ...envelope, v: 1 });
  });

  it('a message written before the version field existed is read as version 1', () => {
    assert.deepEqual(readEnvelope(JSON.stringify(envelope)), envelope);
    assert.deepEqual(readDeliveryJob(JSON.stringify(job)), job);
  });

  it('carries the RFC 3461 parameters and refuses a NOTIFY value that is not one', () => {
    const dsn = { ret: 'HDRS', envid: 'e1', recipients: { 'bob@example.net': { notify: ['SUCCESS'] } } };
    assert.deepEqual(readEnvelope(JSON.stringify({ ...envelope, dsn })).dsn, dsn);
    const bad = { recipients: { 'bob@example.net': { notify: ['SOMETIMES'] } } };
    assert.throws(() => readEnvelope(JSON.stringify({ ...envelope, dsn: bad })), /invalid Envelope: \/dsn/);
  });

  it('a message from a newer writer is refused rather than misread, and told apart from a malformed one', () => {
    assert.throws(() => readEnvelope(JSON.stringify({ ...envelope, v: 0 })), /invalid Envelope: \/v/);
    // A later version is not malformed: a newer release wrote it; consumers hand it back instead of terminating it.
    assert.throws(
      () => readEnvelope(JSON.stringify({ ...envelope, v: CONTRACT_VERSION + 1, added: true })),
      (err: unknown) =>
        err instanceof NewerContractError &&
        /contract version 2, this release reads up to 1/.test(String(err)),
    );
    assert.throws(
      () => readEnvelope(JSON.stringify({ ...envelope, to: [] })),
      (err: unknown) => !(err instanceof NewerContractError),
    );
  });

  // Each row: what a consumer reads, and the field its error must name.
  const refused: [string, () => unknown, RegExp][] = [
    ['an envelope without recipients', () => readEnvelope(JSON.stringify({ ...envelope, to: [] })), /\/to/],
    [
      'an envelope without a body',
      () => readEnvelope(JSON.stringify({ ...envelope, body: undefined })),
      /\/body/,
    ],
    [
      'an envelope with a receipt time that is not a date',
      () => readEnvelope(JSON.stringify({ ...envelope, receivedAt: 'yesterday' })),
      /\/receivedAt/,
    ],
    [
      'a job with an unknown route kind',
      () => readDeliveryJob(JSON.stringify({ ...job, route: { kind: 'pigeon' } })),
      /\/route/,
    ],
    ['a job at attempt 0', () => readDeliveryJob(JSON.stringify({ ...job, attempt: 0 })), /\/attempt/],
    [
      'a result whose outcome has an unknown status',
      () =>
        readDeliveryResult(
          JSON.stringify({
            job,
            outcomes: [{ recipient: 'bob@example.net', status: 'lost', response: '?' }],
            attemptedAt: envelope.receivedAt,
            durationMs: 3,
          }),
        ),
      /\/outcomes\/0\/status/,
    ],
    [
      'an event of an unknown kind',
      () => readMailEvent(JSON.stringify({ kind: 'x', messageId: 'm1', at: 'now' })),
      /\/kind/,
    ],
    ['text that is not JSON', () => readEnvelope('not json'), /JSON/],
  ];
  for (const [name, read, field] of refused) {
    it(`refuses ${name}, naming the field`, () => assert.throws(read, field));
  }
});
