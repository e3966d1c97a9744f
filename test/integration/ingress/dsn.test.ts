/**
 * RFC 3461 at the ingress, over raw sockets (swaks 20201014 has no DSN options): DSN in EHLO, the parameters in
 * the Envelope published on SUBMIT (real nats-server), and 501 5.5.4 for each kind of bad parameter.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Harness, oursAndOffice, RawSmtp, startHarness } from './ingress-harness.ts';

async function say(c: RawSmtp, line: string): Promise<string> {
  c.write(`${line}\r\n`);
  return c.reply();
}

describe('DSN extension at the ingress (RFC 3461)', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      listeners: [
        { name: 'mx', host: '127.0.0.1', port: 0, mode: 'relay' },
        { name: 'submission', host: '127.0.0.1', port: 0, mode: 'submission', insecureAuth: true },
      ],
      documents: oursAndOffice('127.0.0.1/32'),
    });
  });
  after(async () => {
    await h?.stop();
  });

  const session = async (listener = 'mx') => {
    const c = await RawSmtp.open(h.port(listener));
    assert.match(await c.reply(), /^220 /);
    const ehlo = await say(c, 'EHLO raw.test');
    return { c, ehlo };
  };

  it('advertises DSN on every listener', async () => {
    for (const listener of ['mx', 'submission']) {
      const { c, ehlo } = await session(listener);
      assert.match(ehlo, /^250[- ]DSN$/m, `${listener}: ${ehlo}`);
      c.close();
    }
  });

  it('carries RET, ENVID and each recipient’s NOTIFY and ORCPT (xtext-decoded) in the Envelope', async () => {
    const { c } = await session();
    try {
      assert.match(await say(c, 'MAIL FROM:<alice@corp.test> RET=HDRS ENVID=QQ+2B314159'), /^250 /);
      assert.match(
        await say(c, 'RCPT TO:<bob@far.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Bob+2Bx@far.test'),
        /^250 /,
      );
      assert.match(await say(c, 'RCPT TO:<carol@ours.example> NOTIFY=NEVER'), /^250 /);
      assert.match(await say(c, 'RCPT TO:<dave@ours.example>'), /^250 /);
      assert.match(await say(c, 'DATA'), /^354 /);
      assert.match(await say(c, 'Subject: dsn\r\n\r\nbody\r\n.'), /^250 2\.0\.0 Ok: queued/);
    } finally {
      c.close();
    }
    const env = await h.nextEnvelope(10_000);
    assert.deepEqual(env?.dsn, {
      ret: 'HDRS',
      envid: 'QQ+314159',
      recipients: {
        'bob@far.test': { notify: ['SUCCESS', 'DELAY'], orcpt: 'rfc822;Bob+x@far.test' },
        'carol@ours.example': { notify: ['NEVER'] },
      },
    });
  });

  it('publishes no dsn field when the client gave no DSN parameter', async () => {
    const { c } = await session();
    try {
      await say(c, 'MAIL FROM:<alice@corp.test>');
      await say(c, 'RCPT TO:<erin@ours.example>');
      await say(c, 'DATA');
      assert.match(await say(c, 'Subject: plain\r\n\r\nbody\r\n.'), /^250 /);
    } finally {
      c.close();
    }
    const env = await h.nextEnvelope(10_000);
    assert.deepEqual(env?.to, ['erin@ours.example']);
    assert.equal(env?.dsn, undefined);
  });

  const bad: [string, string, RegExp][] = [
    ['MAIL', 'MAIL FROM:<alice@corp.test> RET=BODY', /^501 5\.5\.4 Bad RET parameter syntax/],
    ['MAIL', 'MAIL FROM:<alice@corp.test> ENVID=a+b', /^501 5\.5\.4 Bad ENVID parameter syntax/],
    [
      'MAIL',
      `MAIL FROM:<alice@corp.test> ENVID=${'x'.repeat(101)}`,
      /^501 5\.5\.4 Bad ENVID parameter syntax/,
    ],
    ['MAIL', 'MAIL FROM:<alice@corp.test> ENVID=a ENVID=b', /^501 5\.5\.4 /],
    ['RCPT', 'RCPT TO:<bob@far.test> NOTIFY=NEVER,SUCCESS', /^501 5\.5\.4 Bad NOTIFY parameter syntax/],
    ['RCPT', 'RCPT TO:<bob@far.test> NOTIFY=SOMETIMES', /^501 5\.5\.4 Bad NOTIFY parameter syntax/],
    ['RCPT', 'RCPT TO:<bob@far.test> ORCPT=bob@far.test', /^501 5\.5\.4 Bad ORCPT parameter syntax/],
    ['RCPT', 'RCPT TO:<bob@far.test> ORCPT=rfc822;b=b@far.test', /^501 5\.5\.4 Bad ORCPT parameter syntax/],
  ];
  for (const [verb, line, reply] of bad) {
    it(`answers ${line.slice(0, 60)} with 501 5.5.4`, async () => {
      const { c } = await session();
      try {
        if (verb === 'RCPT') assert.match(await say(c, 'MAIL FROM:<alice@corp.test>'), /^250 /);
        assert.match(await say(c, line), reply);
        // The session goes on: a good command afterwards is accepted.
        if (verb === 'MAIL') assert.match(await say(c, 'MAIL FROM:<alice@corp.test> RET=FULL'), /^250 /);
        else assert.match(await say(c, 'RCPT TO:<bob@far.test> NOTIFY=FAILURE'), /^250 /);
      } finally {
        c.close();
      }
    });
  }
});
