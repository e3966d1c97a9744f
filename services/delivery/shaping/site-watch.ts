/**
 * Every delivery process keeps the suspensions and throttles of all sites in memory from a watch over the KV
 * bucket `sites`, so the check before each job costs no round trip. Only records that carry a suspension or a
 * throttle are kept (memory grows with the sites under automation, not with all sites). The watch is a supervised
 * loop (`site-watch`, services/common/supervise.ts): when it ends (NATS restart, bucket recreated) it is started
 * again with backoff, and /readyz answers 503 until it has replayed the bucket.
 */
import type { KV } from '@nats-io/kv';
import type { SiteRecord } from '../../common/sites.ts';
import type { LoopSupervisor } from '../../common/supervise.ts';

export interface SiteWatch {
  stop(): Promise<void>;
}

export async function watchSites(
  kv: KV,
  records: Map<string, SiteRecord>,
  loops: LoopSupervisor,
): Promise<SiteWatch> {
  const loop = loops.run('site-watch', async (up, signal) => {
    const w = await kv.watch({ key: '>' });
    const onAbort = () => w.stop();
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    try {
      if ((await kv.status()).values === 0) up();
      for await (const e of w) {
        const r = e.operation === 'PUT' && e.length > 0 ? e.json<SiteRecord>() : undefined;
        if (r && (r.suspendedUntil || r.throttle)) records.set(e.key, r);
        else records.delete(e.key);
        if (e.delta === 0) up();
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  });
  await loop.started;
  return loop;
}
