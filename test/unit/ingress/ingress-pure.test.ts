import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newMessageId } from '../../../services/common/message-id.ts';
import { receivedHeader } from '../../../services/common/received-header.ts';
import { checkMailbox, hasSourceRoute } from '../../../services/ingress/address-syntax.ts';
import { LineEndingGuard } from '../../../services/ingress/line-ending-guard.ts';
import { overLimit, RateWindow, slidingEstimate, windowOf } from '../../../services/ingress/rate-limit.ts';

function clean(...chunks: string[]): boolean {
  const g = new LineEndingGuard();
  for (const c of chunks) g.feed(Buffer.from(c, 'binary'));
  return g.clean();
}

describe('bare CR/LF guard', () => {
  it('passes CRLF-only text, also when CRLF is split across chunks', () => {
    assert.equal(clean('a\r\nb\r\n'), true);
    assert.equal(clean('a\r', '\nb\r\n'), true);
    assert.equal(clean(''), true);
  });
  it('refuses a bare LF, a bare CR, LF at a chunk start and a trailing CR', () => {
    assert.equal(clean('a\nb\r\n'), false);
    assert.equal(clean('a\rb\r\n'), false);
    assert.equal(clean('a\r\n', '\n.\n'), false);
    assert.equal(clean('a\r', 'b'), false);
    assert.equal(clean('a\r\n\r'), false);
    assert.equal(clean('x\r\n.\r\r\n'), false);
  });
});

describe('address syntax', () => {
  it('accepts ordinary and UTF-8 mailboxes, lower-cases the domain', () => {
    assert.deepEqual(checkMailbox('First.Last+tag@Example.COM'), {
      ok: true,
      local: 'First.Last+tag',
      domain: 'example.com',
    });
    assert.equal(checkMailbox('jörg@bücher.example').ok, true);
  });
  it('spots source routes in raw command lines', () => {
    assert.equal(hasSourceRoute('RCPT TO:<@relay.example,@b.example:user@c.example>'), true);
    assert.equal(hasSourceRoute('mail from: <@a:u@b>'), true);
    assert.equal(hasSourceRoute('RCPT TO:<user@c.example>'), false);
  });
});

describe('message ids', () => {
  it('are 26 characters, unique, and sort by time', () => {
    const a = newMessageId(1_000_000);
    const b = newMessageId(2_000_000);
    assert.equal(a.length, 26);
    assert.ok(a < b);
    const many = new Set(Array.from({ length: 1000 }, () => newMessageId()));
    assert.equal(many.size, 1000);
  });
});

describe('client rate: sliding window counter', () => {
  it('splits time into one-minute windows', () => {
    assert.deepEqual(windowOf(120_000), { index: 2, elapsed: 0 });
    assert.deepEqual(windowOf(150_000), { index: 2, elapsed: 0.5 });
  });

  it('weights the previous minute by the part of it still inside the last 60 seconds', () => {
    assert.equal(slidingEstimate(10, 1, 0), 11);
    assert.equal(slidingEstimate(10, 1, 0.5), 6);
    assert.equal(slidingEstimate(10, 1, 0.95), 1);
  });

  it('refuses a burst right after a minute boundary that a fixed window would admit', () => {
    // 10/min: ten messages at the end of one minute, then the first seconds of the next: the rounding down that
    // lets an evenly spread client through admits one, a fixed window would admit ten.
    assert.equal(overLimit(10, 1, 0.01, 10), false);
    assert.equal(overLimit(10, 2, 0.01, 10), true);
    assert.equal(overLimit(10, 1, 0.2, 10), false);
    assert.equal(overLimit(10, 3, 0.2, 10), true);
  });

  it('admits exactly the limit within one minute', () => {
    assert.equal(overLimit(0, 10, 0.5, 10), false);
    assert.equal(overLimit(0, 11, 0.5, 10), true);
  });
});

describe('rate window (per-replica fallback)', () => {
  it('counts the last minute only and forgets idle clients', () => {
    const w = new RateWindow();
    w.record('k', 0);
    w.record('k', 30_000);
    assert.equal(w.count('k', 59_000), 2);
    assert.equal(w.count('k', 61_000), 1);
    w.sweep(200_000);
    assert.equal(w.count('k', 200_000), 0);
  });
});

describe('Received header', () => {
  it('has from/by/with/id/for and a date, and cannot be split by a hostile HELO', () => {
    const h = receivedHeader({
      helo: 'evil\r\nX-Injected: 1',
      clientAddress: '192.0.2.1',
      hostname: 'mx.example',
      id: 'ID1',
      protocol: 'ESMTPS',
      tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
      recipient: 'a@b.example',
      date: new Date(0),
    });
    assert.match(
      h,
      /^Received: from evil\?\?X-Injected:\?1 \(\[192\.0\.2\.1\]\)\r\n\tby mx\.example \(Postern\) with ESMTPS id ID1\r\n/,
    );
    assert.match(h, /for <a@b\.example>; Thu, 01 Jan 1970 00:00:00 \+0000\r\n$/);
    assert.equal(h.split('\r\n').filter((l) => /^\S/.test(l)).length, 1, 'exactly one header field');
  });
});
