import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readImportCsv, toCsv } from '../../../services/local/suppression-client.ts';
import { checkInput, ttlOf } from '../../../services/queue/admin-suppression.ts';

describe('suppression CSV import and export', () => {
  it('reads columns by header name, ignores unknown ones and names bad lines by their line number', () => {
    const { entries, errors } = readImportCsv(
      'Address,Reason,Note,Source\n' +
        'a@x.test,complaint,"fbl, from provider",feedback\n' +
        '\n' +
        'b@x.test,,,\n' +
        'broken@,manual,,\n' +
        'c@x.test,opt-out,,\n',
    );
    assert.deepEqual(entries, [
      { address: 'a@x.test', reason: 'complaint', note: 'fbl, from provider' },
      { address: 'b@x.test' },
    ]);
    assert.deepEqual(errors, [
      'line 5: "broken@" is not an email address (missing local part or domain)',
      'line 6: reason "opt-out" is not one of hard-bounce, manual, complaint, unsubscribe',
    ]);
  });

  it('without a header the address is the first column; defaults apply to lines that say nothing', () => {
    const { entries, errors } = readImportCsv('a@x.test\nb@x.test,ignored\n', {
      reason: 'unsubscribe',
      expires: '1d',
    });
    assert.deepEqual(errors, []);
    assert.deepEqual(entries, [
      { address: 'a@x.test', reason: 'unsubscribe', expires: '1d' },
      { address: 'b@x.test', reason: 'unsubscribe', expires: '1d' },
    ]);
  });

  it('reports a CSV that cannot be parsed at all', () => {
    const { errors } = readImportCsv('address\n"unterminated@x.test\n');
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /quote/i);
  });

  it('exports what it imports (header, RFC 4180 quoting)', () => {
    const csv = toCsv([
      {
        key: 'k',
        address: 'a@x.test',
        reason: 'hard-bounce',
        detail: 'bad destination mailbox address',
        response: '550 5.1.1 "no", really',
        createdAt: '2026-01-01T00:00:00.000Z',
        until: '2026-01-08T00:00:00.000Z',
      },
    ]);
    assert.equal(
      csv,
      'address,reason,note,response,created,expires\n' +
        'a@x.test,hard-bounce,bad destination mailbox address,"550 5.1.1 ""no"", really",2026-01-01T00:00:00.000Z,2026-01-08T00:00:00.000Z\n',
    );
    const soon = new Date(Date.now() + 86_400_000).toISOString();
    const back = readImportCsv(csv.replace('2026-01-08T00:00:00.000Z', soon));
    assert.deepEqual(back.errors, []);
    assert.deepEqual(back.entries[0], {
      address: 'a@x.test',
      reason: 'hard-bounce',
      note: 'bad destination mailbox address',
      expires: soon,
    });
  });

  it('expiry: a duration or a future date, at most the bucket max age (30 days)', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(ttlOf(undefined, now), 30 * 86_400_000);
    assert.equal(ttlOf('2d', now), 2 * 86_400_000);
    assert.equal(ttlOf('2026-01-11T00:00:00Z', now), 10 * 86_400_000);
    assert.match(String(ttlOf('31d', now)), /beyond 30 days/);
    assert.match(String(ttlOf('2025-12-01', now)), /not in the future/);
    assert.match(String(ttlOf('soon', now)), /neither a duration/);
    assert.match(String(checkInput({ address: 'a@[10.0.0.1]' })), /address literals/);
  });
});
