/**
 * Cluster-wide site state on a real nats-server: connection leases are a hard bound across processes (each
 * process here is its own NATS connection), a live holder keeps its lease by refreshing it, and a dead holder's
 * lease expires by itself after the bucket's TTL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats } from '../../../services/common/nats.ts';
import { openSiteBuckets, siteKey } from '../../../services/common/sites.ts';
import { createLogger } from '../../../services/common/telemetry.ts';
import { ConnectionLeases } from '../../../services/delivery/shaping/leases.ts';
import { SharedTokenBuckets } from '../../../services/delivery/shaping/token-bucket.ts';
import { startTestNats, type TestNats } from '../../helpers/nats.ts';
import { eventually } from '../../helpers/postern.ts';

const TTL_MS = 2000;
const log = createLogger('test', 'silent');

describe('site leases and token buckets in NATS KV', () => {
  let nats: TestNats;
  const conns: NatsConnection[] = [];
  const startProcess = async (name: string) => {
    const nc = await connectNats(nats.url, name);
    conns.push(nc);
    const { leases } = await openSiteBuckets(nc, { leaseTtlMs: TTL_MS, replicas: 1 });
    return { nc, kv: leases, leases: new ConnectionLeases(leases, name, TTL_MS, log) };
  };

  before(async () => {
    nats = await startTestNats();
  });
  after(async () => {
    for (const nc of conns) if (!nc.isClosed()) await nc.close();
    await nats?.cleanup();
  });

  it('three processes together never hold more than maxConnections leases of a site', async () => {
    const ps = await Promise.all(['p1', 'p2', 'p3'].map(startProcess));
    const key = siteKey('smtp:bound.test:25');
    const got = await Promise.all(ps.flatMap((p) => [0, 1, 2].map(() => p.leases.acquire(key, 4))));
    assert.equal(got.filter(Boolean).length, 4);
    // One given back: exactly one more may be taken.
    await ps.find((p) => p.leases.held > 0)!.leases.release(got.find(Boolean)!);
    const again = await Promise.all(ps.map((p) => p.leases.acquire(key, 4)));
    assert.equal(again.filter(Boolean).length, 1);
    for (const p of ps) p.leases.close();
  });

  it("a live holder keeps its lease past the TTL; a dead holder's lease expires by itself", async () => {
    const alive = await startProcess('alive');
    const other = await startProcess('other');
    const key = siteKey('smtp:held.test:25');
    assert.ok(await alive.leases.acquire(key, 1));
    // Three TTLs with refreshes: still held, nobody else gets it.
    for (let i = 0; i < 6; i++) {
      assert.equal(await other.leases.acquire(key, 1), undefined, `taken over after ${i} half-TTLs`);
      await sleep(TTL_MS / 2);
    }
    // The holder dies: no release, no refresh.
    alive.leases.close();
    await alive.nc.close();
    assert.equal(await other.leases.acquire(key, 1), undefined);
    const lease = await eventually(
      "the dead holder's lease to expire",
      () => other.leases.acquire(key, 1),
      20_000,
    );
    assert.ok(lease.revision > 0);
    other.leases.close();
  });

  it('a shared token bucket grants at most burst + rate × elapsed across processes', async () => {
    const a = await startProcess('ta');
    const b = await startProcess('tb');
    const buckets = [new SharedTokenBuckets(a.kv), new SharedTokenBuckets(b.kv)];
    const key = `${siteKey('smtp:rate.test:25')}.rate`;
    const perMinute = 120; // 2 per second, burst 2
    const started = Date.now();
    let granted = 0;
    for (let i = 0; i < 40; i++) {
      const results = await Promise.all(buckets.map((t) => t.takeOne(key, perMinute)));
      granted += results.filter((w) => w.waitMs === 0).length;
    }
    const elapsed = Date.now() - started;
    assert.ok(granted >= 2, `granted ${granted}`);
    assert.ok(granted <= 2 + (perMinute * elapsed) / 60_000 + 1e-9, `granted ${granted} in ${elapsed} ms`);
    a.leases.close();
    b.leases.close();
  });
});
