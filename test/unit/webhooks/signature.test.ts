import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { sign, verifySignature } from '../../../services/webhooks/signature.ts';

describe('webhook signatures', () => {
  const body = '{"id":"ev.delivered.M1.0.1","type":"delivered","data":{}}';
  const now = 1_800_000_000;

  it('is HMAC-SHA256 over "<timestamp>.<body>", hex, with a v1= prefix', () => {
    const want = createHmac('sha256', 'k').update(`${now}.${body}`).digest('hex');
    assert.equal(sign('k', now, body), `v1=${want}`);
  });

  it('verifies with the right key and refuses a wrong key, a changed body or an old timestamp', () => {
    const headers = { timestamp: String(now), signature: sign('k', now, body) };
    assert.equal(verifySignature('k', headers, body, 300, now + 10), true);
    assert.equal(verifySignature('x', headers, body, 300, now), false);
    assert.equal(verifySignature('k', headers, `${body} `, 300, now), false);
    assert.equal(verifySignature('k', headers, body, 300, now + 301), false);
    assert.equal(verifySignature('k', { timestamp: undefined, signature: headers.signature }, body), false);
    assert.equal(verifySignature('k', { timestamp: String(now), signature: 'v1=00' }, body, 300, now), false);
  });
});
