/**
 * Dead sites (services/delivery/shaping/dead-sites.ts): which attempts say a site is down, and the per-process
 * decisions — mark dead after N down attempts in a row, defer while dead, one probe when the spell is over.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RecipientOutcome } from '../../../services/common/types.ts';
import {
  DeadSites,
  errorVerdict,
  outcomesVerdict,
  suspendedOutcomes,
} from '../../../services/delivery/shaping/dead-sites.ts';

const out = (status: RecipientOutcome['status'], response: string): RecipientOutcome => ({
  recipient: 'r@x.test',
  status,
  response,
});

describe('what an attempt says about its site', () => {
  const cases: [string, RecipientOutcome[], string][] = [
    [
      '451 at RCPT for every recipient',
      [out('deferred', '451 4.3.0 Try later'), out('deferred', '451 4.3.0 Try later')],
      'down',
    ],
    [
      'one recipient delivered',
      [out('deferred', '451 4.3.0 Try later'), out('delivered', '250 2.0.0 OK')],
      'up',
    ],
    ['a 5xx: the site answered', [out('failed', '550 5.1.1 No such user')], 'up'],
    [
      'greylisting is about the triplet, not the site',
      [out('deferred', '451 4.7.1 Greylisted, try again')],
      'neutral',
    ],
    ['a full mailbox is about the recipient', [out('deferred', '452 4.2.2 Mailbox full')], 'neutral'],
    ['no outcomes', [], 'neutral'],
  ];
  for (const [name, outcomes, verdict] of cases)
    it(`${name} → ${verdict}`, () => assert.equal(outcomesVerdict(outcomes), verdict));

  const errors: [string, Parameters<typeof errorVerdict>[0], string][] = [
    ['connection refused', { code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 192.0.2.1:25' }, 'down'],
    ['connect timeout', { code: 'ETIMEDOUT', message: 'timed out' }, 'down'],
    ['421 greeting', { responseCode: 421, response: '421 4.3.2 Service not available' }, 'down'],
    [
      'TLS required but not offered: our policy',
      { code: 'ENOTLS', message: 'STARTTLS not offered' },
      'neutral',
    ],
    ['a local error', { code: 'ELOCAL', message: 'local error: oops' }, 'neutral'],
  ];
  for (const [name, err, verdict] of errors)
    it(`${name} → ${verdict}`, () => assert.equal(errorVerdict(err), verdict));

  it('a dead site defers each recipient with 4.4.1 and the reply that killed it', () => {
    assert.deepEqual(suspendedOutcomes(['a@x.test'], '451 4.3.0 Try later'), [
      {
        recipient: 'a@x.test',
        status: 'deferred',
        response: 'delivery temporarily suspended: 451 4.3.0 Try later',
        enhanced: '4.4.1',
      },
    ]);
  });
});

describe('dead site decisions in one process', () => {
  it('N down attempts in a row mark the site dead; one that answered starts the count again', () => {
    const d = new DeadSites({ after: 3, deadMs: 60_000 });
    assert.equal(d.record('s', 'down', false), false);
    assert.equal(d.record('s', 'down', false), false);
    assert.equal(d.record('s', 'up', false), false);
    assert.equal(d.record('s', 'down', false), false);
    assert.equal(d.record('s', 'neutral', false), false);
    assert.equal(d.record('s', 'down', false), false);
    assert.equal(d.record('s', 'down', false), true);
  });

  it('defers while dead; after the spell lets one probe through and defers the rest until it answers', () => {
    const d = new DeadSites({ after: 3, deadMs: 60_000 });
    const t = 1_000_000;
    assert.equal(d.admit('s', t + 10, t), 'defer');
    assert.equal(d.admit('s', undefined, t + 20), 'probe');
    assert.equal(d.admit('s', undefined, t + 21), 'defer');
    // The probe failed: dead again at once.
    assert.equal(d.record('s', 'down', true), true);
    assert.equal(d.admit('s', t + 100, t + 30), 'defer');
    assert.equal(d.admit('s', undefined, t + 200), 'probe');
    // The probe was delivered: the site takes jobs again.
    assert.equal(d.record('s', 'up', true), false);
    assert.equal(d.admit('s', undefined, t + 201), 'go');
    assert.equal(d.admit('s', undefined, t + 202), 'go');
  });

  it('a probe that could not try (neutral) hands the probe to the next job', () => {
    const d = new DeadSites({ after: 3, deadMs: 60_000 });
    assert.equal(d.admit('s', 10, 0), 'defer');
    assert.equal(d.admit('s', undefined, 20), 'probe');
    assert.equal(d.record('s', 'neutral', true), false);
    assert.equal(d.admit('s', undefined, 21), 'probe');
  });

  it('a spell long over with no job since: the site starts afresh', () => {
    const d = new DeadSites({ after: 3, deadMs: 60_000 });
    assert.equal(d.admit('s', 10, 0), 'defer');
    assert.equal(d.admit('s', undefined, 10 + 60_001), 'go');
    assert.equal(d.record('s', 'down', false), false);
  });
});
