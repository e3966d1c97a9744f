/**
 * Dead destinations (docs/delivery.md "Dead sites"), against real SMTP sinks and a real nats-server: a site whose
 * attempts in a row find it down is marked dead in KV `sites`; its later jobs are deferred at once, without a
 * connection, by every delivery process; healthy mail keeps going; when the dead spell is over one probe tries the
 * site again — a failed probe marks it dead again, a delivered one brings it back.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { KV } from '@nats-io/kv';
import { openSiteState, readSite, siteName, updateSite } from '../../../services/common/sites.ts';
import type { DeliveryResult, Route } from '../../../services/common/types.ts';
import { readDeliverySettings } from '../../../services/delivery/settings.ts';
import { eventually } from '../../helpers/postern.ts';
import { freePort, type SmtpSink, startSmtpSink } from '../../helpers/smtp-sink.ts';
import { type Harness, makeJob, startHarness } from './harness.ts';

const DEAD_AFTER = 3;
/** Long: the test ends a dead spell by moving its end into the past, never by waiting for a clock. */
const DEAD_MS = 600_000;
const SUSPENDED = /^delivery temporarily suspended: /;

describe('dead sites: deferred without a connection, shared by every process, probed after the spell', () => {
  let h: Harness;
  let kv: KV;
  let dead: SmtpSink;
  let healthy: SmtpSink;
  let answer: 'tempfail' | 'accept' = 'tempfail';
  /** RCPT commands the dead sink saw: one per transaction that reached it. */
  let rcpts = 0;
  const deadRoute = (): Route => ({ kind: 'smarthost', host: dead.host, port: dead.port, tls: 'none' });
  const healthyRoute = (): Route => ({
    kind: 'smarthost',
    host: healthy.host,
    port: healthy.port,
    tls: 'none',
  });
  const workerSettings = () => {
    const base = readDeliverySettings({});
    return { concurrency: 4, shaping: { ...base.shaping, deadAfter: DEAD_AFTER, deadMs: DEAD_MS } };
  };
  const first = (r: DeliveryResult) => r.outcomes[0]!;

  before(async () => {
    dead = await startSmtpSink({
      host: '127.0.0.71',
      onRcpt: () => {
        rcpts++;
        return answer === 'tempfail'
          ? { code: 451, message: '4.3.0 Mailbox server not answering' }
          : 'accept';
      },
    });
    healthy = await startSmtpSink({ host: '127.0.0.72' });
    h = await startHarness();
    kv = await openSiteState(h.nc);
  });
  after(async () => {
    await h?.close();
    await dead?.close();
    await healthy?.close();
  });

  it('marks a site dead after consecutive 451s at RCPT and defers its later jobs without connecting', async () => {
    const w1 = await h.startWorker(workerSettings());
    for (let i = 0; i < DEAD_AFTER; i++) {
      const r = await h.deliver(makeJob(deadRoute(), [`a${i}@dead.test`]));
      assert.equal(first(r).status, 'deferred');
      assert.match(first(r).response, /^451 4\.3\.0 /);
    }
    assert.equal(rcpts, DEAD_AFTER);
    // The mark is written beside the result, not before it: wait for the mark itself.
    const record = await eventually(
      'the dead mark in KV sites',
      async () => {
        const r = (await readSite(kv, siteName(deadRoute())))?.record;
        return r?.suspendedBy === 'dead' ? r : undefined;
      },
      20_000,
    );
    assert.match(record.reason ?? '', /451 4\.3\.0/);

    // Another process that never tried the site learns it from the shared record; the first one stops.
    await h.startWorker(workerSettings());
    await w1.service.close();
    await w1.nc.close();
    const connectionsBefore = dead.connections;
    for (let i = 0; i < 5; i++) {
      const r = await h.deliver(makeJob(deadRoute(), [`b${i}@dead.test`, `c${i}@dead.test`]));
      for (const o of r.outcomes) {
        assert.equal(o.status, 'deferred');
        assert.match(o.response, SUSPENDED);
        assert.match(o.response, /451 4\.3\.0 Mailbox server not answering/);
        assert.equal(o.enhanced, '4.4.1');
      }
      // Healthy mail between them is delivered.
      const ok = await h.deliver(makeJob(healthyRoute(), [`ok${i}@healthy.test`]));
      assert.equal(first(ok).status, 'delivered', JSON.stringify(ok.outcomes));
    }
    assert.equal(dead.connections, connectionsBefore, 'a deferred job of a dead site opened a connection');
    assert.equal(rcpts, DEAD_AFTER);
    assert.equal(healthy.messages.length, 5);
  });

  it('after the spell one probe tries the site: a failed probe marks it dead again, a delivered one revives it', async () => {
    const site = siteName(deadRoute());
    const endSpell = () =>
      updateSite(kv, site, (r) => ({ ...r, suspendedUntil: new Date(Date.now() - 1000).toISOString() }));
    /** Sends jobs one at a time until one reaches the sink (the process saw the spell end): that job's result. */
    const probe = async (tag: string) => {
      const before = rcpts;
      let n = 0;
      return eventually(
        'a job that reaches the dead sink',
        async () => {
          const r = await h.deliver(makeJob(deadRoute(), [`${tag}${n++}@dead.test`]));
          if (rcpts === before) {
            assert.match(first(r).response, SUSPENDED);
            return undefined;
          }
          assert.equal(rcpts, before + 1, 'more than one job tried the site');
          return r;
        },
        30_000,
      );
    };

    await endSpell();
    const failed = await probe('p');
    assert.equal(first(failed).status, 'deferred');
    assert.match(first(failed).response, /^451 4\.3\.0 /);
    // One failed probe is enough: dead again, for everyone, without DEAD_AFTER more attempts.
    const again = await h.deliver(makeJob(deadRoute(), ['after-probe@dead.test']));
    assert.match(first(again).response, SUSPENDED);
    await eventually(
      'a new dead spell in KV sites',
      async () => {
        const r = (await readSite(kv, site))?.record;
        return r?.suspendedBy === 'dead' && Date.parse(r.suspendedUntil ?? '') > Date.now();
      },
      20_000,
    );

    // The destination recovers; the next spell ends; the probe is delivered and the site takes mail again.
    answer = 'accept';
    await endSpell();
    const revived = await probe('q');
    assert.equal(first(revived).status, 'delivered', JSON.stringify(revived.outcomes));
    const before = rcpts;
    for (let i = 0; i < 3; i++) {
      const r = await h.deliver(makeJob(deadRoute(), [`back${i}@dead.test`]));
      assert.equal(first(r).status, 'delivered', JSON.stringify(r.outcomes));
    }
    assert.equal(rcpts, before + 3);
  });

  it('a refused port is marked dead too, and its jobs are deferred with the refusal as the reason', async () => {
    const port = await freePort('127.0.0.73');
    const route: Route = { kind: 'smarthost', host: '127.0.0.73', port, tls: 'none' };
    for (let i = 0; i < DEAD_AFTER; i++) {
      const r = await h.deliver(makeJob(route, [`r${i}@refused.test`]));
      assert.equal(first(r).status, 'deferred');
      assert.doesNotMatch(first(r).response, SUSPENDED);
    }
    const r = await h.deliver(makeJob(route, ['later@refused.test']));
    assert.equal(first(r).status, 'deferred');
    assert.match(first(r).response, SUSPENDED);
    assert.match(first(r).response, /ECONNREFUSED|refused/i);
    assert.equal(first(r).enhanced, '4.4.1');
  });
});
