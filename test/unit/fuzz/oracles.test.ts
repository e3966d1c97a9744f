/**
 * The fuzzer's judges, judged: the SMTP reply oracle (RFC 5321 §4.2 syntax, RFC 2034 enhanced codes), the
 * acceptance oracle over published envelopes, and the soak's flat/growing trend test. A judge that waves
 * everything through would make the fuzz run and the soak verdict meaningless.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { trend } from '../../../bench/lib/trend.ts';
import type { Envelope } from '../../../services/common/types.ts';
import { checkEnvelopes } from '../../fuzz/fuzz-run.ts';
import { checkReplies } from '../../fuzz/reply-oracle.ts';

const HOST = 'mx.fuzz.postern';
const judge = (text: string, complete = true) =>
  checkReplies(Buffer.from(text, 'latin1'), { hostname: HOST, complete }).violations;
const EHLO = `220 ${HOST} ESMTP\r\n250-${HOST} Nice to meet you\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n`;

describe('reply oracle', () => {
  it('accepts a well-formed session with enhanced codes', () => {
    assert.deepEqual(judge(`${EHLO}250 2.1.0 Accepted\r\n354 End data\r\n221 2.0.0 Bye\r\n`), []);
  });

  it('refuses a line that is not a reply, a truncated last line and a code change inside a multiline reply', () => {
    assert.match(judge('* BAD Invalid PROXY header\r\n')[0] ?? '', /not a reply line/);
    assert.match(judge('250 2.0.0 Ok\r\n421 4.4.2 cut')[0] ?? '', /truncated/);
    assert.deepEqual(
      judge('250 2.0.0 Ok\r\n421 4.4.2 cut', false),
      [],
      'an open connection may still be writing',
    );
    assert.match(judge('250-first\r\n550 second\r\n')[0] ?? '', /changes code/);
    assert.match(judge('250-first\r\n')[0] ?? '', /without its last line/);
  });

  it('refuses 8-bit and control bytes in reply text and lines over 512 octets', () => {
    assert.match(judge('501 5.5.4 duplicate \xef\xbf\xbd parameter\r\n')[0] ?? '', /textstring/);
    assert.match(judge(`250 ${'x'.repeat(600)}\r\n`)[0] ?? '', /512/);
  });

  it('requires an enhanced code once advertised, except on the greeting and the HELO/EHLO replies', () => {
    assert.match(judge(`${EHLO}500 Error: command not recognized\r\n`)[0] ?? '', /without an enhanced/);
    assert.match(judge(`${EHLO}550 4.1.1 class mismatch\r\n`)[0] ?? '', /class differs/);
    assert.deepEqual(
      judge(`${EHLO}250 ${HOST} Nice to meet you\r\n501 Error: syntax: EHLO hostname\r\n`),
      [],
    );
    assert.deepEqual(
      judge(`220 ${HOST} ESMTP\r\n500 Error: command not recognized\r\n`),
      [],
      'not advertised yet',
    );
  });
});

const envelope = (e: Partial<Envelope>): Envelope => ({
  id: 'm1',
  from: 'sender@far.example',
  to: ['alice@ours.example'],
  receivedAt: '2026-11-26T00:00:00Z',
  client: { address: '127.0.0.1', helo: 'x', tls: false },
  size: 1,
  body: { inline: '' },
  ...e,
});

describe('acceptance oracle', () => {
  it('passes listed inbound recipients and relays for the authenticated user or the relay network', () => {
    const ok = [
      envelope({}),
      envelope({ id: 'm2', to: ['team-ops@OURS.example', 'postmaster@mx.fuzz.postern'] }),
      envelope({
        id: 'm3',
        to: ['x@far.example'],
        client: { address: '127.0.0.1', helo: 'x', tls: true, user: 'app' },
      }),
      envelope({ id: 'm4', to: ['x@far.example'], client: { address: '192.0.2.7', helo: 'x', tls: false } }),
    ];
    assert.deepEqual(checkEnvelopes(ok, new Set(['m1', 'm3'])), []);
  });

  it('flags relaying for anyone else, unlisted users, bad syntax and a queued id without its envelope', () => {
    const bad = [
      envelope({ to: ['victim@far.example'] }),
      envelope({ id: 'm2', to: ['bob@ours.example'] }),
      envelope({ id: 'm3', to: ['a%b@ours.example'] }),
      envelope({ id: 'm4', from: 'a b@x.example' }),
    ];
    const v = checkEnvelopes(bad, new Set(['m9']));
    assert.equal(v.length, 5, v.join('\n'));
  });
});

describe('soak trend verdict', () => {
  const line = (slopePerS: number, noise = 0) =>
    Array.from({ length: 100 }, (_, i): [number, number] => [
      i * 10,
      100 + slopePerS * i * 10 + (i % 2 ? noise : -noise),
    ]);
  it('calls a series flat when its fitted growth stays within the tolerance, growing when it does not', () => {
    assert.equal(trend(line(0, 5), { share: 0.1, floor: 16 }).verdict, 'flat');
    const growing = trend(line(0.05), { share: 0.1, floor: 16 });
    assert.equal(growing.verdict, 'growing');
    assert.ok(Math.abs(growing.slopePerHour - 180) < 1e-6);
    assert.equal(trend(line(-0.05), { share: 0.1, floor: 16 }).verdict, 'shrinking');
  });
});
