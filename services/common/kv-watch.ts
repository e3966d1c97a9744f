/**
 * One run of a supervised KV watch (services/common/supervise.ts): replays the bucket, says `up()` once the replay
 * is complete, then follows changes until the watch ends, which the supervisor treats as a failure.
 * nats.js rebuilds a watch's ordered consumer by itself only after missed heartbeats (about a minute when the
 * server dropped it), and meanwhile delivers nothing while the bucket moves on. So every `checkMs` the bucket's
 * last sequence is compared with the last revision seen: a write that is still missing one check later means the
 * watch is stalled, and the run ends so the supervisor starts a fresh watch (logged and counted).
 * Only for buckets whose entries do not expire (the config bucket): an expired last entry would never be seen.
 */
import type { KV, KvWatchEntry } from '@nats-io/kv';

export async function followBucket(
  kv: KV,
  up: () => void,
  signal: AbortSignal,
  onEntry: (e: KvWatchEntry) => void,
  checkMs = 5000,
): Promise<void> {
  const watch = await kv.watch({ key: '>' });
  let seen = 0;
  let stalled: string | undefined;
  let lastAtPreviousCheck = 0;
  let replayed = false;
  const loaded = () => {
    replayed = true;
    up();
  };
  const check = setInterval(() => {
    kv.status().then(
      (s) => {
        const last = s.streamInfo.state.last_seq;
        if (replayed && seen < lastAtPreviousCheck) {
          stalled = `watch stalled at revision ${seen} while the bucket is at ${last}`;
          watch.stop();
        }
        lastAtPreviousCheck = last;
      },
      // Not answered (NATS restarting): proves nothing about the watch; the next check asks again.
      () => undefined,
    );
  }, checkMs);
  const onAbort = () => watch.stop();
  signal.addEventListener('abort', onAbort, { once: true });
  if (signal.aborted) onAbort();
  try {
    // An empty bucket sends no entries; the watcher marks the end of the replay with delta 0 on the last one.
    if ((await kv.status()).values === 0) loaded();
    for await (const e of watch) {
      seen = Math.max(seen, e.revision);
      onEntry(e);
      if (e.delta === 0) loaded();
    }
  } finally {
    clearInterval(check);
    signal.removeEventListener('abort', onAbort);
  }
  if (stalled) throw new Error(stalled);
}
