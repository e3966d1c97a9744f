import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffMs, decide } from '../../../services/webhooks/decision.ts';
import { passesPolicyFilter } from '../../../services/webhooks/endpoint.ts';

const cfg = { initialDelayMs: 10_000, maxDelayMs: 3_600_000, maxLifetimeMs: 86_400_000 };

describe('webhook attempt decisions', () => {
  const table: [string, Parameters<typeof decide>, ReturnType<typeof decide>][] = [
    ['a 2xx acks', ['delivered', 1, 0, cfg], { action: 'ack' }],
    ['a 2xx acks even past the lifetime', ['delivered', 9, 90_000_000, cfg], { action: 'ack' }],
    [
      'a first failure retries after initialDelay',
      ['failed', 1, 0, cfg],
      { action: 'retry', delayMs: 10_000 },
    ],
    ['the delay doubles per attempt', ['timeout', 3, 60_000, cfg], { action: 'retry', delayMs: 40_000 }],
    ['the delay stops at maxDelay', ['error', 20, 60_000, cfg], { action: 'retry', delayMs: 3_600_000 }],
    [
      'a retry falling after maxLifetime dead-letters',
      ['failed', 5, 86_390_001, cfg],
      { action: 'dead-letter' },
    ],
    [
      'a retry falling exactly at maxLifetime still runs',
      ['failed', 1, 86_390_000, cfg],
      { action: 'retry', delayMs: 10_000 },
    ],
  ];
  for (const [name, args, want] of table) it(name, () => assert.deepEqual(decide(...args), want));

  it('backoff never overflows for huge delivery counts', () => {
    assert.equal(backoffMs(10_000, cfg), 3_600_000);
    assert.equal(backoffMs(0, cfg), 10_000);
  });
});

describe('webhook policy filter', () => {
  const table: [string, string[] | undefined, { kind: string; policy?: string }, boolean][] = [
    ['no filter: every mail event', undefined, { kind: 'delivered' }, true],
    ['listed policy passes', ['ns/app'], { kind: 'bounced', policy: 'ns/app' }, true],
    ['other policy is skipped', ['ns/app'], { kind: 'bounced', policy: 'ns/other' }, false],
    ['mail without a policy (inbound, DSN) is skipped', ['ns/app'], { kind: 'delivered' }, false],
    ['site events always pass', ['ns/app'], { kind: 'site.suspended' }, true],
  ];
  for (const [name, policies, event, want] of table)
    it(name, () => assert.equal(passesPolicyFilter(policies ? { policies } : {}, event), want));
});
