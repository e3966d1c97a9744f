import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decideReplicas, desiredReplicas, type ScaleState } from '../../../operator/autoscaler/decision.ts';
import { type PoolSettings, parsePools } from '../../../operator/autoscaler/pools.ts';

const pool: PoolSettings = {
  name: 'default',
  deployment: 'delivery',
  namespace: 'postern',
  minReplicas: 1,
  maxReplicas: 10,
  targetPerReplica: 100,
  scaleDownStabilizationSeconds: 60,
};

describe('delivery autoscaler decision', () => {
  it('desired = ceil(lag / targetPerReplica) clamped to [min, max]', () => {
    assert.equal(desiredReplicas(0, pool), 1);
    assert.equal(desiredReplicas(1, pool), 1);
    assert.equal(desiredReplicas(101, pool), 2);
    assert.equal(desiredReplicas(450, pool), 5);
    assert.equal(desiredReplicas(1_000_000, pool), 10);
    assert.equal(desiredReplicas(0, { ...pool, minReplicas: 0 }), 0);
  });

  it('scales up at once', () => {
    const d = decideReplicas({ lag: 450, current: 1, now: 0, pool });
    assert.equal(d.replicas, 5);
  });

  it('scales down only after a full window, to the highest recommendation in it', () => {
    let state: ScaleState | undefined;
    const step = (now: number, lag: number, current: number) => {
      const d = decideReplicas({ lag, current, now, pool, state });
      state = d.state;
      return d.replicas;
    };
    assert.equal(step(0, 800, 1), 8);
    assert.equal(step(10_000, 0, 8), 8, 'drained, but the window has not passed');
    assert.equal(step(30_000, 300, 8), 8);
    assert.equal(step(59_000, 0, 8), 8);
    // At 61 s the 800 recommendation (t=0) left the window; 300 (t=30 s) is still in it.
    assert.equal(step(61_000, 0, 8), 3);
    assert.equal(step(91_000, 0, 3), 1, 'every recommendation in the window is now 1');
  });

  it('never scales down before one window has been observed (e.g. right after the operator started)', () => {
    const d = decideReplicas({ lag: 0, current: 6, now: 5_000, pool });
    assert.equal(d.replicas, 6);
  });

  it('brings a hand-set count above max back to max at once', () => {
    assert.equal(decideReplicas({ lag: 0, current: 50, now: 0, pool }).replicas, 10);
  });
});

describe('POSTERN_POOLS', () => {
  it('parses pools with defaults and the operator namespace', () => {
    const pools = parsePools('[{"name":"bulk","deployment":"postern-delivery-bulk"}]', 'postern');
    assert.deepEqual(pools, [
      {
        name: 'bulk',
        deployment: 'postern-delivery-bulk',
        namespace: 'postern',
        minReplicas: 1,
        maxReplicas: 10,
        targetPerReplica: 100,
        scaleDownStabilizationSeconds: 300,
      },
    ]);
    assert.deepEqual(parsePools(undefined), []);
  });

  it('refuses bad settings with a readable error', () => {
    assert.throws(() => parsePools('{'), /not JSON/);
    assert.throws(() => parsePools('{}'), /array/);
    assert.throws(
      () => parsePools('[{"name":"x","deployment":"d","targetPerReplica":0}]'),
      /targetPerReplica/,
    );
    assert.throws(() => parsePools('[{"name":"x","deployment":"d","minReplicas":5,"maxReplicas":2}]'), /min/);
  });
});
