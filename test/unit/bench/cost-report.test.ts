/** The bench's cost-per-message arithmetic (issue #10): stream deltas, per-message medians, projections. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { diffSnapshots, type JetStreamSnapshot } from '../../../bench/lib/jetstream-stats.ts';
import { costSection, cpuPerMessage, writesPerMessage } from '../../../bench/report-cost.ts';
import type { RunResult } from '../../../bench/runner.ts';

const snap = (streams: JetStreamSnapshot['streams'], storageBytes = 0): JetStreamSnapshot => ({
  streams,
  storageBytes,
});

function run(over: Partial<RunResult>): RunResult {
  return {
    id: 'r1',
    system: 'postern (smarthost)',
    scenario: 'compare-2k',
    load: { generator: 'bench', messages: 1000, size: 2048, sessions: 10, recipients: 1, toDomain: 'x' },
    accepted: 1000,
    refused: 0,
    delivered: 1000,
    duplicates: 0,
    lost: 0,
    generatorErrors: [],
    acceptedPerSec: 1,
    deliveredPerSec: 1,
    acceptLatencyMs: undefined,
    endToEndLatencyMs: undefined,
    wallSeconds: 1,
    usage: [],
    peakTotalMemoryBytes: 0,
    cpuSecondsTotal: 0,
    harnessCpuSeconds: { generator: 0, sink: 0 },
    deliveredTimeline: [],
    ...over,
  };
}

describe('JetStream writes from stream snapshots', () => {
  it('counts writes by last_seq, removals as writes minus the change in stored messages', () => {
    const d = diffSnapshots(
      snap(
        {
          SUBMIT: { lastSeq: 200, messages: 0, bytes: 0 },
          EVENTS: { lastSeq: 10, messages: 10, bytes: 500 },
        },
        500,
      ),
      snap(
        {
          SUBMIT: { lastSeq: 1200, messages: 0, bytes: 0 }, // work queue: all acked
          EVENTS: { lastSeq: 2010, messages: 2010, bytes: 100_500 }, // limits: all kept
          KV_messages: { lastSeq: 2000, messages: 0, bytes: 0 }, // created during the run, put + delete
        },
        100_500,
      ),
      { ms: 300, settled: true },
    );
    assert.deepEqual(
      d.perStream.map((s) => [s.stream, s.written, s.removed, s.storedMessages, s.storedBytes]),
      [
        ['EVENTS', 2000, 0, 2000, 100_000],
        ['KV_messages', 2000, 2000, 0, 0],
        ['SUBMIT', 1000, 1000, 0, 0],
      ],
    );
    assert.equal(d.written, 5000);
    assert.equal(d.storageBytes, 100_000);
  });
});

describe('per-message figures', () => {
  const jetstream = (written: number) => ({
    perStream: [{ stream: 'SUBMIT', written, removed: written, storedMessages: 0, storedBytes: 0 }],
    written,
    storageBytes: 0,
    settleMs: 0,
    settled: true,
  });
  const usage = (ingress: number, nats: number) => [
    { role: 'nats-server', cpuSeconds: nats, peakRssBytes: 0, processes: 1, diskWriteBytes: 2_048_000 },
    { role: 'ingress', cpuSeconds: ingress, peakRssBytes: 0, processes: 1, diskWriteBytes: 0 },
  ];
  const runs = [
    run({ id: 'r1', jetstream: jetstream(1000), usage: usage(0.2, 0.1), cpuSecondsTotal: 0.3 }),
    run({ id: 'r3', jetstream: jetstream(3000), usage: usage(0.4, 0.3), cpuSecondsTotal: 0.7 }),
  ];

  it('divides by messages delivered and takes the median over runs', () => {
    assert.equal(writesPerMessage(runs)?.written, 2);
    const c = cpuPerMessage(runs);
    assert.deepEqual(
      c.perRole.map((p) => [p.role, Math.round(p.us), p.diskBytes]),
      [
        ['ingress', 300, 0],
        ['nats-server', 200, 2048],
      ],
    );
    assert.equal(Math.round(c.total), 500);
  });

  it('reports no writes for a system without JetStream, and projects msgs/s from µs per message', () => {
    assert.equal(writesPerMessage([run({ system: 'postfix' })]), undefined);
    const md = costSection(runs).join('\n');
    // 500 µs/msg → 2000 msgs/s per core; the busiest single-threaded stage (ingress, 300 µs) caps at 3333.
    assert.match(md, /\| 1: 2000, 2: 4000, 4: 8000/);
    assert.match(md, /ingress: 3333/);
    // R3 on paper: services 300 µs + 3 × 200 µs nats-server = 900 µs; 3 nodes × 2 cores → 6667 msgs/s.
    assert.match(md, /\| 2 \(6\) \| 300 \| 200 \(600\) \| 6667 \//);
  });
});
