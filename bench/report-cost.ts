/**
 * The report's "Cost per message" section (issue #10): JetStream writes per message per stream (stream
 * last_seq deltas, bench/lib/jetstream-stats.ts), CPU microseconds and disk bytes per message per process
 * kind (/proc, bench/lib/proc-stats.ts), and what those figures project for more cores and for a 3-node R3
 * cluster. Per-message figures are medians over the runs of one system in one scenario, divided by the
 * messages delivered (recipients at the sink) in each run.
 */
import type { RunResult } from './runner.ts';

const row = (cells: Array<string | number>) => `| ${cells.join(' | ')} |`;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.floor((s.length - 1) / 2)]! + s[Math.ceil((s.length - 1) / 2)]!) / 2 : Number.NaN;
};
const r2 = (x: number) => Math.round(x * 100) / 100;
const r0 = (x: number) => Math.round(x);
/** Stages in pipeline order first; anything else (Postfix's process kinds) after, by name. */
const STAGE_ORDER = ['ingress', 'queue', 'delivery', 'nats-server', 'nats', 'supervisor'];
const stageRank = (role: string) => {
  const i = STAGE_ORDER.indexOf(role);
  return i < 0 ? STAGE_ORDER.length : i;
};

/** CPU µs per delivered message, per role, for a group of runs (median over runs). */
export function cpuPerMessage(runs: RunResult[]) {
  const ok = runs.filter((r) => r.delivered > 0);
  const roles = [...new Set(ok.flatMap((r) => r.usage.map((u) => u.role)))].sort(
    (a, b) => stageRank(a) - stageRank(b) || a.localeCompare(b),
  );
  const per = (f: (r: RunResult) => number) => median(ok.map((r) => (f(r) * 1e6) / r.delivered));
  const perRole = roles.map((role) => {
    const of = (r: RunResult) => r.usage.find((u) => u.role === role);
    return {
      role,
      processes: Math.max(...ok.map((r) => of(r)?.processes ?? 0)),
      us: per((r) => of(r)?.cpuSeconds ?? 0),
      // bytes per message: the 1e6 in `per` is undone here.
      diskBytes: per((r) => of(r)?.diskWriteBytes ?? 0) / 1e6,
    };
  });
  return {
    perRole,
    total: per((r) => r.cpuSecondsTotal),
    generator: per((r) => r.harnessCpuSeconds?.generator ?? 0),
    sink: per((r) => r.harnessCpuSeconds?.sink ?? 0),
    diskBytes: per((r) => r.usage.reduce((s, u) => s + (u.diskWriteBytes ?? 0), 0)) / 1e6,
    runs: ok.length,
  };
}

/** JetStream writes per delivered message, per stream (median over runs). */
export function writesPerMessage(runs: RunResult[]) {
  const ok = runs.filter((r) => r.jetstream && r.delivered > 0);
  if (!ok.length) return undefined;
  const streams = [...new Set(ok.flatMap((r) => r.jetstream!.perStream.map((p) => p.stream)))];
  const per = (f: (r: RunResult) => number) => median(ok.map((r) => f(r) / r.delivered));
  const perStream = streams
    .map((stream) => {
      const of = (r: RunResult) => r.jetstream!.perStream.find((p) => p.stream === stream);
      return {
        stream,
        written: per((r) => of(r)?.written ?? 0),
        removed: per((r) => of(r)?.removed ?? 0),
        storedBytes: per((r) => of(r)?.storedBytes ?? 0),
      };
    })
    .filter((s) => s.written > 0 || s.removed !== 0)
    .sort((a, b) => b.written - a.written || a.stream.localeCompare(b.stream));
  return {
    perStream,
    written: per((r) => r.jetstream!.written),
    storageBytes: per((r) => r.jetstream!.storageBytes),
    unsettled: ok.filter((r) => !r.jetstream!.settled).map((r) => r.id),
    runs: ok.length,
  };
}

/** Groups the compare runs by scenario and system, in the order they first ran. */
function groups(results: RunResult[]) {
  const out = new Map<string, RunResult[]>();
  for (const r of results.filter((x) => x.scenario.startsWith('compare-'))) {
    const k = `${r.scenario}\u0000${r.system}`;
    out.set(k, [...(out.get(k) ?? []), r]);
  }
  return [...out.entries()].map(([k, runs]) => {
    const [scenario, system] = k.split('\u0000') as [string, string];
    return { scenario, system, runs };
  });
}

export function costSection(results: RunResult[]): string[] {
  const gs = groups(results);
  if (!gs.length) return [];
  const md: string[] = [
    '## Cost per message (issue #10)',
    '',
    'Per message delivered (recipients at the sink), median over the runs of each system in each scenario. ' +
      'Unlike msgs/s these figures hardly depend on what else runs on the box: CPU time is charged to the ' +
      'process that used it, and JetStream writes are counted by the server.',
    '',
  ];
  const writes = gs.map((g) => ({ ...g, w: writesPerMessage(g.runs) })).filter((g) => g.w);
  if (writes.length) {
    md.push(
      '### JetStream writes per message, per stream',
      '',
      'written = stream `last_seq` delta (every stored message, including those later acked out of a work ' +
        'queue, replaced in a KV bucket or purged); removed = written − change in stored messages; retained = ' +
        'change in stored bytes. Read with `$JS.API.STREAM.LIST` before the load and after JetStream stopped ' +
        'moving (the warm-up’s and the run’s tails settled). KV buckets are the `KV_*` streams.',
      '',
      row(['scenario', 'system', 'stream', 'written/msg', 'removed/msg', 'retained bytes/msg']),
      row(Array(6).fill('---')),
    );
    for (const { scenario, system, w } of writes) {
      for (const s of w!.perStream)
        md.push(row([scenario, system, s.stream, r2(s.written), r2(s.removed), r0(s.storedBytes)]));
      md.push(
        row([
          scenario,
          system,
          `**all streams** (${w!.runs} runs)`,
          `**${r2(w!.written)}**`,
          '',
          `${r0(w!.storageBytes)} (account storage)`,
        ]),
      );
    }
    const unsettled = writes.flatMap((g) => g.w!.unsettled);
    if (unsettled.length)
      md.push('', `JetStream was still writing 20 s after the last arrival in ${unsettled.join(', ')}.`);
    md.push('');
  }
  md.push(
    '### CPU µs and disk bytes per message, per process kind',
    '',
    'CPU = utime + stime from /proc over the run (reaped children included through the parent’s cutime); ' +
      'disk = `write_bytes` of /proc/<pid>/io (bytes dirtied in the page cache for storage, counted before any ' +
      'fsync). generator = the bench generator or smtp-source, sink = bench/sink.ts: not part of the system.',
    '',
    row(['scenario', 'system', 'process kind', 'processes', 'CPU µs/msg', 'disk KB/msg']),
    row(Array(6).fill('---')),
  );
  const cpu = gs.map((g) => ({ ...g, c: cpuPerMessage(g.runs) }));
  const kb = (b: number) => Math.round(b / 102.4) / 10;
  for (const { scenario, system, c } of cpu) {
    for (const p of c.perRole)
      md.push(row([scenario, system, p.role, p.processes, r0(p.us), kb(p.diskBytes)]));
    md.push(
      row([scenario, system, `**system total** (${c.runs} runs)`, '', `**${r0(c.total)}**`, kb(c.diskBytes)]),
      row([scenario, system, 'generator', 1, r0(c.generator), '']),
      row([scenario, system, 'sink', 1, r0(c.sink), '']),
    );
  }
  md.push('', ...projection(cpu, writes), '');
  return md;
}

/** Throughput per core count from µs per message, and the paper projection for a 3-node R3 cluster. */
function projection(
  cpu: Array<{ scenario: string; system: string; c: ReturnType<typeof cpuPerMessage> }>,
  writes: Array<{ scenario: string; system: string; w: ReturnType<typeof writesPerMessage> }>,
): string[] {
  const perCores = (us: number) => [1, 2, 4, 8, 16].map((n) => `${n}: ${r0((n * 1e6) / us)}`).join(', ');
  const md = [
    '### What these figures project',
    '',
    'If every stage can use every core (several ingress and delivery processes, streams spread over ' +
      'nats-server’s cores), msgs/s ≈ cores × 10⁶ / (total µs per message). Generator and sink excluded ' +
      '(a real deployment does not run them); “incl. harness” adds them, which is what this box really ' +
      'had to fit. With one process per stage, the busiest single-threaded stage caps throughput at ' +
      '10⁶ / its µs whatever the core count (nats-server is multi-threaded and is not such a cap).',
    '',
    row([
      'scenario',
      'system',
      'µs/msg',
      'msgs/s by cores (excl. harness)',
      'incl. harness, 2 cores',
      'busiest stage cap',
    ]),
    row(Array(6).fill('---')),
  ];
  for (const { scenario, system, c } of cpu) {
    const single = c.perRole.filter((p) => p.processes === 1 && !p.role.startsWith('nats'));
    const busiest = single.sort((a, b) => b.us - a.us)[0];
    md.push(
      row([
        scenario,
        system,
        r0(c.total),
        perCores(c.total),
        r0((2 * 1e6) / (c.total + c.generator + c.sink)),
        busiest ? `${busiest.role}: ${r0(1e6 / busiest.us)}` : '–',
      ]),
    );
  }
  // Runs already on a 3-node cluster (BENCH_POSTERN_NATS_CLUSTER=3) measured R3: no paper multiplier for them.
  const r3 = cpu.filter(
    (g) =>
      !g.system.includes('nats×') && writes.some((w) => w.scenario === g.scenario && w.system === g.system),
  );
  if (r3.length) {
    md.push(
      '',
      '**3-node cluster with R3 streams (on paper).** Every JetStream write is appended by the stream leader ' +
        'and replicated to 2 followers, which store it too: stored writes and file-store bytes ×3 across the ' +
        'cluster, nats-server CPU per message up to ×3 (each follower does the store work again; the leader ' +
        'also sends each write twice), the leader’s network out ≈ 2 × the bytes written, and one round trip ' +
        'to a follower added to every PubAck. The Node services’ CPU does not change (same requests). So ' +
        'cluster msgs/s ≈ 3 × cores per node × 10⁶ / (services µs + 3 × nats-server µs):',
      '',
      row([
        'scenario',
        'system',
        'writes/msg (cluster-wide ×3)',
        'services µs',
        'nats-server µs (×3)',
        'msgs/s, 3 nodes × 2 / 4 / 8 cores',
      ]),
      row(Array(6).fill('---')),
    );
    for (const { scenario, system, c } of r3) {
      const w = writes.find((x) => x.scenario === scenario && x.system === system)!.w!;
      const nats = c.perRole.filter((p) => p.role.startsWith('nats')).reduce((s, p) => s + p.us, 0);
      const services = c.total - nats;
      const us = services + 3 * nats;
      md.push(
        row([
          scenario,
          system,
          `${r2(w.written)} (${r2(3 * w.written)})`,
          r0(services),
          `${r0(nats)} (${r0(3 * nats)})`,
          [2, 4, 8].map((n) => r0((3 * n * 1e6) / us)).join(' / '),
        ]),
      );
    }
  }
  return md;
}
