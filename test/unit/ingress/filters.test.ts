import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyEdits, verdictOf } from '../../../services/ingress/content-verdict.ts';
import { dnsblQueryName, isListed } from '../../../services/ingress/dnsbl-query.ts';
import { readContentFilterSettings, readDnsblSettings } from '../../../services/ingress/filter-settings.ts';
import { replyText } from '../../../services/ingress/replies.ts';
import type { RspamdResult } from '../../../services/ingress/rspamd-client.ts';

describe('DNSBL query names (RFC 5782)', () => {
  const table: [string, string][] = [
    ['192.0.2.99', '99.2.0.192.zen.example'],
    ['::ffff:192.0.2.99', '99.2.0.192.zen.example'],
    // RFC 5782 §2.4's own example.
    [
      '2001:db8:1:2:3:4:567:89ab',
      'b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.zen.example',
    ],
    ['2001:db8::1', `1.${'0.'.repeat(23)}8.b.d.0.1.0.0.2.zen.example`],
    ['::1', `1.${'0.'.repeat(31)}zen.example`],
    ['64:ff9b::192.0.2.33', `1.2.2.0.0.0.0.c.${'0.'.repeat(16)}b.9.f.f.4.6.0.0.zen.example`],
  ];
  for (const [ip, name] of table) {
    it(`${ip} → ${name.slice(0, 40)}…`, () => assert.equal(dnsblQueryName(ip, 'zen.example'), name));
  }
  it('refuses what is not an address', () =>
    assert.equal(dnsblQueryName('mx.example', 'zen.example'), undefined));
});

describe('DNSBL answers', () => {
  const table: [string[], string[] | undefined, boolean, string][] = [
    [['127.0.0.2'], undefined, true, 'any 127/8 answer lists by default'],
    [['127.255.255.254'], undefined, false, "Spamhaus's 'public resolver' error code is not a listing"],
    [['10.0.0.1'], undefined, false, 'answers outside 127/8 are not listings'],
    [['127.0.0.4'], ['127.0.0.2-127.0.0.11'], true, 'inside the range'],
    [['127.0.0.20'], ['127.0.0.2-127.0.0.11'], false, 'outside the range'],
    [['127.0.0.20', '127.0.0.3'], ['127.0.0.2-127.0.0.11'], true, 'one matching answer of several'],
    [['127.0.1.2'], ['127.0.1.2', '127.0.1.4'], true, 'single codes'],
    [[], undefined, false, 'no answer'],
  ];
  for (const [answers, codes, listed, why] of table) {
    it(why, () => assert.equal(isListed(answers, codes), listed));
  }
});

describe('rspamd verdicts', () => {
  const result = (action: string, more: Partial<RspamdResult> = {}): RspamdResult => ({
    action,
    score: 7.5,
    required_score: 15,
    ...more,
  });
  const refusals: [RspamdResult, string][] = [
    [result('reject'), '550 5.7.1 Spam message rejected'],
    [result('reject', { messages: { smtp_message: 'Gtube pattern' } }), '550 5.7.1 Gtube pattern'],
    [result('discard'), '550 5.7.1 Spam message rejected'],
    [result('soft reject'), '451 4.7.1 Try again later'],
    [
      result('soft reject', { messages: { smtp_message: 'Ratelimit\r\nexceeded' } }),
      '451 4.7.1 Ratelimit exceeded',
    ],
    [result('greylist'), '451 4.7.1 Greylisted, try again later'],
  ];
  for (const [r, reply] of refusals) {
    it(`${r.action} → ${reply}`, () => {
      const v = verdictOf(r);
      assert.equal(v.kind, 'refuse');
      if (v.kind === 'refuse') assert.equal(`${v.reply.code} ${replyText(v.reply)}`, reply);
    });
  }
  const accepted: [RspamdResult, [string, string][], string | undefined][] = [
    [result('no action'), [['X-Spam-Status', 'No, score=7.50 required=15.00']], undefined],
    [result('something new'), [['X-Spam-Status', 'No, score=7.50 required=15.00']], undefined],
    [
      result('add header'),
      [
        ['X-Spam-Flag', 'YES'],
        ['X-Spam-Status', 'Yes, score=7.50 required=15.00'],
      ],
      undefined,
    ],
    [
      result('rewrite subject', { subject: '[SPAM] hi' }),
      [
        ['X-Spam-Flag', 'YES'],
        ['X-Spam-Status', 'Yes, score=7.50 required=15.00'],
      ],
      '[SPAM] hi',
    ],
  ];
  for (const [r, add, subject] of accepted) {
    it(`${r.action} → accepted with ${add.map(([n]) => n).join(', ')}`, () => {
      const v = verdictOf(r);
      assert.equal(v.kind, 'accept');
      if (v.kind === 'accept') {
        assert.deepEqual(v.edits.add, add);
        assert.equal(v.edits.subject, subject);
        assert.ok(v.edits.remove.includes('X-Spam-Flag'));
      }
    });
  }
  it("adds and removes the headers rspamd's milter section names", () => {
    const v = verdictOf(
      result('no action', {
        milter: {
          add_headers: { 'X-Virus': { value: 'Eicar-Test-Signature' } },
          remove_headers: { 'X-Old': 0 },
        },
      }),
    );
    assert.equal(v.kind, 'accept');
    if (v.kind === 'accept') {
      assert.deepEqual(v.edits.add.at(-1), ['X-Virus', 'Eicar-Test-Signature']);
      assert.ok(v.edits.remove.includes('X-Old') && v.edits.remove.includes('X-Virus'));
    }
  });
});

describe('header edits', () => {
  const message = Buffer.from(
    'Received: from a\r\n\tby b\r\nSubject: hello\r\n  world\r\nx-spam-flag: YES\r\nFrom: a@b\r\n\r\nbody\r\nSubject: not a header\r\n',
  );
  it('adds on top, removes every copy (folded lines too), replaces the Subject, keeps the body bytes', () => {
    const out = applyEdits(message, {
      remove: ['X-Spam-Flag'],
      add: [['X-Spam-Flag', 'YES']],
      subject: '*** SPAM *** hello world',
    }).toString();
    assert.equal(
      out,
      'X-Spam-Flag: YES\r\nReceived: from a\r\n\tby b\r\nFrom: a@b\r\nSubject: *** SPAM *** hello world\r\n\r\nbody\r\nSubject: not a header\r\n',
    );
  });
  it('encodes a non-ASCII subject as RFC 2047 words', () => {
    const out = applyEdits(message, { remove: [], add: [], subject: '*** SPAM *** Grüße' }).toString();
    assert.match(out, /\r\nSubject: \*\*\* SPAM \*\*\* =\?UTF-8\?[BQ]\?.+\?=\r\n\r\n/);
  });
});

describe('filter settings', () => {
  it('is off without zones or URL', () => {
    assert.equal(readDnsblSettings({}), undefined);
    assert.equal(readContentFilterSettings({}), undefined);
  });
  it('reads zones as names or objects, with defaults', () => {
    const s = readDnsblSettings({
      POSTERN_DNSBL_ZONES: '["zen.spamhaus.org",{"zone":"B.Example.","codes":["127.0.0.2-127.0.0.11"]}]',
      POSTERN_DNSBL_ALLOW: '10.0.0.0/8, 2001:db8::/32',
      POSTERN_DNS_SERVERS: '127.0.0.1:5353',
    });
    assert.deepEqual(s, {
      zones: [{ zone: 'zen.spamhaus.org' }, { zone: 'b.example', codes: ['127.0.0.2-127.0.0.11'] }],
      allow: ['10.0.0.0/8', '2001:db8::/32'],
      cacheTtlSeconds: 300,
      cacheSize: 10_000,
      timeoutMs: 2000,
      dnsServers: ['127.0.0.1:5353'],
    });
  });
  const bad: [Record<string, string>, RegExp][] = [
    [{ POSTERN_DNSBL_ZONES: 'zen.spamhaus.org' }, /POSTERN_DNSBL_ZONES is not JSON/],
    [{ POSTERN_DNSBL_ZONES: '["not a zone"]' }, /POSTERN_DNSBL_ZONES\[0\] needs a DNS zone name/],
    [{ POSTERN_DNSBL_ZONES: '[{"zone":"a.example","codes":["127.0.0.x"]}]' }, /codes must be IPv4/],
    [{ POSTERN_DNSBL_ZONES: '["a.example"]', POSTERN_DNSBL_ALLOW: '10.0.0.0/33' }, /not an address or CIDR/],
    [{ POSTERN_CONTENT_FILTER_URL: 'rspamd:11333' }, /must be http\(s\)/],
    [
      { POSTERN_CONTENT_FILTER_URL: 'http://r:1', POSTERN_CONTENT_FILTER_FAIL_MODE: 'maybe' },
      /open or closed/,
    ],
    [
      { POSTERN_CONTENT_FILTER_URL: 'http://r:1', POSTERN_CONTENT_FILTER_TIMEOUT_MS: '0' },
      /positive integer/,
    ],
  ];
  for (const [env, message] of bad) {
    it(`refuses ${JSON.stringify(env)}`, () =>
      assert.throws(() => {
        readDnsblSettings(env);
        readContentFilterSettings(env);
      }, message));
  }
  it('reads the content filter with defaults', () => {
    assert.deepEqual(readContentFilterSettings({ POSTERN_CONTENT_FILTER_URL: 'http://rspamd:11333/' }), {
      url: 'http://rspamd:11333',
      timeoutMs: 10_000,
      failMode: 'open',
      maxSize: 20 * 1024 * 1024,
    });
  });
});
