/**
 * `postern queue summary` and `GET /queue/summary`: the queue's shape by site and age against a real nats-server
 * and the queue service, with deferrals reported the way delivery reports them; the per-site deferral metric
 * gets its series.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { QueueSummary } from '../../../services/queue/summary.ts';
import { eventually, policy, type QueueHarness, startHarness } from './harness.ts';

const ROOT = join(import.meta.dirname, '../../..');

describe('queue summary (qshape) over the admin API and the CLI', () => {
  let h: QueueHarness;
  let base: string;
  before(async () => {
    h = await startHarness({
      policies: { 'mail.later': policy({ retry: { scheduleMs: [600_000], maxLifetimeMs: 3_600_000 } }) },
    });
    base = `http://127.0.0.1:${h.queue.adminPort}`;
    // Two messages deferred by slow.example with the same reply, one by grey.example with a reply carrying a
    // queue id, and one message with two recipients still active (never attempted).
    const deferred: [string, string, string][] = [
      ['s1', 'slow.example', '421 4.4.2 busy, try later'],
      ['s2', 'slow.example', '421 4.4.2 busy, try later'],
      ['s3', 'grey.example', '451 4.7.1 greylisted, id 8F3A92C1D4 seen 1733412345'],
    ];
    for (const [id, domain, response] of deferred) {
      await h.submit({ id, to: [`a@${domain}`], policy: 'mail.later' });
      await h.report((await h.jobFor(id)).job, [{ status: 'deferred', response }]);
      await eventually(
        'deferred',
        async () => (await h.readState(id))?.jobs[`${id}.0`]?.status === 'deferred',
      );
    }
    await h.submit({ id: 's4', to: ['x@busy.example', 'y@busy.example'], policy: 'mail.later' });
    await h.jobFor('s4');
  });
  after(async () => {
    await h?.close();
  });

  it('counts messages and recipients by site and age bucket, oldest first known, top reasons', async () => {
    const res = await fetch(`${base}/queue/summary`);
    assert.equal(res.status, 200);
    const s = (await res.json()) as QueueSummary;
    assert.deepEqual(s.buckets, ['5', '10', '20', '40', '80', '160', '320', '640', '1280', '1280+']);
    assert.equal(s.total.messages, 4);
    assert.equal(s.total.recipients, 5);
    assert.deepEqual(
      { active: s.total.active, deferred: s.total.deferred, held: s.total.held },
      { active: 2, deferred: 3, held: 0 },
    );
    // Just received: everything is in the first column.
    assert.equal(s.total.messagesByAge[0], 4);
    const site = (name: string) => s.sites.find((x) => x.site === name);
    assert.deepEqual([site('slow.example')?.messages, site('slow.example')?.recipients], [2, 2]);
    assert.deepEqual([site('busy.example')?.messages, site('busy.example')?.recipients], [1, 2]);
    assert.equal(site('grey.example')?.deferred, 1);
    assert.equal(s.oldest?.id, 's1');
    assert.deepEqual(s.topReasons[0], {
      reason: '421 4.4.2 busy, try later',
      recipients: 2,
      messages: 2,
      sites: ['slow.example'],
    });
    assert.equal(s.topReasons[1]?.reason, '451 4.7.1 greylisted, id … seen …');
  });

  it('filters by status and refuses a bad one', async () => {
    const s = (await (await fetch(`${base}/queue/summary?status=deferred`)).json()) as QueueSummary;
    assert.equal(s.total.messages, 3);
    assert.ok(!s.sites.some((x) => x.site === 'busy.example'));
    const bad = await fetch(`${base}/queue/summary?status=frozen`);
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: string }).error, /status must be one of/);
  });

  it('prints a qshape-like table with postern queue summary', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [join(ROOT, 'bin/postern.ts'), 'queue', 'summary', '--admin', base],
      { cwd: ROOT },
    );
    const lines = stdout.split('\n');
    assert.match(lines[1] ?? '', /^\s+T\s+5\s+10\s+20\s+40\s+80\s+160\s+320\s+640\s+1280\s+1280\+\s+rcpts$/);
    assert.match(stdout, /^TOTAL\s+4\s+4(\s+0){9}\s+5$/m);
    assert.match(stdout, /^slow\.example\s+2\s+2(\s+0){9}\s+2$/m);
    assert.match(stdout, /^oldest: s1 /m);
    assert.match(stdout, /^\s+2\s+2 {2}421 4\.4\.2 busy, try later {2}\[slow\.example\]$/m);
  });

  it('exports deferrals by site with a bounded site label', async () => {
    const text = await h.registry.metrics();
    assert.match(text, /^postern_site_deferrals_total\{site="slow\.example"[^}]*\} 2$/m);
    assert.match(text, /^postern_site_deferrals_total\{site="grey\.example"[^}]*\} 1$/m);
  });
});
