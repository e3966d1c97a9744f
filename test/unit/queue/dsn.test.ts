import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildDsn, dsnEnvelope, headerSection, mayBounce } from '../../../services/queue/dsn.ts';

const input = {
  id: 'm1-dsn-0-1',
  hostname: 'mx.postern.test',
  original: { id: 'm1', from: 'alice@corp.test', receivedAt: '2030-01-01T00:00:00.000Z' },
  originalHeaders: 'From: alice@corp.test\r\nSubject: hello\r\nMessage-ID: <orig@corp.test>',
  recipients: [
    {
      recipient: 'bob@far.example',
      status: '5.1.1',
      reason: 'failed' as const,
      diagnostic: '550 5.1.1 <bob@far.example>: Recipient address rejected: User unknown',
      remoteMta: 'mx.far.example',
      lastAttemptAt: '2030-01-01T00:00:05.000Z',
    },
    {
      recipient: 'carol@slow.example',
      status: '4.4.7',
      reason: 'expired' as const,
      diagnostic: '451 4.3.0 later',
    },
  ],
  now: new Date('2030-01-01T00:00:06.000Z'),
};

describe('RFC 3464 delivery status notifications', () => {
  const dsn = buildDsn(input);

  it('is a multipart/report with a human part, a delivery-status part and the original headers', () => {
    assert.match(
      dsn,
      /^Content-Type: multipart\/report; report-type=delivery-status; boundary="([^"]+)"\r$/m,
    );
    const boundary = /boundary="([^"]+)"/.exec(dsn)![1]!;
    const parts = dsn.split(`--${boundary}`);
    assert.equal(parts.length, 5, 'preamble, three parts, closing');
    assert.match(parts[1]!, /Content-Type: text\/plain/);
    assert.match(parts[1]!, /Recipient address rejected: User unknown/, 'the remote reply text is shown');
    assert.match(parts[2]!, /Content-Type: message\/delivery-status/);
    assert.match(
      parts[3]!,
      /Content-Type: text\/rfc822-headers\r\n[\s\S]*\r\n\r\nFrom: alice@corp\.test\r\nSubject: hello/,
    );
    assert.equal(parts[4], '--\r\n');
  });

  it('reports each recipient with Final-Recipient, Action, Status, Remote-MTA and Diagnostic-Code', () => {
    assert.match(dsn, /Reporting-MTA: dns; mx\.postern\.test\r\n/);
    assert.match(dsn, /Arrival-Date: Tue, 01 Jan 2030 00:00:00 \+0000/);
    assert.match(
      dsn,
      /Final-Recipient: rfc822; bob@far\.example\r\nAction: failed\r\nStatus: 5\.1\.1\r\nRemote-MTA: dns; mx\.far\.example\r\nDiagnostic-Code: smtp; 550 5\.1\.1 <bob@far\.example>: Recipient address rejected: User unknown\r\nLast-Attempt-Date: /,
    );
    assert.match(
      dsn,
      /Final-Recipient: rfc822; carol@slow\.example\r\nAction: failed\r\nStatus: 4\.4\.7\r\n/,
    );
  });

  it('comes from MAILER-DAEMON to the original sender, with CRLF line ends only', () => {
    assert.match(dsn, /^From: Mail Delivery System <MAILER-DAEMON@mx\.postern\.test>\r\n/);
    assert.match(dsn, /\r\nTo: <alice@corp\.test>\r\n/);
    assert.doesNotMatch(dsn, /[^\r]\n/, 'no bare LF');
  });

  it('keeps a multi-line remote reply on one header line (no header injection)', () => {
    const out = buildDsn({
      ...input,
      recipients: [
        { ...input.recipients[0]!, diagnostic: '550-5.1.1 first\r\n550 5.1.1 second\r\nX-Evil: 1' },
      ],
    });
    assert.doesNotMatch(out, /^X-Evil/m);
  });

  it('is submitted as a null-sender envelope of kind dsn to the original sender', () => {
    const { envelope: env, raw } = dsnEnvelope(input, dsn);
    assert.equal(env.from, '');
    assert.equal(env.kind, 'dsn');
    assert.deepEqual(env.to, ['alice@corp.test']);
    assert.deepEqual(env.body, { attached: raw.length });
    assert.equal(raw.toString(), dsn);
  });

  it('is never sent for a null sender or for a DSN (no bounce loops)', () => {
    assert.equal(mayBounce({ from: '' }), false);
    assert.equal(mayBounce({ from: 'a@b.test', kind: 'dsn' }), false);
    assert.equal(mayBounce({ from: 'a@b.test', kind: 'mail' }), true);
  });

  it('takes the header section of the original up to the first blank line', () => {
    assert.equal(headerSection('A: 1\nB: 2\n\nbody\n\nmore'), 'A: 1\r\nB: 2');
  });
});

describe('a DSN for mail that expired waiting for TLS', () => {
  it('says which TLS policy refused the session, in the human part and per recipient', () => {
    const dsn = buildDsn({
      ...input,
      recipients: [
        {
          recipient: 'dave@strict.example',
          status: '4.4.7',
          reason: 'expired' as const,
          diagnostic: 'TLS required (required) but not offered by mx.strict.example:25',
          tls: {
            policy: 'required',
            applied: 'required',
            verified: false,
            failure: 'starttls-not-supported',
          },
        },
      ],
    });
    assert.match(dsn, /^ {4}TLS: no TLS \(starttls-not-supported\), policy required\r$/m);
    assert.match(
      dsn,
      /^Diagnostic-Code: smtp; TLS required \(required\) but not offered by mx\.strict\.example:25\r$/m,
    );
    assert.match(dsn, /^X-Postern-TLS: no TLS \(starttls-not-supported\), policy required\r$/m);
  });
});

describe('RFC 3461 notices: delay warnings, success notices, ENVID, ORCPT and RET', () => {
  const fullMessage = 'From: alice@corp.test\r\nSubject: hello\r\n\r\nthe body text\r\n';
  const one = (r: Partial<(typeof input.recipients)[number]> & { reason: string }) => ({
    ...input,
    envid: 'QQ314159',
    originalMessage: fullMessage,
    recipients: [{ recipient: 'bob@far.example', status: '5.1.1', orcpt: 'rfc822;Bob@far.example', ...r }],
  });
  const table: [string, string, RegExp[], RegExp[]][] = [
    [
      'failed',
      '5.1.1',
      [
        /Subject: Undelivered Mail Returned to Sender\r/,
        /Action: failed/,
        /Content-Type: message\/rfc822/,
        /the body text/,
      ],
      [/text\/rfc822-headers/],
    ],
    [
      'delayed',
      '4.3.0',
      [
        /Subject: Delayed Mail \(still being retried\)/,
        /Action: delayed/,
        /Will-Retry-Until: /,
        /text\/rfc822-headers/,
      ],
      [/the body text/, /message\/rfc822/],
    ],
    [
      'delivered',
      '2.0.0',
      [/Subject: Successful Mail Delivery Report/, /Action: delivered/, /text\/rfc822-headers/],
      [/the body text/, /Will-Retry-Until/],
    ],
    ['relayed', '2.0.0', [/Action: relayed/, /Status: 2\.0\.0/], [/the body text/]],
  ];
  for (const [reason, status, present, absent] of table) {
    it(`${reason}: ${present.map(String).join(' ')}`, () => {
      const dsn = buildDsn(
        one({
          reason: reason as 'failed',
          status,
          ...(reason === 'delayed' ? { willRetryUntil: '2030-01-06T00:00:00.000Z' } : {}),
        }),
      );
      for (const re of present) assert.match(dsn, re);
      for (const re of absent) assert.doesNotMatch(dsn, re);
      assert.match(dsn, /\r\nOriginal-Envelope-Id: QQ314159\r\n/);
      assert.match(
        dsn,
        /\r\nOriginal-Recipient: rfc822; Bob@far\.example\r\nFinal-Recipient: rfc822; bob@far\.example\r\n/,
      );
    });
  }

  it('returns headers only for a failure when the whole message is not given (RET=HDRS)', () => {
    const { originalMessage: _full, ...hdrs } = one({ reason: 'failed' });
    const dsn = buildDsn(hdrs);
    assert.match(dsn, /Content-Type: text\/rfc822-headers/);
    assert.doesNotMatch(dsn, /the body text/);
  });
});
