import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { eventually, policy, type QueueHarness, startHarness } from './harness.ts';

describe('queue: admin API and process entry point', () => {
  let h: QueueHarness;
  let base: string;
  before(async () => {
    h = await startHarness({
      policies: { 'mail.later': policy({ retry: { scheduleMs: [600_000], maxLifetimeMs: 3_600_000 } }) },
    });
    base = `http://127.0.0.1:${h.queue.adminPort}`;
  });
  after(async () => {
    await h?.close();
  });

  async function deferOne(id: string) {
    await h.submit({ id, to: [`a@${id}.example`], policy: 'mail.later' });
    const job = (await h.jobFor(id)).job;
    await h.report(job, [{ status: 'deferred', response: '421 4.4.2 busy' }]);
    await eventually('deferred', async () => (await h.readState(id))?.jobs[`${id}.0`]?.status === 'deferred');
  }

  it('lists and shows queued messages with their jobs, attempts and next attempt', async () => {
    await deferOne('q1');
    const list = (await (await fetch(`${base}/queue?from=alice@corp.test`)).json()) as { id: string }[];
    assert.ok(list.some((e) => e.id === 'q1'));
    const res = await fetch(`${base}/queue/q1`);
    assert.equal(res.status, 200);
    const entry = (await res.json()) as {
      jobs: { status: string; attempt: number; nextAttemptAt: string; lastResponse: string }[];
    };
    assert.equal(entry.jobs[0]!.status, 'deferred');
    assert.equal(entry.jobs[0]!.attempt, 2);
    assert.ok(Date.parse(entry.jobs[0]!.nextAttemptAt) > Date.now());
    assert.equal(entry.jobs[0]!.lastResponse, '421 4.4.2 busy');
    assert.equal((await fetch(`${base}/queue/nope`)).status, 404);
  });

  it('retry-now releases a deferred job at once instead of at its scheduled time', async () => {
    await deferOne('q2');
    const res = await fetch(`${base}/queue/q2/retry`, { method: 'POST' });
    assert.deepEqual(await res.json(), { retried: ['q2.0'] });
    const again = await h.jobFor('q2', 2);
    assert.equal(again.scheduler, 'mail.sched.default.q2_2e0');
  });

  it('drop removes the message and cancels its schedule', async () => {
    await deferOne('q3');
    const res = await fetch(`${base}/queue/q3`, { method: 'DELETE' });
    assert.equal(res.status, 200);
    assert.equal(await h.readState('q3'), undefined);
    const info = await h.jsm.streams.info('OUTBOUND', { subjects_filter: 'mail.sched.>' });
    assert.ok(
      !Object.keys(info.state.subjects ?? {}).includes('mail.sched.default.q3_2e0'),
      'schedule purged',
    );
    assert.equal((await fetch(`${base}/queue/q3`, { method: 'DELETE' })).status, 404);
  });

  it('hold keeps a deferred message from being attempted until it is released', async () => {
    await deferOne('q4');
    const held = await fetch(`${base}/queue/q4/hold`, { method: 'POST' });
    assert.deepEqual(await held.json(), { held: ['q4.0'] });
    assert.equal((await h.readState('q4'))?.jobs['q4.0']?.status, 'held');
    const info = await h.jsm.streams.info('OUTBOUND', { subjects_filter: 'mail.sched.>' });
    assert.ok(
      !Object.keys(info.state.subjects ?? {}).includes('mail.sched.default.q4_2e0'),
      'schedule removed',
    );
    const released = await fetch(`${base}/queue/q4/release`, { method: 'POST' });
    assert.deepEqual(await released.json(), { released: ['q4.0'] });
    const again = await h.jobFor('q4', 2);
    assert.deepEqual(again.job.recipients, ['a@q4.example']);
    assert.equal((await h.readState('q4'))?.jobs['q4.0']?.status, 'active');
  });

  it('a job put on hold while in flight is held, not scheduled, when its attempt defers', async () => {
    await h.submit({ id: 'q5', to: ['a@q5.example'], policy: 'mail.later' });
    const job = (await h.jobFor('q5')).job;
    assert.deepEqual(await (await fetch(`${base}/queue/q5/hold`, { method: 'POST' })).json(), {
      held: ['q5.0'],
    });
    await h.report(job, [{ status: 'deferred', response: '451 4.3.0 later' }]);
    await eventually(
      'held after the deferral',
      async () => (await h.readState('q5'))?.jobs['q5.0']?.status === 'held',
    );
    const info = await h.jsm.streams.info('OUTBOUND', { subjects_filter: 'mail.sched.>' });
    assert.ok(!Object.keys(info.state.subjects ?? {}).includes('mail.sched.default.q5_2e0'), 'no schedule');
    assert.equal((await fetch(`${base}/queue/nope/hold`, { method: 'POST' })).status, 404);
  });

  it('main.ts starts from the environment, logs ready and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, ['services/queue/main.ts'], {
      env: { ...process.env, NATS_URL: h.nats.url, POSTERN_ADMIN_PORT: '0', POSTERN_HOSTNAME: 'mx.test' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    try {
      await eventually('ready line', () => out.split('\n').some((l) => l.includes('"msg":"ready"')));
      const code = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      assert.equal(await code, 0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
