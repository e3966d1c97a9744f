/**
 * A delivery pod being scaled down or rolled gets SIGTERM in the middle of SMTP transactions. It must stop
 * pulling jobs, finish the transactions in flight, publish their results, ack the jobs and exit 0: the mail
 * arrives once, nothing is redelivered.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { CONSUMERS, STREAMS } from '../../../services/common/nats.ts';
import { eventually } from '../../helpers/postern.ts';
import { type SmtpSink, startSmtpSink } from '../../helpers/smtp-sink.ts';
import { type ServiceProcess, startServiceProcess } from '../services/process.ts';
import { type Harness, makeJob, startHarness } from './harness.ts';

describe('delivery drains on SIGTERM', () => {
  let h: Harness;
  let sink: SmtpSink;
  let proc: ServiceProcess | undefined;
  before(async () => {
    h = await startHarness();
    // Every reply of this peer takes 1.5 s: a transaction lasts several seconds.
    sink = await startSmtpSink({ delayMs: 1500 });
  });
  after(async () => {
    proc?.kill();
    await sink?.close();
    await h?.close();
  });

  it('finishes the transaction in flight, reports it and exits 0; the message arrives once', async () => {
    proc = await startServiceProcess('services/delivery/main.ts', {
      NATS_URL: h.nats.url,
      POSTERN_POOL: 'default',
      POSTERN_HOSTNAME: 'postern.test',
    });
    await proc.waitForLine('the ready line', (l) => l['msg'] === 'ready');
    const job = makeJob({ kind: 'smarthost', host: sink.host, port: sink.port, tls: 'none' }, [
      'rcpt@far.test',
    ]);
    await h.publish(job);
    await eventually('the SMTP transaction started', () => sink.connections > 0);
    assert.equal(sink.messages.length, 0, 'precondition: the transaction is still in flight');

    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);

    const result = await h.waitResult(job.jobId);
    assert.deepEqual(
      result.outcomes.map((o) => o.status),
      ['delivered'],
    );
    assert.equal(sink.messages.length, 1);
    // Acked before exit: nothing pending or waiting for an ack, so no other worker delivers it again.
    const info = await (await jetstreamManager(h.nc)).consumers.info(
      STREAMS.outbound,
      CONSUMERS.delivery('default'),
    );
    assert.equal(info.num_ack_pending, 0);
    assert.equal(info.num_pending, 0);
    assert.equal(info.num_redelivered, 0);
  });
});
