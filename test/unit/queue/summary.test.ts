import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatQueueSummary } from '../../../services/local/queue-summary-format.ts';
import { OTHER_SITE, TopSites } from '../../../services/queue/site-labels.ts';
import type { JobState, MessageState } from '../../../services/queue/state.ts';
import { ageBucket, normaliseReason, summarizeQueue } from '../../../services/queue/summary.ts';

const NOW = Date.parse('2025-01-01T12:00:00Z');

function message(
  id: string,
  ageMinutes: number,
  jobs: (Partial<JobState> & { to: string[] })[],
): MessageState {
  return {
    id,
    from: 'a@corp.example',
    receivedAt: new Date(NOW - ageMinutes * 60_000).toISOString(),
    kind: 'mail',
    body: { inline: '' },
    jobs: Object.fromEntries(
      jobs.map((j, i) => {
        const domain = j.to[0]?.split('@')[1] ?? 'x';
        const { to, ...rest } = j;
        return [
          `${id}.${i}`,
          {
            status: 'deferred',
            attempt: 2,
            job: {
              jobId: `${id}.${i}`,
              messageId: id,
              pool: 'default',
              route: { kind: 'mx', domain, tls: 'opportunistic' },
              from: 'a@corp.example',
              recipients: to,
            },
            ...rest,
          } as JobState,
        ];
      }),
    ),
    final: {},
  } as MessageState;
}

describe('queue summary (qshape buckets)', () => {
  it("puts ages in qshape's columns: under 5 min, under 10, … under 1280, then 1280+", () => {
    assert.equal(ageBucket(0), 0);
    assert.equal(ageBucket(4.9), 0);
    assert.equal(ageBucket(5), 1);
    assert.equal(ageBucket(639), 7);
    assert.equal(ageBucket(1279), 8);
    assert.equal(ageBucket(1280), 9);
    assert.equal(ageBucket(100_000), 9);
  });

  it('counts a message once per site, its recipients each, and skips final jobs', () => {
    const s = summarizeQueue(
      [
        message('m1', 7, [{ to: ['a@one.example', 'b@one.example'] }, { to: ['c@two.example'] }]),
        message('m2', 2000, [{ to: ['d@one.example'], status: 'held' }]),
        message('m3', 1, [{ to: ['e@three.example'], status: 'final' }]),
      ],
      { now: NOW },
    );
    assert.equal(s.total.messages, 2);
    assert.equal(s.total.recipients, 4);
    assert.deepEqual(s.total.messagesByAge, [0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    const one = s.sites.find((x) => x.site === 'one.example');
    assert.deepEqual([one?.messages, one?.recipients, one?.held, one?.deferred], [2, 3, 1, 2]);
    assert.equal(s.sites[0]?.site, 'one.example');
    assert.equal(s.oldest?.id, 'm2');
    assert.ok(!s.sites.some((x) => x.site === 'three.example'));
  });

  it('sums the sites beyond top into other', () => {
    const states = ['a', 'b', 'c'].map((d, i) => message(`m${i}`, 1, [{ to: [`x@${d}.example`] }]));
    const s = summarizeQueue(states, { now: NOW, top: 1 });
    assert.equal(s.sites.length, 1);
    assert.deepEqual([s.other?.sites, s.other?.messages], [2, 2]);
  });

  it('groups deferral reasons that differ only in ids and long numbers', () => {
    assert.equal(
      normaliseReason('451 4.7.1  Greylisted, see 1733412345 id=8F3A92C1D4'),
      '451 4.7.1 Greylisted, see … id=…',
    );
    const s = summarizeQueue(
      [
        message('m1', 1, [{ to: ['a@g.example'], lastResponse: '451 4.7.1 Greylisted id 8F3A92C1D4' }]),
        message('m2', 1, [{ to: ['b@g.example'], lastResponse: '451 4.7.1 Greylisted id 0000AAAABBBB' }]),
        message('m3', 1, [{ to: ['c@h.example'], lastResponse: '421 4.4.2 busy' }]),
      ],
      { now: NOW },
    );
    assert.deepEqual(s.topReasons[0], {
      reason: '451 4.7.1 Greylisted id …',
      recipients: 2,
      messages: 2,
      sites: ['g.example'],
    });
  });

  it('prints an empty queue plainly', () => {
    assert.equal(formatQueueSummary(summarizeQueue([], { now: NOW })), 'Mail queue is empty\n');
  });
});

describe('bounded site labels for metrics', () => {
  it('names the first sites up to top, then other; after a period the busiest keep their names', () => {
    const dropped: string[] = [];
    const t = new TopSites({ top: 2, periodMs: 1000, now: 0, onDropped: (s) => dropped.push(s) });
    assert.equal(t.label('a', 1), 'a');
    assert.equal(t.label('b', 2), 'b');
    assert.equal(t.label('c', 3), OTHER_SITE);
    t.label('c', 4);
    t.label('c', 5);
    // Period over: c (3) and a or b (1 each, a first by name) are the busiest; b loses its label.
    assert.equal(t.label('c', 1001), 'c');
    assert.deepEqual(dropped, ['b']);
    assert.equal(t.label('a', 1002), 'a');
    assert.equal(t.label('b', 1003), OTHER_SITE);
  });
});
