import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Clock, WorkQueue } from '../../../operator/runtime/work-queue.ts';

/** A clock that only moves when the test says so. */
class ManualClock implements Clock {
  t = 0;
  timers = new Map<number, { at: number; fn: () => void }>();
  #next = 0;
  now() {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number) {
    const id = ++this.#next;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(h: unknown) {
    this.timers.delete(h as number);
  }
  advance(ms: number) {
    this.t += ms;
    for (const [id, timer] of [...this.timers].sort((a, b) => a[1].at - b[1].at)) {
      if (timer.at <= this.t) {
        this.timers.delete(id);
        timer.fn();
      }
    }
  }
}

describe('work queue', () => {
  it('merges repeated adds of a waiting key into one item', async () => {
    const q = new WorkQueue();
    q.add('ns/a');
    q.add('ns/a');
    q.add('ns/b');
    q.add('ns/a');
    assert.equal(q.len(), 2);
    assert.equal(await q.get(), 'ns/a');
    assert.equal(await q.get(), 'ns/b');
    assert.equal(q.len(), 0);
  });

  it('never hands out a key that is being processed; an add meanwhile re-queues it on done()', async () => {
    const q = new WorkQueue();
    q.add('ns/a');
    const key = await q.get();
    assert.equal(key, 'ns/a');
    q.add('ns/a');
    q.add('ns/a');
    assert.equal(q.len(), 0, 'a key in flight is not queued a second time');
    assert.ok(q.isProcessing('ns/a'));
    q.done('ns/a');
    assert.equal(q.len(), 1, 'the dirty key comes back exactly once');
    assert.equal(await q.get(), 'ns/a');
    q.done('ns/a');
    assert.equal(q.len(), 0);
  });

  it('hands a key straight to a waiting worker', async () => {
    const q = new WorkQueue();
    const waiting = q.get();
    q.add('ns/x');
    assert.equal(await waiting, 'ns/x');
    assert.ok(q.isProcessing('ns/x'));
  });

  it('backs off exponentially per key from 5 ms up to 1000 s and forgets on success', () => {
    const clock = new ManualClock();
    const q = new WorkQueue({ clock });
    const delays = Array.from({ length: 5 }, () => q.addRateLimited('ns/a'));
    assert.deepEqual(delays, [5, 10, 20, 40, 80]);
    assert.equal(q.numRequeues('ns/a'), 5);
    for (let i = 0; i < 30; i++) q.addRateLimited('ns/a');
    assert.equal(q.addRateLimited('ns/a'), 1_000_000, 'capped at 1000 s');
    assert.equal(q.addRateLimited('ns/b'), 5, 'backoff is per key');
    q.forget('ns/a');
    assert.equal(q.addRateLimited('ns/a'), 5);
  });

  it('queues a rate-limited key only when its delay has passed', async () => {
    const clock = new ManualClock();
    const q = new WorkQueue({ clock });
    q.addRateLimited('ns/a');
    q.addRateLimited('ns/a');
    assert.equal(q.len(), 0);
    clock.advance(4);
    assert.equal(q.len(), 0);
    clock.advance(1);
    assert.equal(q.len(), 1, 'the earliest pending delay (5 ms) wins');
    assert.equal(await q.get(), 'ns/a');
  });

  it('requeue-after keeps the earliest deadline and an immediate add cancels it', () => {
    const clock = new ManualClock();
    const q = new WorkQueue({ clock });
    q.addAfter('ns/a', 1000);
    q.addAfter('ns/a', 5000);
    clock.advance(1000);
    assert.equal(q.len(), 1);
    q.addAfter('ns/b', 1000);
    q.add('ns/b');
    assert.equal(q.len(), 2);
    clock.advance(5000);
    assert.equal(q.len(), 2, 'the cancelled delay does not add b again');
  });

  it('reports its depth and wakes waiting workers with undefined on shutdown', async () => {
    const depths: number[] = [];
    const q = new WorkQueue({ onDepth: (d) => depths.push(d) });
    q.add('a');
    q.add('b');
    await q.get();
    assert.deepEqual(depths, [1, 2, 1]);
    await q.get();
    const waiting = q.get();
    q.shutDown();
    assert.equal(await waiting, undefined);
    q.add('c');
    assert.equal(q.len(), 0, 'a shut-down queue accepts nothing');
  });
});
