/**
 * Direct jobs (routed at receipt, the lean path of docs/architecture.md) at delivery, against real smtp-server
 * sinks and a real nats-server: an attempt that delivers every recipient is settled by delivery itself — the
 * message's `received` and `delivered` events, the stored body deleted, no result for the queue; any other
 * outcome is reported on RESULTS with the body, for the queue to adopt the message.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { BodyStore } from '../../../services/common/body-store.ts';
import { attachedJob } from '../../../services/common/body-wire.ts';
import { readMailEvent } from '../../../services/common/contracts.ts';
import { msgIds } from '../../../services/common/msg-ids.ts';
import { STREAMS, SUBJECTS } from '../../../services/common/nats.ts';
import type { DeliveryJob, MailEvent } from '../../../services/common/types.ts';
import { type SmtpSink, startSmtpSink } from '../../helpers/smtp-sink.ts';
import { type Harness, makeJob, startHarness } from './harness.ts';

describe('direct jobs at delivery: settled here when all delivered, reported to the queue otherwise', () => {
  let h: Harness;
  let sink: SmtpSink;
  const events: { event: MailEvent; msgId: string | undefined }[] = [];

  /** The events of one message, read from EVENTS in stream order until `count` arrived (bounded). */
  const eventsOf = async (messageId: string, count: number) => {
    const js = jetstream(h.nc);
    const consumer = await js.consumers.get(STREAMS.events, 'direct-test-events');
    const deadline = Date.now() + 30_000;
    while (events.filter((e) => e.event.messageId === messageId).length < count) {
      if (Date.now() > deadline) throw new Error(`fewer than ${count} events for ${messageId} within 30 s`);
      const m = await consumer.next({ expires: 1000 });
      if (!m) continue;
      events.push({ event: readMailEvent(m.string()), msgId: m.headers?.get('Nats-Msg-Id') });
      m.ack();
    }
    return events.filter((e) => e.event.messageId === messageId);
  };

  before(async () => {
    h = await startHarness();
    await (await jetstreamManager(h.nc)).consumers.add(STREAMS.events, {
      durable_name: 'direct-test-events',
      ack_policy: AckPolicy.Explicit,
      filter_subject: 'mail.event.>',
    });
    sink = await startSmtpSink({
      host: '127.0.0.9',
      onRcpt: (rcpt) => (rcpt.startsWith('later') ? { code: 451, message: '4.7.1 try later' } : 'accept'),
    });
    await h.startWorker({ concurrency: 2 });
  });
  after(async () => {
    await h?.close();
    await sink?.close();
  });

  const route = () => ({ kind: 'smarthost', host: sink.host, port: sink.port, tls: 'none' }) as const;

  it('delivered to every recipient: received then delivered events, the stored body deleted, no result', async () => {
    const bodies = new BodyStore(h.nc);
    const raw = Buffer.from(`Subject: stored\r\n\r\n${'x'.repeat(20_000)}\r\n`);
    const job = makeJob(route(), ['a@far.test', 'b@far.test'], { direct: true, policy: 'prod/office' });
    job.body = await bodies.put(job.messageId, raw, 5000);
    await h.publish(job);
    const seen = await eventsOf(job.messageId, 2);
    assert.deepEqual(
      seen.map((e) => [e.event.kind, e.msgId]),
      [
        ['received', msgIds.event('received', job.messageId)],
        ['delivered', msgIds.event('delivered', `${job.jobId}.1`)],
      ],
    );
    assert.deepEqual(seen[0]!.event.recipients, ['a@far.test', 'b@far.test']);
    assert.equal(seen[0]!.event.at, job.receivedAt);
    assert.equal(seen[1]!.event.policy, 'prod/office');
    assert.match(seen[1]!.event.response ?? '', /^250/);
    const [msg] = await sink.waitForMessages(1);
    assert.deepEqual(msg?.to, ['a@far.test', 'b@far.test']);
    // The body goes after the ack: wait (bounded) for the purge instead of assuming it happened.
    const deadline = Date.now() + 30_000;
    let gone = false;
    while (!gone && Date.now() < deadline) {
      gone = await bodies.get(job.body).then(
        () => false,
        (err: { code?: string }) => err.code === 'EBODYGONE',
      );
      if (!gone) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(gone, 'the stored body was deleted once the message was settled');
    // No result went to the queue: the next result on RESULTS is the one of the job below, not this one.
    const other = makeJob(route(), ['later@far.test'], { direct: true });
    await h.deliver(other);
    // Results are read in stream order, so every result published before that one has been read by now.
    await assert.rejects(h.waitResult(job.jobId, 0), /no DeliveryResult/);
  });

  it('not delivered to every recipient: a result with the body, for the queue to adopt', async () => {
    const job = makeJob(route(), ['ok@far.test', 'later@far.test'], { direct: true });
    const r = await h.deliver(job);
    assert.equal(r.job.direct, true);
    const raw = Buffer.from((job.body as { inline: string }).inline, 'base64');
    assert.deepEqual(r.body, { attached: raw.length });
    assert.deepEqual(r.attached, raw);
    assert.deepEqual(
      r.outcomes.map((o) => [o.recipient, o.status]),
      [
        ['ok@far.test', 'delivered'],
        ['later@far.test', 'deferred'],
      ],
    );
  });

  /** Publishes a direct job the way ingress does for the common case: the body attached raw (body-wire.ts). */
  const publishAttached = async (job: DeliveryJob, raw: Buffer) => {
    const { body: _body, ...rest } = job;
    const { payload, headers } = attachedJob(rest, raw);
    await jetstream(h.nc).publish(SUBJECTS.outbound(job.pool, `${sink.host}:${sink.port}`), payload, {
      msgID: msgIds.job(job.jobId, job.attempt),
      headers,
    });
  };

  it('an attached body is delivered byte for byte and, when delivered to all, needs no deletion', async () => {
    const job = makeJob(route(), ['att@far.test'], { direct: true });
    const raw = Buffer.from('Subject: attached\r\n\r\nraw bytes \u00e9\r\n', 'utf8');
    await publishAttached(job, raw);
    const seen = await eventsOf(job.messageId, 2);
    assert.deepEqual(
      seen.map((e) => e.event.kind),
      ['received', 'delivered'],
    );
    const msg = (await sink.waitForMessages(2)).find((x) => x.to.includes('att@far.test'));
    assert.ok(msg?.raw.includes(raw), 'the sink got the attached bytes unchanged');
  });

  it('an attached body leaves with the result: attached when small, stored when large', async () => {
    const small = makeJob(route(), ['later-small@far.test'], { direct: true });
    const smallRaw = Buffer.from('Subject: small\r\n\r\nhi\r\n');
    await publishAttached(small, smallRaw);
    const r1 = await h.waitResult(small.jobId);
    assert.deepEqual(r1.body, { attached: smallRaw.length });
    assert.deepEqual(r1.attached, smallRaw, 'raw bytes beside the result, no base64');

    const large = makeJob(route(), ['later-large@far.test'], { direct: true });
    const raw = Buffer.from(`Subject: large\r\n\r\n${'y'.repeat(40_000)}\r\n`);
    await publishAttached(large, raw);
    const r2 = await h.waitResult(large.jobId);
    assert.ok(r2.body && 'stored' in r2.body, JSON.stringify(r2.body));
    assert.deepEqual(await new BodyStore(h.nc).get(r2.body), raw);
  });

  it('a job written by an older release (body inline base64 in the JSON) is still delivered', async () => {
    const job = makeJob(route(), ['legacy@far.test']);
    await jetstream(h.nc).publish(
      SUBJECTS.outbound(job.pool, `${sink.host}:${sink.port}`),
      JSON.stringify(job),
      {
        msgID: msgIds.job(job.jobId, job.attempt),
      },
    );
    const r = await h.waitResult(job.jobId);
    assert.equal(r.outcomes[0]?.status, 'delivered', JSON.stringify(r.outcomes));
    const msg = (await sink.waitForMessages(1)).find((x) => x.to.includes('legacy@far.test'));
    assert.ok(msg?.raw.includes(Buffer.from((job.body as { inline: string }).inline, 'base64')));
  });

  it('an ordinary (queued) job’s result still travels without its body', async () => {
    const r = await h.deliver(makeJob(route(), ['later2@far.test']));
    assert.equal(r.body, undefined);
    assert.equal(r.job.direct, undefined);
  });
});
