import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dsnStatus, enhancedCode, suppressionReason } from '../../../services/queue/bounce-codes.ts';

describe('bounce classification', () => {
  it('finds the enhanced status code in a reply or takes the one given', () => {
    assert.equal(enhancedCode('550 5.1.1 <x@y>: User unknown'), '5.1.1');
    assert.equal(enhancedCode('550 User unknown', '5.1.1'), '5.1.1');
    assert.equal(enhancedCode('550 no code here'), undefined);
  });

  const cases: [string, string | undefined, boolean][] = [
    ['550 5.1.1 <bob@x>: Recipient address rejected: User unknown', undefined, true],
    ['550 5.1.10 Recipient address has null MX', undefined, true],
    ['551 5.1.6 User has moved', undefined, true],
    ['550 Requested action not taken: mailbox unavailable (user unknown)', undefined, true],
    ['550 5.7.1 Message rejected as spam', undefined, false],
    ['552 5.3.4 Message too big', undefined, false],
    ['554 5.7.1 Relay access denied', undefined, false],
    ['550 rejected', '5.1.1', true],
  ];
  for (const [reply, enhanced, suppress] of cases) {
    it(`${suppress ? 'suppresses' : 'does not suppress'} after "${reply}"`, () => {
      assert.equal(suppressionReason(reply, enhanced) !== undefined, suppress);
    });
  }

  it('gives a DSN status from the enhanced code, else a permanent default', () => {
    assert.equal(dsnStatus('550 5.7.1 spam'), '5.7.1');
    assert.equal(dsnStatus('550 no such user'), '5.0.0');
    assert.equal(dsnStatus('552 too big'), '5.2.2');
  });
});
