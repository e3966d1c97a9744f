/**
 * Every delivery process keeps the suspensions and throttles of all sites in memory from a watch over the KV
 * bucket `sites`, so the check before each job costs no round trip. Only records that carry a suspension or a
 * throttle are kept (memory grows with the sites under automation, not with all sites). The watch is supervised:
 * when it ends (NATS restart, bucket recreated) it is started again with backoff.
 */
import type { KV } from '@nats-io/kv';
import type { SiteRecord } from '../../common/sites.ts';
import type { Logger } from '../../common/telemetry.ts';

export interface SiteWatch {
  stop(): void;
}

export async function watchSites(
  kv: KV,
  records: Map<string, SiteRecord>,
  log: Logger,
  connectionClosed: () => boolean,
): Promise<SiteWatch> {
  let stopped = false;
  let current: { stop(): void } | undefined;
  let loaded!: () => void;
  const initial = new Promise<void>((r) => (loaded = r));
  const run = async () => {
    for (let failures = 0; !stopped; ) {
      try {
        const w = await kv.watch({ key: '>' });
        current = w;
        if ((await kv.status()).values === 0) loaded();
        for await (const e of w) {
          failures = 0;
          const r = e.operation === 'PUT' && e.length > 0 ? e.json<SiteRecord>() : undefined;
          if (r && (r.suspendedUntil || r.throttle)) records.set(e.key, r);
          else records.delete(e.key);
          if (e.delta === 0) loaded();
        }
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'site state watch failed; restarting');
      }
      // A closed connection (the process is stopping) is not a failure to recover from.
      if (stopped || connectionClosed()) return;
      failures++;
      await new Promise((r) => setTimeout(r, Math.min(5000, 250 * 2 ** failures)).unref());
    }
  };
  void run();
  await initial;
  return {
    stop() {
      stopped = true;
      current?.stop();
    },
  };
}
