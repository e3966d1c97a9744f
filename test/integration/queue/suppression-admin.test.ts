/**
 * The suppression list over the queue admin API against a real nats-server: what a hard bounce writes, operator
 * adds and removes (with the routing effect and the `suppressed` event), domain filter, refusal of bad input as a
 * whole, and entries written before the address was kept.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Kvm } from '@nats-io/kv';
import { SUPPRESSION_BUCKET } from '../../../services/common/nats.ts';
import { type ListedSuppression, suppressionKey } from '../../../services/common/suppression.ts';
import { eventually, policy, type QueueHarness, startHarness } from './harness.ts';

describe('queue: suppression list admin API', () => {
  let h: QueueHarness;
  let base: string;
  before(async () => {
    h = await startHarness({ policies: { 'mail.test': policy() } });
    base = `http://127.0.0.1:${h.queue.adminPort}`;
  });
  after(async () => {
    await h?.close();
  });

  const list = async (q = '') =>
    (await (await fetch(`${base}/suppression${q}`)).json()) as ListedSuppression[];
  const post = (entries: unknown[]) =>
    fetch(`${base}/suppression`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ entries }),
    });

  it('a hard bounce is listed with its address, reason, reply, creation and expiry', async () => {
    await h.submit({ id: 's1', to: ['gone@one.example'], policy: 'mail.test' });
    await h.report((await h.jobFor('s1')).job, [
      { status: 'failed', response: '550 5.1.1 <gone@one.example>: unknown' },
    ]);
    const entry = await eventually('listed', async () =>
      (await list()).find((e) => e.address === 'gone@one.example'),
    );
    assert.equal(entry.reason, 'hard-bounce');
    assert.equal(entry.detail, 'bad destination mailbox address');
    assert.equal(entry.response, '550 5.1.1 <gone@one.example>: unknown');
    assert.ok(Date.parse(entry.until) > Date.parse(entry.createdAt!));
  });

  it('an operator add suppresses at routing with a `suppressed` event naming the policy; remove undoes it', async () => {
    const res = await post([
      { address: 'Block@Two.example', reason: 'complaint', note: 'fbl', expires: '1d' },
    ]);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { added: 1, errors: [] });
    const got = (await (await fetch(`${base}/suppression/block@two.example`)).json()) as ListedSuppression;
    assert.equal(got.address, 'Block@Two.example');
    assert.equal(got.reason, 'complaint');
    assert.equal(got.detail, 'fbl');

    await h.submit({ id: 's2', to: ['block@two.example', 'ok@two.example'], policy: 'mail.test' });
    assert.deepEqual((await h.jobFor('s2')).job.recipients, ['ok@two.example']);
    const event = await eventually('suppressed event', () =>
      h.events.find((e) => e.kind === 'suppressed' && e.messageId === 's2'),
    );
    assert.equal(event.policy, 'mail/test');
    assert.deepEqual(event.recipients, ['block@two.example']);

    assert.equal((await fetch(`${base}/suppression/block@two.example`, { method: 'DELETE' })).status, 200);
    assert.equal((await fetch(`${base}/suppression/block@two.example`, { method: 'DELETE' })).status, 404);
    assert.equal((await fetch(`${base}/suppression/block@two.example`)).status, 404);
    await h.submit({ id: 's3', to: ['block@two.example'], policy: 'mail.test' });
    assert.deepEqual((await h.jobFor('s3')).job.recipients, ['block@two.example']);
  });

  it('refuses a batch with any bad entry, saying which, and writes none of it', async () => {
    const res = await post([
      { address: 'fine@three.example' },
      { address: 'user%other@three.example' },
      { address: 'x@three.example', reason: 'annoying' },
      { address: 'y@three.example', expires: '45d' },
    ]);
    assert.equal(res.status, 400);
    const body = (await res.json()) as { errors: { index: number; error: string }[] };
    assert.deepEqual(
      body.errors.map((e) => e.index),
      [1, 2, 3],
    );
    assert.match(body.errors[0]!.error, /% routing is refused/);
    assert.equal((await fetch(`${base}/suppression/fine@three.example`)).status, 404);
    assert.equal((await fetch(`${base}/suppression`, { method: 'POST', body: 'nope' })).status, 400);
  });

  it('filters by recipient domain and lists entries written before the address was kept by their key', async () => {
    assert.equal((await post([{ address: 'a@four.example' }, { address: 'b@five.example' }])).status, 200);
    const four = await list('?domain=FOUR.example');
    assert.deepEqual(
      four.map((e) => e.address),
      ['a@four.example'],
    );
    const kv = await new Kvm(h.nc).open(SUPPRESSION_BUCKET);
    const legacyKey = suppressionKey('old@six.example');
    await kv.put(
      legacyKey,
      JSON.stringify({
        until: new Date(Date.now() + 60_000).toISOString(),
        reason: 'unknown user (reply text)',
        response: '550 no such user',
      }),
    );
    const legacy = (await list()).find((e) => e.key === legacyKey)!;
    assert.equal(legacy.address, undefined);
    assert.equal(legacy.reason, 'hard-bounce');
    assert.equal(legacy.detail, 'unknown user (reply text)');
    // …and it still suppresses.
    await h.submit({ id: 's4', to: ['old@six.example', 'new@six.example'], policy: 'mail.test' });
    assert.deepEqual((await h.jobFor('s4')).job.recipients, ['new@six.example']);
  });
});
