import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decideReplicas } from '../../../operator/autoscaler/decision.ts';
import type { PoolSettings } from '../../../operator/autoscaler/pools.ts';
import {
  decodeScaleState,
  encodeScaleState,
  GRANULARITY_MS,
} from '../../../operator/autoscaler/scale-state.ts';

const pool: PoolSettings = {
  name: 'default',
  deployment: 'd',
  namespace: 'n',
  minReplicas: 1,
  maxReplicas: 10,
  targetPerReplica: 10,
  scaleDownStabilizationSeconds: 300,
};
const T0 = 1_800_000_000_000;

describe('the persisted scale-down window', () => {
  it('keeps only recommendations that can still be the window maximum, rounded up in time', () => {
    const text = encodeScaleState(
      {
        since: T0,
        history: [
          { at: T0 + 1000, replicas: 3 },
          { at: T0 + 2000, replicas: 5 },
          { at: T0 + 3000, replicas: 4 },
          { at: T0 + 4000, replicas: 1 },
        ],
      },
      pool,
    );
    // 3 is outlived by the later 5; 1 is the floor. 5 and 4 each can still decide.
    assert.deepEqual(JSON.parse(text!), {
      since: T0,
      history: [
        [Math.ceil((T0 + 2000) / GRANULARITY_MS) * GRANULARITY_MS, 5],
        [Math.ceil((T0 + 3000) / GRANULARITY_MS) * GRANULARITY_MS, 4],
      ],
    });
  });

  it('writes nothing when every recommendation is at the floor', () => {
    assert.equal(encodeScaleState({ since: T0, history: [{ at: T0, replicas: 1 }] }, pool), undefined);
  });

  it('a new leader adopts the window and scales down when the old leader would have, not a window later', () => {
    const old = { since: T0, history: [{ at: T0 + 10_000, replicas: 4 }] };
    const text = encodeScaleState(old, pool);
    // The new leader starts 60 s later; the backlog is gone (lag 0 → desired 1); 4 replicas run.
    const restored = decodeScaleState(text, pool, T0 + 70_000);
    assert.equal(restored?.since, T0);
    let state = restored;
    let replicas = 4;
    for (let t = T0 + 70_000; t <= T0 + 400_000; t += 5000) {
      const d = decideReplicas({ lag: 0, current: replicas, now: t, pool, state });
      state = d.state;
      if (d.replicas !== replicas) {
        // The stored 4 (rounded up by at most one granule) expires 300 s after it was seen.
        assert.ok(
          t >= T0 + 10_000 + 300_000 && t <= T0 + 10_000 + 300_000 + GRANULARITY_MS + 5000,
          `at ${t - T0}`,
        );
        replicas = d.replicas;
        break;
      }
    }
    assert.equal(replicas, 1);
  });

  it('ignores a window that ended long ago, and anything unreadable', () => {
    const text = encodeScaleState({ since: T0, history: [{ at: T0, replicas: 4 }] }, pool);
    assert.equal(decodeScaleState(text, pool, T0 + 400_000), undefined);
    assert.equal(decodeScaleState('{not json', pool, T0), undefined);
    assert.equal(decodeScaleState('{"since":"x"}', pool, T0), undefined);
  });
});
