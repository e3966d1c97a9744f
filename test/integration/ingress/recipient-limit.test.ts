/**
 * Regression for fuzz finding 3 (docs/reliability.md): a transaction to a domain that accepts every local part
 * took any number of distinct recipients (memory per session without bound, and an envelope past the NATS
 * payload limit answered 451 forever). Now it takes at most `maxRecipients` distinct addresses (Postfix
 * smtpd_recipient_limit), whatever the RelayPolicy; a repeated address (any case) stays one recipient and does
 * not count twice. Real nats-server, raw pipelined socket.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type DomainConfig, domainKey } from '../../../services/common/config/resolved.ts';
import { type Harness, RawSmtp, startHarness } from './ingress-harness.ts';

describe('recipients per message (fuzz finding 3)', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      listeners: [{ name: 'mx', host: '127.0.0.1', port: 0, mode: 'relay' }],
      documents: {
        [domainKey('ours.example')]: {
          source: 'mail/ours.example',
          domain: 'ours.example',
          inbound: { enabled: true },
        } satisfies DomainConfig,
      },
      settings: { limits: { maxRecipients: 5 } },
    });
  });
  after(async () => {
    await h?.stop();
  });

  it('refuses new addresses beyond the limit with 452 4.5.3 and queues a repeated recipient once', async () => {
    const c = await RawSmtp.open(h.port('mx'));
    try {
      assert.match(await c.reply(), /^220 /);
      c.write('EHLO bomb.test\r\n');
      await c.reply();
      const rcpts = ['alice', 'alice', 'ALICE', 'bob', 'carol', 'dave', 'erin', 'frank', 'alice'];
      c.write(
        `MAIL FROM:<x@far.example>\r\n${rcpts.map((r) => `RCPT TO:<${r}@ours.example>\r\n`).join('')}DATA\r\n`,
      );
      assert.match(await c.reply(), /^250 /);
      const replies: string[] = [];
      for (const _ of rcpts) replies.push(await c.reply());
      assert.deepEqual(
        replies.map((r) => r.slice(0, 9)),
        [...Array(7).fill('250 2.1.5'), '452 4.5.3', '250 2.1.5'],
      );
      assert.match(await c.reply(), /^354 /);
      c.write('Subject: bomb\r\n\r\nhello\r\n.\r\n');
      assert.match(await c.reply(), /^250 2\.0\.0 Ok: queued/);
      const envelope = await h.nextEnvelope();
      assert.deepEqual(envelope?.to, [
        'alice@ours.example',
        'bob@ours.example',
        'carol@ours.example',
        'dave@ours.example',
        'erin@ours.example',
      ]);
    } finally {
      c.close();
    }
  });
});
