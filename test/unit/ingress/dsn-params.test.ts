import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeXtext, encodeXtext, isXtext } from '../../../services/common/xtext.ts';
import { checkDsnParameters, dsnSyntaxReply, envelopeDsn } from '../../../services/ingress/dsn-params.ts';

describe('RFC 3461 DSN parameter syntax at MAIL and RCPT', () => {
  const cases: [verb: 'MAIL' | 'RCPT', line: string, bad?: string][] = [
    ['MAIL', 'MAIL FROM:<a@b.test> RET=FULL ENVID=QQ314159'],
    ['MAIL', 'MAIL FROM:<a@b.test> ret=hdrs envid=a+2Bb+3Dc'],
    ['MAIL', 'MAIL FROM:<> SIZE=100 BODY=8BITMIME'],
    ['MAIL', 'MAIL FROM:<a@b.test> RET=BODY', 'RET'],
    ['MAIL', 'MAIL FROM:<a@b.test> RET', 'RET'],
    ['MAIL', 'MAIL FROM:<a@b.test> ENVID=a+b', 'ENVID'],
    ['MAIL', 'MAIL FROM:<a@b.test> ENVID=a=b', 'ENVID'],
    ['MAIL', 'MAIL FROM:<a@b.test> ENVID=a+2bb', 'ENVID'],
    ['MAIL', `MAIL FROM:<a@b.test> ENVID=${'x'.repeat(101)}`, 'ENVID'],
    ['MAIL', 'MAIL FROM:<a@b.test> ENVID=caf\u00e9', 'ENVID'],
    ['MAIL', 'MAIL FROM:<a@b.test> ENVID=a+C3+A9', 'ENVID'],
    ['RCPT', 'RCPT TO:<c@d.test> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;c@d.test'],
    ['RCPT', 'RCPT TO:<c@d.test> NOTIFY=never'],
    ['RCPT', 'RCPT TO:<c@d.test> ORCPT=rfc822;c+2Bx@d.test'],
    ['RCPT', 'RCPT TO:<c@d.test> ORCPT=utf-8;j\\x{00F6}rg@d.test'],
    ['RCPT', 'RCPT TO:<c@d.test> NOTIFY=NEVER,SUCCESS', 'NOTIFY'],
    ['RCPT', 'RCPT TO:<c@d.test> NOTIFY=SOMETIMES', 'NOTIFY'],
    ['RCPT', 'RCPT TO:<c@d.test> NOTIFY=SUCCESS,SUCCESS', 'NOTIFY'],
    ['RCPT', 'RCPT TO:<c@d.test> NOTIFY=', 'NOTIFY'],
    ['RCPT', 'RCPT TO:<c@d.test> ORCPT=c@d.test', 'ORCPT'],
    ['RCPT', 'RCPT TO:<c@d.test> ORCPT=rfc822;', 'ORCPT'],
    ['RCPT', 'RCPT TO:<c@d.test> ORCPT=rfc822;a+b@d.test', 'ORCPT'],
    ['RCPT', `RCPT TO:<c@d.test> ORCPT=rfc822;${'x'.repeat(500)}@d.test`, 'ORCPT'],
  ];
  for (const [verb, line, bad] of cases) {
    it(`${line.slice(0, 70)} → ${bad ? `501 (${bad})` : 'accepted'}`, () => {
      assert.equal(checkDsnParameters(verb, line)?.param, bad);
    });
  }

  it('refuses with 501 5.5.4 naming the parameter', () => {
    const r = dsnSyntaxReply({ param: 'ENVID', why: 'not xtext' });
    assert.deepEqual([r.code, r.enhanced], [501, '5.5.4']);
    assert.match(r.text, /Bad ENVID parameter syntax/);
  });
});

describe('xtext (RFC 3461 §4)', () => {
  it('encodes +, = and non-printable characters as +XX and decodes them back', () => {
    assert.equal(encodeXtext('a+b=c d'), 'a+2Bb+3Dc+20d');
    assert.equal(decodeXtext('a+2Bb+3Dc+20d'), 'a+b=c d');
    assert.ok(isXtext('a+2Bb'));
    assert.ok(!isXtext('a+b'));
  });
});

describe('the DSN parameters an accepted transaction carries', () => {
  it('keeps RET, ENVID and per-recipient NOTIFY/ORCPT, and nothing when none were given', () => {
    assert.deepEqual(
      envelopeDsn({
        dsn: { ret: 'HDRS', envid: 'id 1' },
        rcptTo: [
          { address: 'a@x.test', dsn: { notify: ['SUCCESS', 'DELAY'], orcpt: 'rfc822;A@x.test' } },
          { address: 'b@x.test' },
        ],
      }),
      {
        ret: 'HDRS',
        envid: 'id 1',
        recipients: { 'a@x.test': { notify: ['SUCCESS', 'DELAY'], orcpt: 'rfc822;A@x.test' } },
      },
    );
    assert.equal(
      envelopeDsn({ dsn: { ret: null, envid: null }, rcptTo: [{ address: 'a@x.test' }] }),
      undefined,
    );
  });
});
