/**
 * The loop supervisor: a loop that fails is restarted (counted, logged with its reason, not ready meanwhile), a
 * loop that is up again is ready again, and a stopped loop is never restarted.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { LoopSupervisor } from '../../../services/common/supervise.ts';
import { createLogger } from '../../../services/common/telemetry.ts';

const restartsOf = async (registry: Registry, loop: string) =>
  (await registry.getSingleMetric('postern_loop_restarts_total')!.get()).values.find(
    (v) => v.labels['loop'] === loop,
  )?.value;

describe('LoopSupervisor', () => {
  it('restarts a failing loop until it is up, counting each restart; healthy only while every loop is up', async () => {
    const registry = new Registry();
    const loops = new LoopSupervisor({ logger: createLogger('test', 'silent'), registry, initialDelayMs: 1 });
    let runs = 0;
    let release!: () => void;
    const holding = new Promise<void>((r) => (release = r));
    const healthDuringFailures: boolean[] = [];
    const loop = loops.run('consume', async (up, signal) => {
      runs++;
      healthDuringFailures.push(loops.healthy());
      if (runs < 3) throw new Error(`broken ${runs}`);
      up();
      const aborted = new Promise((r) => signal.addEventListener('abort', r));
      // The third run ends by itself when released; later runs run until stopped.
      await (runs === 3 ? Promise.race([holding, aborted]) : aborted);
    });
    await loop.started;
    assert.equal(runs, 3);
    assert.deepEqual(healthDuringFailures, [false, false, false]);
    assert.equal(loops.healthy(), true);
    assert.equal(await restartsOf(registry, 'consume'), 2);

    // The loop ends by itself: a failure too (a long-lived loop never ends while the service runs).
    release();
    await new Promise<void>((resolve) => {
      const check = () => (runs > 3 ? resolve() : setImmediate(check));
      check();
    });
    assert.equal(await restartsOf(registry, 'consume'), 3);
    await loop.stop();
    assert.equal(loops.healthy(), true, 'a stopped loop does not hold readiness');
  });

  it('a loop that ends while the process is closing is not restarted', async () => {
    const registry = new Registry();
    const loops = new LoopSupervisor({
      logger: createLogger('test', 'silent'),
      registry,
      closing: () => true,
      initialDelayMs: 1,
    });
    let runs = 0;
    const loop = loops.run('watch', async () => {
      runs++;
    });
    await assert.rejects(loop.started, /stopped before it was up/);
    await loop.stop();
    assert.equal(runs, 1);
    assert.equal(await restartsOf(registry, 'watch'), 0);
  });
});
