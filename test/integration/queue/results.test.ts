import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { bodyText, eventually, policy, type QueueHarness, startHarness } from './harness.ts';

const deferred = { status: 'deferred' as const, response: '451 4.3.0 try again later' };
const delivered = { status: 'delivered' as const, response: '250 2.0.0 ok' };

describe('queue: delivery results', () => {
  let h: QueueHarness;
  before(async () => {
    h = await startHarness({
      policies: {
        'mail.fast': policy({ retry: { scheduleMs: [500], maxLifetimeMs: 3_600_000 } }),
        'mail.slow': policy({ retry: { scheduleMs: [2000], maxLifetimeMs: 3_600_000 } }),
        'mail.short': policy({ retry: { scheduleMs: [60_000], maxLifetimeMs: 1000 } }),
        'mail.later': policy({ retry: { scheduleMs: [600_000], maxLifetimeMs: 3_600_000 } }),
      },
    });
  });
  after(async () => {
    await h?.close();
  });

  it('a 4xx defers: the job re-appears on OUTBOUND as attempt 2 when its schedule is due, not before', async () => {
    await h.submit({ id: 'd1', to: ['a@one.example'], policy: 'mail.slow' });
    const first = await h.jobFor('d1');
    await h.report(first.job, [deferred]);
    const state = await eventually('deferral recorded', async () => {
      const s = await h.readState('d1');
      return s?.jobs['d1.0']?.status === 'deferred' ? s : undefined;
    });
    const due = Date.parse(state.jobs['d1.0']!.nextAttemptAt!);
    // The deferred job waits as a schedule outside the delivery consumer's subjects.
    if (Date.now() < due - 300) {
      assert.equal(h.jobs.filter((s) => s.job.messageId === 'd1' && s.job.attempt === 2).length, 0);
    }
    const second = await h.jobFor('d1', 2);
    assert.ok(second.arrivedAt >= due - 50, 'the scheduler released it at its due time, not earlier');
    assert.equal(second.scheduler, 'mail.sched.default.d1_2e0');
    assert.deepEqual(second.job.recipients, ['a@one.example']);
    assert.equal(second.subject, first.subject);
    await h.report(second.job, [delivered]);
    await eventually('message complete', async () => (await h.readState('d1')) === undefined);
    assert.ok(h.events.some((e) => e.kind === 'deferred' && e.messageId === 'd1'));
    assert.ok(h.events.some((e) => e.kind === 'delivered' && e.messageId === 'd1' && e.attempt === 2));
  });

  it('mixed outcomes: delivered and failed are final, only the deferred recipient is retried', async () => {
    await h.submit({
      id: 'd2',
      to: ['ok@one.example', 'bad@one.example', 'later@one.example'],
      policy: 'mail.fast',
    });
    const first = await h.jobFor('d2');
    await h.report(first.job, [delivered, { status: 'failed', response: '550 5.7.1 rejected' }, deferred]);
    const second = await h.jobFor('d2', 2);
    assert.deepEqual(second.job.recipients, ['later@one.example']);
    const dsn = await eventually('DSN for bad@', () =>
      h.submitted.find((e) => e.kind === 'dsn' && e.id.startsWith('d2')),
    );
    assert.match(bodyText(dsn), /Final-Recipient: rfc822; bad@one\.example/);
    assert.doesNotMatch(bodyText(dsn), /later@one\.example|ok@one\.example/);
  });

  it('a deferral past the max lifetime expires the recipient with a 4.4.7 DSN to the sender', async () => {
    await h.submit({ id: 'e1', to: ['slow@one.example'], policy: 'mail.short' });
    const first = await h.jobFor('e1');
    await h.report(first.job, [{ ...deferred, response: '451 4.4.1 mx.one.example not answering' }]);
    const dsn = await eventually('expiry DSN', () =>
      h.submitted.find((e) => e.kind === 'dsn' && e.id.startsWith('e1')),
    );
    assert.equal(dsn.from, '');
    assert.deepEqual(dsn.to, ['alice@corp.test']);
    const text = bodyText(dsn);
    assert.match(text, /Status: 4\.4\.7/);
    assert.match(text, /Diagnostic-Code: smtp; 451 4\.4\.1 mx\.one\.example not answering/);
    assert.match(text, /Subject: test e1/, 'the original headers are attached');
    await eventually('message complete', async () => (await h.readState('e1')) === undefined);
    // The DSN itself is routed like any message: back to the sender's domain by MX.
    const dsnJob = await h.jobFor(dsn.id);
    assert.equal(dsnJob.job.kind, 'dsn');
    assert.deepEqual(dsnJob.job.route, { kind: 'mx', domain: 'corp.test', tls: 'opportunistic' });
  });

  it('a 5xx bounces with a DSN carrying the remote reply, then suppresses the unknown address', async () => {
    await h.submit({ id: 'b1', to: ['gone@one.example'], policy: 'mail.fast' });
    const first = await h.jobFor('b1');
    await h.report(first.job, [
      {
        status: 'failed',
        response: '550 5.1.1 <gone@one.example>: Recipient address rejected: User unknown in local table',
        enhanced: '5.1.1',
        remoteMta: 'mx.one.example',
      },
    ]);
    const dsn = await eventually('bounce DSN', () =>
      h.submitted.find((e) => e.kind === 'dsn' && e.id.startsWith('b1')),
    );
    const text = bodyText(dsn);
    assert.match(text, /Content-Type: multipart\/report; report-type=delivery-status/);
    assert.match(text, /Status: 5\.1\.1/);
    assert.match(text, /Remote-MTA: dns; mx\.one\.example/);
    assert.match(text, /Recipient address rejected: User unknown in local table/);
    await eventually('message complete', async () => (await h.readState('b1')) === undefined);

    await h.submit({ id: 'b2', to: ['GONE@one.example', 'fine@one.example'], policy: 'mail.fast' });
    const job = await h.jobFor('b2');
    assert.deepEqual(job.job.recipients, ['fine@one.example'], 'the suppressed address is not attempted');
    await eventually('suppressed event', () =>
      h.events.find(
        (e) => e.kind === 'suppressed' && e.messageId === 'b2' && e.recipients?.[0] === 'GONE@one.example',
      ),
    );
    const dsn2 = await eventually('suppression DSN', () =>
      h.submitted.find((e) => e.kind === 'dsn' && e.id.startsWith('b2')),
    );
    assert.match(bodyText(dsn2), /Final-Recipient: rfc822; GONE@one\.example/);
    assert.match(await h.registry.metrics(), /postern_recipients_final_total\{result="suppressed"\} 1/);
  });

  it('a 5xx that is not an unknown user bounces without suppressing the address', async () => {
    await h.submit({ id: 'b3', to: ['picky@one.example'], policy: 'mail.fast' });
    await h.report((await h.jobFor('b3')).job, [{ status: 'failed', response: '554 5.7.1 spam detected' }]);
    await eventually('message complete', async () => (await h.readState('b3')) === undefined);
    await h.submit({ id: 'b4', to: ['picky@one.example'], policy: 'mail.fast' });
    assert.deepEqual((await h.jobFor('b4')).job.recipients, ['picky@one.example']);
  });

  it('never bounces to the null sender, nor bounces a DSN', async () => {
    await h.submit({ id: 'n1', from: '', to: ['x@one.example'], policy: 'mail.fast' });
    await h.submit({ id: 'n2', from: '', kind: 'dsn', to: ['y@one.example'] });
    for (const id of ['n1', 'n2']) {
      await h.report((await h.jobFor(id)).job, [{ status: 'failed', response: '550 5.1.1 no such user' }]);
    }
    // A DSN is published before the state is recorded, so once the state is gone none can follow.
    for (const id of ['n1', 'n2']) {
      await eventually(`${id} complete`, async () => (await h.readState(id)) === undefined);
    }
    await h.settled();
    assert.equal(h.submitted.filter((e) => e.kind === 'dsn' && /^n[12]-/.test(e.id)).length, 0);
    assert.equal(h.events.filter((e) => e.kind === 'dsn' && /^n[12]$/.test(e.messageId)).length, 0);
  });

  it('deletes the stored body object only when every job of the message is final', async () => {
    const raw = `From: alice@corp.test\r\nSubject: big one\r\n\r\n${'x'.repeat(200_000)}\r\n`;
    await h.bodies.put({ name: 'big1' }, new Response(raw).body!);
    await h.submit({
      id: 'o1',
      to: ['a@one.example', 'b@two.example'],
      policy: 'mail.fast',
      body: { object: 'big1', size: raw.length },
    });
    const j0 = (
      await eventually('two jobs', () => {
        const jobs = h.jobs.filter((s) => s.job.messageId === 'o1');
        return jobs.length === 2 ? jobs : undefined;
      })
    ).map((s) => s.job);
    await h.report(j0[0]!, [delivered]);
    await eventually(
      'first job final',
      async () => (await h.readState('o1'))?.jobs[j0[0]!.jobId]?.status === 'final',
    );
    assert.equal((await h.bodies.info('big1'))?.deleted, false, 'the body stays while a job is pending');
    await h.report(j0[1]!, [{ status: 'failed', response: '550 5.2.1 mailbox disabled' }]);
    await eventually('body deleted', async () => (await h.bodies.info('big1'))?.deleted === true);
    assert.equal(await h.bodies.get('big1'), null, 'the object can no longer be read');
    const dsn = await eventually('DSN for o1', () =>
      h.submitted.find((e) => e.kind === 'dsn' && e.id.startsWith('o1')),
    );
    assert.match(bodyText(dsn), /Subject: big one/, 'headers read from the object store');
    assert.equal(await h.readState('o1'), undefined);
  });

  it('concurrent results for different jobs of one message are all recorded (compare-and-set)', async () => {
    const to = Array.from({ length: 12 }, (_, i) => `u${i}@d${i}.example`);
    await h.submit({ id: 'c1', to, policy: 'mail.later' });
    const jobs = (
      await eventually('12 jobs', () => {
        const js = h.jobs.filter((s) => s.job.messageId === 'c1');
        return js.length === 12 ? js : undefined;
      })
    ).map((s) => s.job);
    await Promise.all(jobs.map((job, i) => h.report(job, [i % 2 === 0 ? delivered : deferred])));
    const state = await eventually('all 12 recorded', async () => {
      const s = await h.readState('c1');
      return s && Object.values(s.jobs).every((j) => j.status !== 'active') ? s : undefined;
    });
    const byStatus = (st: string) => Object.values(state.jobs).filter((j) => j.status === st).length;
    assert.equal(byStatus('final'), 6);
    assert.equal(byStatus('deferred'), 6);
    assert.equal(Object.values(state.final).filter((f) => f.result === 'delivered').length, 6);
  });

  it('ignores a duplicate result for an attempt already recorded', async () => {
    await h.submit({ id: 'u1', to: ['a@one.example'], policy: 'mail.later' });
    const job = (await h.jobFor('u1')).job;
    await h.report(job, [deferred]);
    await eventually('deferred', async () => (await h.readState('u1'))?.jobs['u1.0']?.status === 'deferred');
    await h.js.publish(
      'mail.result.default',
      JSON.stringify({
        job,
        outcomes: [{ recipient: 'a@one.example', ...delivered }],
        attemptedAt: new Date().toISOString(),
        durationMs: 1,
      }),
      { msgID: 'dup-u1' },
    );
    await h.settled();
    const s = await h.readState('u1');
    assert.equal(s?.jobs['u1.0']?.status, 'deferred');
    assert.equal(s?.jobs['u1.0']?.attempt, 2);
  });
});
