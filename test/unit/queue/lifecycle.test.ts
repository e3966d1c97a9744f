import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type {
  DeliveryJob,
  DeliveryResult,
  Envelope,
  RecipientOutcome,
} from '../../../services/common/types.ts';
import {
  type LifecycleEvent,
  type Output,
  type Transition,
  transition,
} from '../../../services/queue/lifecycle.ts';
import type { JobState, MessageState } from '../../../services/queue/state.ts';

const T0 = new Date('2026-11-26T10:00:00.000Z');
const LATER = new Date('2026-11-26T10:05:00.000Z');
const body = { stored: 'm1', size: 20_000 };

function job(over: Partial<DeliveryJob> = {}): DeliveryJob {
  return {
    jobId: 'm1.0',
    messageId: 'm1',
    attempt: 1,
    from: 'alice@corp.test',
    recipients: ['bob@example.net', 'carol@example.net'],
    route: { kind: 'mx', domain: 'example.net', tls: 'opportunistic' },
    pool: 'default',
    body,
    receivedAt: T0.toISOString(),
    expiresAt: '2026-12-01T10:00:00.000Z',
    retry: { scheduleMs: [60_000], maxLifetimeMs: 432_000_000 },
    kind: 'mail',
    ...over,
  };
}

const stored = (j: DeliveryJob): JobState['job'] => {
  const { body: _body, ...rest } = j;
  return rest;
};

/** A message with one job (m1.0) in the given status, and optionally a second job (m1.1) still active. */
function message(status: JobState['status'], over: Partial<JobState> = {}, second = false): MessageState {
  const attempt = over.attempt ?? 1;
  const jobs: Record<string, JobState> = {
    'm1.0': { status, attempt, job: stored(job({ attempt })), ...over },
  };
  if (second) {
    jobs['m1.1'] = {
      status: 'active',
      attempt: 1,
      job: stored(
        job({
          jobId: 'm1.1',
          recipients: ['dan@other.test'],
          route: { kind: 'mx', domain: 'other.test', tls: 'opportunistic' },
        }),
      ),
    };
  }
  return {
    id: 'm1',
    from: 'alice@corp.test',
    receivedAt: T0.toISOString(),
    kind: 'mail',
    body,
    jobs,
    final: {},
  };
}

const envelope: Envelope = {
  id: 'm1',
  from: 'alice@corp.test',
  to: ['bob@example.net', 'carol@example.net', 'eve@example.net'],
  receivedAt: T0.toISOString(),
  client: { address: '127.0.0.1', helo: 'client.test', tls: false },
  size: 20_000,
  body,
};

function attempted(outcomes: Omit<RecipientOutcome, 'recipient'>[], j = job()): LifecycleEvent {
  const { body: _body, ...rest } = j;
  const result: DeliveryResult = {
    job: rest,
    outcomes: outcomes.map((o, i) => ({ recipient: j.recipients[i]!, ...o })),
    attemptedAt: LATER.toISOString(),
    durationMs: 5,
  };
  return { kind: 'attempted', result, at: LATER };
}

/** The result of a direct job (routed at receipt: no state), carrying its body unless `withBody` is false. */
function directAttempt(outcomes: Omit<RecipientOutcome, 'recipient'>[], withBody = true): LifecycleEvent {
  const e = attempted(outcomes, job({ direct: true }));
  if (e.kind !== 'attempted') throw new Error('unreachable');
  return { ...e, result: { ...e.result, ...(withBody ? { body } : {}) } };
}

const ok = { status: 'delivered', response: '250 2.0.0 queued' } as const;
const later = { status: 'deferred', response: '451 4.7.1 try later' } as const;
const gone = { status: 'failed', response: '550 5.1.1 no such user' } as const;
const spam = { status: 'failed', response: '554 5.7.1 spam' } as const;

/** Outputs as short strings, for readable expectations. */
function describeOutputs(list: Output[]): string[] {
  return list.map((o) => {
    switch (o.kind) {
      case 'publish':
        return `publish ${o.job.jobId} a${o.job.attempt}`;
      case 'schedule':
        return `schedule ${o.job.jobId} a${o.job.attempt} ${o.msgID}`;
      case 'unschedule':
        return `unschedule ${o.jobId}`;
      case 'event':
        return `event ${o.event.kind} ${(o.event.recipients ?? []).join(',')}`;
      case 'dsn':
        return `dsn ${o.recipients.map((r) => `${r.recipient}:${r.status}`).join(',')}`;
      case 'suppress':
        return `suppress ${o.recipient}`;
      default:
        return o.kind;
    }
  });
}

interface Row {
  name: string;
  state: MessageState | undefined;
  event: LifecycleEvent;
  write: Transition['write'];
  jobs?: Record<string, Partial<JobState>>;
  final?: Record<string, string>;
  before?: string[];
  after?: string[];
}

const rows: Row[] = [
  {
    name: 'submitted: the state is created and lists one job per destination, published after it',
    state: undefined,
    event: {
      kind: 'submitted',
      envelope,
      plan: { jobs: [job()], suppressed: ['eve@example.net'] },
      at: T0,
    },
    write: 'create',
    jobs: { 'm1.0': { status: 'active', attempt: 1 } },
    final: { 'eve@example.net': 'suppressed' },
    before: [],
    after: [
      'publish m1.0 a1',
      'event suppressed eve@example.net',
      'dsn eve@example.net:5.1.1',
      'event received bob@example.net,carol@example.net,eve@example.net',
    ],
  },
  {
    name: 'submitted again (redelivery): the stored state stands and its first-attempt jobs are republished',
    state: message('active'),
    event: {
      kind: 'submitted',
      envelope,
      plan: { jobs: [job({ jobId: 'other' })], suppressed: [] },
      at: LATER,
    },
    write: 'none',
    jobs: { 'm1.0': { status: 'active' } },
    after: ['publish m1.0 a1', 'event received bob@example.net,carol@example.net,eve@example.net'],
  },
  {
    name: 'submitted on hold (ingress quarantined it): the jobs are created held and nothing is published',
    state: undefined,
    event: {
      kind: 'submitted',
      envelope: { ...envelope, hold: 'dmarc-quarantine corp.test' },
      plan: { jobs: [job()], suppressed: [] },
      at: T0,
    },
    write: 'create',
    jobs: { 'm1.0': { status: 'held', attempt: 1 } },
    before: [],
    after: ['event received bob@example.net,carol@example.net,eve@example.net'],
  },
  {
    name: 'submitted with every recipient suppressed: no state, and the body goes after the DSN',
    state: undefined,
    event: {
      kind: 'submitted',
      envelope: { ...envelope, to: ['eve@example.net'] },
      plan: { jobs: [], suppressed: ['eve@example.net'] },
      at: T0,
    },
    write: 'none',
    after: [
      'event suppressed eve@example.net',
      'dsn eve@example.net:5.1.1',
      'event received eve@example.net',
      'delete-body',
    ],
  },
  {
    name: 'delivered: the last job final completes the message (state deleted, then the body)',
    state: message('active'),
    event: attempted([ok, ok]),
    write: 'delete',
    before: ['event delivered bob@example.net,carol@example.net'],
    after: ['delete-body'],
  },
  {
    name: 'delivered while another job is pending: recorded, the message stays',
    state: message('active', {}, true),
    event: attempted([ok, ok]),
    write: 'update',
    jobs: { 'm1.0': { status: 'final' }, 'm1.1': { status: 'active' } },
    final: { 'bob@example.net': 'delivered', 'carol@example.net': 'delivered' },
    before: ['event delivered bob@example.net,carol@example.net'],
    after: [],
  },
  {
    name: 'deferred: the next attempt is scheduled before the state records it',
    state: message('active'),
    event: attempted([ok, later]),
    write: 'update',
    jobs: {
      'm1.0': {
        status: 'deferred',
        attempt: 2,
        nextAttemptAt: '2026-11-26T10:06:00.000Z',
        lastResponse: '451 4.7.1 try later',
      },
    },
    final: { 'bob@example.net': 'delivered' },
    before: [
      'schedule m1.0 a2 m1.0.a2',
      'event delivered bob@example.net',
      'event deferred carol@example.net',
    ],
  },
  {
    name: 'failed: bounced with a DSN, an unknown user is suppressed, spam is not',
    state: message('active'),
    event: attempted([gone, spam]),
    write: 'delete',
    before: [
      'suppress bob@example.net',
      'dsn bob@example.net:5.1.1,carol@example.net:5.7.1',
      'event bounced bob@example.net,carol@example.net',
    ],
    after: ['delete-body'],
  },
  {
    name: 'expired: a deferral past the lifetime is final, bounced with 4.4.7',
    state: message('active'),
    event: attempted([ok, later], job({ expiresAt: '2026-11-26T10:05:30.000Z' })),
    write: 'delete',
    before: [
      'dsn carol@example.net:4.4.7',
      'event delivered bob@example.net',
      'event expired carol@example.net',
    ],
    after: ['delete-body'],
  },
  {
    name: 'deferred while a hold was asked for: held, no schedule',
    state: message('active', { hold: true }),
    event: attempted([later, later]),
    write: 'update',
    jobs: { 'm1.0': { status: 'held', attempt: 2, nextAttemptAt: undefined } },
    before: ['event deferred bob@example.net,carol@example.net'],
  },
  {
    name: 'a result already recorded (another attempt) changes nothing',
    state: message('deferred', { attempt: 2 }),
    event: attempted([ok, ok]),
    write: 'none',
    before: [],
    after: [],
  },
  {
    name: 'a result for a message no longer queued changes nothing',
    state: undefined,
    event: attempted([ok, ok]),
    write: 'none',
  },
  {
    name: 'a result finding a complete state left by a crash cleans it up',
    state: message('final'),
    event: attempted([ok, ok]),
    write: 'delete',
    after: ['delete-body'],
  },
  {
    name: 'hold: a deferred job loses its schedule after the write and waits as held',
    state: message('deferred', { attempt: 2, nextAttemptAt: LATER.toISOString() }, true),
    event: { kind: 'hold', at: LATER },
    write: 'update',
    jobs: { 'm1.0': { status: 'held', nextAttemptAt: undefined }, 'm1.1': { status: 'active', hold: true } },
    before: [],
    after: ['unschedule m1.0'],
  },
  {
    name: 'release: a held job is due now, pending holds are cleared',
    state: (() => {
      const s = message('held', { attempt: 2 }, true);
      s.jobs['m1.1']!.hold = true;
      return s;
    })(),
    event: { kind: 'release', at: LATER },
    write: 'update',
    jobs: {
      'm1.0': { status: 'active', nextAttemptAt: LATER.toISOString() },
      'm1.1': { status: 'active', hold: undefined },
    },
    before: [`schedule m1.0 a2 m1.0.a2.release${LATER.getTime()}`],
    after: [],
  },
  {
    name: 'retry now: a deferred job is due now and active',
    state: message('deferred', { attempt: 2, nextAttemptAt: '2026-11-26T11:00:00.000Z' }),
    event: { kind: 'retry-now', at: LATER },
    write: 'update',
    jobs: { 'm1.0': { status: 'active', nextAttemptAt: LATER.toISOString() } },
    before: [`schedule m1.0 a2 m1.0.a2.now${LATER.getTime()}`],
  },
  {
    name: 'retry now with nothing deferred changes nothing',
    state: message('active'),
    event: { kind: 'retry-now', at: LATER },
    write: 'none',
    before: [],
  },
  {
    name: 'delete: pending jobs are dropped, schedules purged, state then body deleted',
    state: message('deferred', { attempt: 2 }, true),
    event: { kind: 'delete', at: LATER },
    write: 'delete',
    after: ['unschedule m1.0', 'delete-body'],
  },
  {
    name: 'direct job deferred: the message is adopted — state created, received event, then the attempt',
    state: undefined,
    event: directAttempt([later, later]),
    write: 'create',
    jobs: { 'm1.0': { status: 'deferred', attempt: 2 } },
    before: [
      'event received bob@example.net,carol@example.net',
      'schedule m1.0 a2 m1.0.a2',
      'event deferred bob@example.net,carol@example.net',
    ],
    after: [],
  },
  {
    name: 'direct job partly delivered, partly bounced: adopted and completed by the same result (no state kept)',
    state: undefined,
    event: directAttempt([ok, gone]),
    write: 'none',
    before: [
      'event received bob@example.net,carol@example.net',
      'suppress carol@example.net',
      'dsn carol@example.net:5.1.1',
      'event delivered bob@example.net',
      'event bounced carol@example.net',
    ],
    after: ['delete-body'],
  },
  {
    name: 'direct job result after its message completed (a redelivered result): nothing',
    state: undefined,
    event: { ...directAttempt([later, later]), completed: true } as LifecycleEvent,
    write: 'none',
    before: [],
    after: [],
  },
  {
    name: 'direct job result without its body: nothing to adopt',
    state: undefined,
    event: directAttempt([later, later], false),
    write: 'none',
    before: [],
    after: [],
  },
  {
    name: 'a second result of an adopted direct job (state exists, attempt recorded): nothing',
    state: message('deferred', { attempt: 2 }),
    event: directAttempt([later, later]),
    write: 'none',
  },
  {
    name: 'an operator action on a message not queued changes nothing',
    state: undefined,
    event: { kind: 'hold', at: LATER },
    write: 'none',
  },
];

/** RFC 3461: the job of message() with each recipient's NOTIFY (and a delay warning due at once). */
const notifying = (notify: ('SUCCESS' | 'FAILURE' | 'DELAY' | 'NEVER')[], over: Partial<DeliveryJob> = {}) =>
  job({
    retry: { scheduleMs: [60_000], maxLifetimeMs: 432_000_000, delayWarningMs: 0 },
    dsn: { recipients: { 'bob@example.net': { notify }, 'carol@example.net': { notify } } },
    ...over,
  });
const dsnMessage = (j: DeliveryJob): MessageState => ({
  ...message('active'),
  jobs: { 'm1.0': { status: 'active', attempt: 1, job: stored(j) } },
});

rows.push(
  {
    name: 'RFC 3461 NOTIFY=DELAY, deferred past delayWarning: one delay warning before the schedule',
    state: dsnMessage(notifying(['DELAY'])),
    event: attempted([later, later], notifying(['DELAY'])),
    write: 'update',
    jobs: { 'm1.0': { status: 'deferred', attempt: 2 } },
    before: [
      'schedule m1.0 a2 m1.0.a2',
      'dsn bob@example.net:4.7.1,carol@example.net:4.7.1',
      'event deferred bob@example.net,carol@example.net',
    ],
  },
  {
    name: 'RFC 3461 NOTIFY=DELAY, already warned: no second warning',
    state: dsnMessage(notifying(['DELAY'], { delayWarned: true })),
    event: attempted([later, later], notifying(['DELAY'], { delayWarned: true })),
    write: 'update',
    before: ['schedule m1.0 a2 m1.0.a2', 'event deferred bob@example.net,carol@example.net'],
  },
  {
    name: 'RFC 3461 NOTIFY=SUCCESS, delivered to a hop without DSN: a success notice (relayed)',
    state: dsnMessage(notifying(['SUCCESS'])),
    event: attempted(
      [
        { ...ok, peerDsn: false },
        { ...ok, peerDsn: true },
      ],
      notifying(['SUCCESS']),
    ),
    write: 'delete',
    before: ['dsn bob@example.net:2.0.0', 'event delivered bob@example.net,carol@example.net'],
  },
  {
    name: 'RFC 3461 NOTIFY=NEVER: a failure bounces without a DSN',
    state: dsnMessage(notifying(['NEVER'])),
    event: attempted([spam, spam], notifying(['NEVER'])),
    write: 'delete',
    before: ['event bounced bob@example.net,carol@example.net'],
  },
);

describe('the job lifecycle: transition(state, event)', () => {
  for (const row of rows) {
    it(row.name, () => {
      const input = row.state ? structuredClone(row.state) : undefined;
      const t = transition(row.state, row.event);
      assert.deepEqual(row.state, input, 'the input state is never modified');
      assert.equal(t.write, row.write);
      if (row.write === 'delete' || (row.write === 'none' && !row.state && row.event.kind !== 'submitted')) {
        assert.equal(t.state, undefined);
      }
      for (const [jobId, expected] of Object.entries(row.jobs ?? {})) {
        const actual = t.state?.jobs[jobId] as unknown as Record<string, unknown>;
        assert.ok(actual, `job ${jobId} in the new state`);
        for (const [field, value] of Object.entries(expected))
          assert.deepEqual(actual[field], value, `${jobId}.${field}`);
      }
      for (const [recipient, result] of Object.entries(row.final ?? {})) {
        assert.equal(t.state?.final[recipient]?.result, result, `final result of ${recipient}`);
      }
      if (row.before) assert.deepEqual(describeOutputs(t.before), row.before);
      if (row.after) assert.deepEqual(describeOutputs(t.after), row.after);
    });
  }

  it('marks the next attempt and the state once the delay warning went (RFC 3461 NOTIFY=DELAY)', () => {
    const t = transition(dsnMessage(notifying(['DELAY'])), attempted([later, later], notifying(['DELAY'])));
    const schedule = t.before.find((o) => o.kind === 'schedule');
    assert.equal(schedule?.kind === 'schedule' && schedule.job.delayWarned, true);
    assert.equal(t.state?.jobs['m1.0']?.job.delayWarned, true);
  });

  it('an adopted direct job is an ordinary job from then on: its next attempt and its state are not direct', () => {
    const t = transition(undefined, directAttempt([later, later]));
    const schedule = t.before.find((o) => o.kind === 'schedule');
    assert.ok(schedule?.kind === 'schedule');
    assert.equal(schedule.job.direct, undefined);
    assert.deepEqual(schedule.job.body, body);
    assert.equal(t.state?.jobs['m1.0']?.job.direct, undefined);
    assert.deepEqual(t.state?.body, body);
  });

  it('reports the jobs an operator action affected', () => {
    assert.deepEqual(transition(message('active', {}, true), { kind: 'delete', at: LATER }).jobs, [
      'm1.0',
      'm1.1',
    ]);
    assert.deepEqual(transition(message('final', {}, true), { kind: 'hold', at: LATER }).jobs, ['m1.1']);
  });
});
