/**
 * JetStream writes per message, measured rather than counted from code (issue #10): every stream's state
 * (`$JS.API.STREAM.LIST` through jsm.streams.list(), KV buckets and object stores included — they are streams
 * named KV_<bucket> / OBJ_<bucket>) before and after a run. A stream's `last_seq` grows by one for every message
 * stored in it, whatever happens to that message later (a work-queue ack, a KV delete marker replacing the value,
 * a subject purge), so its delta is the number of writes; `messages` and `bytes` deltas are what the run left
 * stored. The bench's own connection only reads (stream info requests store nothing).
 */
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../../services/common/nats.ts';

/** One stream's counters at one instant. */
export interface StreamCounters {
  lastSeq: number;
  messages: number;
  bytes: number;
}

/** Every stream of the account, by name, plus the account's storage in bytes ($JS.API.INFO). */
export interface JetStreamSnapshot {
  streams: Record<string, StreamCounters>;
  storageBytes: number;
}

/** What a run wrote, per stream (absolute counts; the report divides by messages delivered). */
export interface StreamWrites {
  stream: string;
  /** Messages written (last_seq delta), including those acked, deleted or purged before the run ended. */
  written: number;
  /** Messages removed during the run (written − stored delta): work-queue acks, KV values replaced, purges. */
  removed: number;
  /** Change in stored messages and bytes. */
  storedMessages: number;
  storedBytes: number;
}

export interface JetStreamWrites {
  perStream: StreamWrites[];
  /** Sum of `written` over every stream. */
  written: number;
  /** Account storage delta ($JS.API.INFO `storage`), bytes. */
  storageBytes: number;
  /** How long the run took to stop writing after the last arrival at the sink (ms), and whether it did. */
  settleMs: number;
  settled: boolean;
}

/** A read-only connection to a system's NATS for snapshots. */
export class JetStreamProbe {
  private readonly nc: NatsConnection;
  private constructor(nc: NatsConnection) {
    this.nc = nc;
  }

  static async connect(url: string): Promise<JetStreamProbe> {
    return new JetStreamProbe(await connectNats(url, 'postern-bench-probe'));
  }

  async snapshot(): Promise<JetStreamSnapshot> {
    const jsm = await jetstreamManager(this.nc);
    const streams: Record<string, StreamCounters> = {};
    for await (const si of jsm.streams.list())
      streams[si.config.name] = {
        lastSeq: si.state.last_seq,
        messages: si.state.messages,
        bytes: si.state.bytes,
      };
    const account = await jsm.getAccountInfo();
    return { streams, storageBytes: account.storage };
  }

  /**
   * Waits until no stream's last_seq moved for `quietMs` (the pipeline's tail after the last arrival at the
   * sink: results, state deletes, events), bounded by `maxMs`. Returns the last snapshot.
   */
  async settle(
    quietMs = 1000,
    maxMs = 20_000,
  ): Promise<{ snap: JetStreamSnapshot; ms: number; settled: boolean }> {
    const t0 = Date.now();
    let snap = await this.snapshot();
    let key = seqKey(snap);
    let since = Date.now();
    while (Date.now() - t0 < maxMs) {
      await new Promise((r) => setTimeout(r, 200));
      const next = await this.snapshot();
      const k = seqKey(next);
      if (k !== key) {
        key = k;
        since = Date.now();
      }
      snap = next;
      if (Date.now() - since >= quietMs) return { snap, ms: since - t0, settled: true };
    }
    return { snap, ms: Date.now() - t0, settled: false };
  }

  async close(): Promise<void> {
    await this.nc.close();
  }
}

const seqKey = (s: JetStreamSnapshot) =>
  Object.entries(s.streams)
    .map(([n, c]) => `${n}:${c.lastSeq}`)
    .sort()
    .join(',');

/** Per-stream deltas between two snapshots (streams created during the run count from zero). */
export function diffSnapshots(
  before: JetStreamSnapshot,
  after: JetStreamSnapshot,
  settle: { ms: number; settled: boolean },
): JetStreamWrites {
  const perStream = Object.entries(after.streams)
    .map(([stream, a]) => {
      const b = before.streams[stream] ?? { lastSeq: 0, messages: 0, bytes: 0 };
      const written = a.lastSeq - b.lastSeq;
      const storedMessages = a.messages - b.messages;
      return {
        stream,
        written,
        removed: written - storedMessages,
        storedMessages,
        storedBytes: a.bytes - b.bytes,
      };
    })
    .sort((x, y) => y.written - x.written || x.stream.localeCompare(y.stream));
  return {
    perStream,
    written: perStream.reduce((s, p) => s + p.written, 0),
    storageBytes: after.storageBytes - before.storageBytes,
    settleMs: settle.ms,
    settled: settle.settled,
  };
}
