/**
 * Routing at receipt (services/common/submit.ts, the lean path of docs/architecture.md): with a real nats-server,
 * a message whose recipients share one route is published by ingress as one `direct` delivery job on OUTBOUND;
 * several routes, a suppressed recipient, RFC 3461 parameters or routing turned off send the envelope to SUBMIT
 * for the queue, as before. Absence from SUBMIT is shown by order, never by waiting: a message that must go to
 * SUBMIT is sent right after, and it is the next envelope there.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Consumer, jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { readJobMessage } from '../../../services/common/body-wire.ts';
import { msgIds } from '../../../services/common/msg-ids.ts';
import { ensureConsumer, STREAMS, SUPPRESSION_BUCKET } from '../../../services/common/nats.ts';
import { SuppressionList } from '../../../services/common/suppression.ts';
import { bodyText, type SeenEnvelope } from '../../helpers/bodies.ts';
import { type Harness, oursAndOffice, RawSmtp, startHarness } from './ingress-harness.ts';

async function say(c: RawSmtp, line: string): Promise<string> {
  c.write(`${line}\r\n`);
  return c.reply();
}

/** Sends one message over a raw session; `rcpts` are full RCPT argument strings (address plus parameters). */
async function send(port: number, subject: string, rcpts: string[]): Promise<void> {
  const c = await RawSmtp.open(port);
  try {
    assert.match(await c.reply(), /^220 /);
    assert.match(await say(c, 'EHLO raw.test'), /^250/);
    assert.match(await say(c, 'MAIL FROM:<alice@corp.test>'), /^250 /);
    for (const r of rcpts) assert.match(await say(c, `RCPT TO:${r}`), /^250 /);
    assert.match(await say(c, 'DATA'), /^354 /);
    assert.match(await say(c, `Subject: ${subject}\r\n\r\nbody\r\n.`), /^250 2\.0\.0 Ok: queued/);
  } finally {
    c.close();
  }
}

const subjectOf = (env: SeenEnvelope | undefined) =>
  /^Subject: (.*)$/m.exec(env ? bodyText(env, 'latin1') : '')?.[1]?.trim();

describe('routing at receipt: the common case goes straight to OUTBOUND (real nats-server)', () => {
  let h: Harness;
  let outbound: Consumer;
  before(async () => {
    h = await startHarness({
      listeners: [{ name: 'mx', host: '127.0.0.1', port: 0, mode: 'relay' }],
      settings: { directRouting: true },
      documents: oursAndOffice('127.0.0.1/32'),
    });
    await ensureConsumer(h.nc, STREAMS.outbound, 'direct-test', 'mail.out.>');
    outbound = await jetstream(h.nc).consumers.get(STREAMS.outbound, 'direct-test');
  });
  after(async () => {
    await h?.stop();
  });

  const nextJob = async () => {
    const m = await outbound.next({ expires: 10_000 });
    assert.ok(m, 'a job on OUTBOUND');
    m.ack();
    const { job, attached } = readJobMessage(m);
    return { job, attached, msgId: m.headers?.get('Nats-Msg-Id'), subject: m.subject };
  };
  const attachedSubject = (attached: Buffer | undefined) =>
    /^Subject: (.*)$/m.exec(attached?.toString('latin1') ?? '')?.[1]?.trim();

  it('publishes a single-route message as one direct job (the queue’s routing, the job’s usual id), nothing on SUBMIT', async () => {
    await send(h.port('mx'), 'one route', ['<bob@far.test>', '<carol@far.test>']);
    await send(h.port('mx'), 'two routes', ['<bob@far.test>', '<dan@other.test>']);
    const { job, attached, msgId, subject } = await nextJob();
    assert.equal(job.direct, true);
    // The body rides along raw (services/common/body-wire.ts): no base64, no body store.
    assert.deepEqual(job.body, { attached: attached?.length });
    assert.deepEqual(job.recipients, ['bob@far.test', 'carol@far.test']);
    assert.deepEqual(job.route, { kind: 'mx', domain: 'far.test', tls: 'opportunistic' });
    assert.equal(job.policy, 'prod/office');
    assert.equal(job.attempt, 1);
    assert.equal(subject, 'mail.out.default.far_2etest');
    assert.equal(msgId, msgIds.job(job.jobId, 1));
    assert.equal(attachedSubject(attached), 'one route');
    // Two routes: the queue's, so the next envelope on SUBMIT is that message — the first never went there.
    const env = await h.nextEnvelope(10_000);
    assert.deepEqual(env?.to, ['bob@far.test', 'dan@other.test']);
  });

  it('sends a message with RFC 3461 parameters to the queue (success and delay notices are its to send)', async () => {
    await send(h.port('mx'), 'with notify', ['<bob@far.test> NOTIFY=SUCCESS']);
    const env = await h.nextEnvelope(10_000);
    assert.equal(subjectOf(env), 'with notify');
  });

  it('sends a message with a suppressed recipient to the queue, and a clean one straight to delivery', async () => {
    const list = new SuppressionList(await new Kvm(h.nc).open(SUPPRESSION_BUCKET), 60_000);
    await list.put({ address: 'gone@far.test', reason: 'manual' }, 60_000);
    await send(h.port('mx'), 'suppressed', ['<gone@far.test>']);
    await send(h.port('mx'), 'clean', ['<bob@far.test>']);
    const env = await h.nextEnvelope(10_000);
    assert.equal(subjectOf(env), 'suppressed');
    const { attached } = await nextJob();
    assert.equal(attachedSubject(attached), 'clean');
  });

  it('attaches bodies up to the limit; a larger one goes to the body store and the job carries the reference', async () => {
    const big = 'x'.repeat(300 * 1024);
    const c = await RawSmtp.open(h.port('mx'));
    try {
      assert.match(await c.reply(), /^220 /);
      assert.match(await say(c, 'EHLO raw.test'), /^250/);
      assert.match(await say(c, 'MAIL FROM:<alice@corp.test>'), /^250 /);
      assert.match(await say(c, 'RCPT TO:<bob@far.test>'), /^250 /);
      assert.match(await say(c, 'DATA'), /^354 /);
      assert.match(await say(c, `Subject: big\r\n\r\n${big}\r\n.`), /^250 2\.0\.0 Ok: queued/);
    } finally {
      c.close();
    }
    const { job, attached } = await nextJob();
    assert.equal(attached, undefined);
    assert.ok('stored' in job.body, JSON.stringify(job.body));
    assert.equal(job.direct, true);
  });

  it('routes inbound mail for one mailbox route directly too (the same router as the queue)', async () => {
    await send(h.port('mx'), 'inbound', ['<carol@ours.example>']);
    const { job } = await nextJob();
    assert.equal(job.direct, true);
    assert.deepEqual(job.recipients, ['carol@ours.example']);
    assert.equal(job.policy, undefined);
  });
});
