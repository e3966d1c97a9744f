#!/usr/bin/env node
/**
 * `npm run soak [-- --minutes 20] [--peak-messages 3000] [--out DIR]` (issue #11 item 7): Postern local mode
 * (MX routing through the bench's dnsmasq) under a steady open-loop load of half the peak measured at the start
 * of the same run, with deferrals (dead.bench answers 451 at RCPT; retried after 1 and 2 minutes, expired after 5)
 * and bounces (bounce.bench answers 550; DSNs go back to src.bench, which is the healthy sink) mixed in.
 * Every 10 s it samples the RSS and open file descriptors of every process, the JetStream store size and each
 * consumer's pending count; it writes samples.csv, samples.json, one SVG chart per measure and report.md with a
 * verdict per series (flat / growing, with the slope) into bench/results/soak-<date>/. Never part of the suite.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectNats } from '../services/common/nats.ts';
import { startDns } from './lib/dns.ts';
import { machineInfo } from './lib/machine.ts';
import { freePort } from './lib/ports.ts';
import { readProc } from './lib/proc-stats.ts';
import { killStartedGroups } from './lib/process-groups.ts';
import { startSink } from './lib/sink-client.ts';
import { lineChart, type Series } from './lib/svg-chart.ts';
import { type Trend, trend } from './lib/trend.ts';
import { measure, runGenerator, warmUp } from './runner.ts';
import { startPostern } from './systems/postern.ts';
import type { RunningSystem } from './systems/system.ts';

const ROOT = resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '20' },
    'peak-messages': { type: 'string', default: '3000' },
    'sample-seconds': { type: 'string', default: '10' },
    out: { type: 'string' },
  },
});
const minutes = Number(args.minutes);
const sampleMs = Number(args['sample-seconds']) * 1000;
const stamp = new Date().toISOString().replace(/[:]/g, '-').replace(/\..*/, '');
const outDir = resolve(args.out ?? join(ROOT, 'bench/results', `soak-${stamp}`));
const work = join(process.env['BENCH_WORK_DIR'] ?? '/tmp', `postern-soak-${process.pid}`);
mkdirSync(join(outDir, 'logs'), { recursive: true });
const log = (msg: string) =>
  process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
/** Shares of the soak load: most mail is delivered, some deferred until it expires, some bounced. */
const MIX = { healthy: 0.9, dead: 0.05, bounce: 0.05 };

interface Sample {
  t: number;
  /** Per process (role name): RSS bytes and open fds; missing when the process is gone. */
  rss: Record<string, number>;
  fds: Record<string, number>;
  storeBytes: number;
  /** Per stream: stored bytes (EVENTS keeps 7 days by design; the others are the queue itself). */
  streamBytes: Record<string, number>;
  /** Per stream/consumer: num_pending + num_ack_pending. */
  pending: Record<string, number>;
  delivered: number;
  bounced: number;
  deferred: number;
}

const fdCount = (pid: number) => {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return Number.NaN;
  }
};

let sys: RunningSystem | undefined;
const cleanups: Array<() => Promise<void>> = [];
const cleanup = async () => {
  await sys?.stop().catch(() => undefined);
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  killStartedGroups();
};
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.on(sig, () => {
    log(`${sig}: stopping everything`);
    void cleanup().then(() => process.exit(130));
  });

try {
  const sinkPort = await freePort('127.0.0.1');
  const sink = await startSink([
    { host: '127.0.0.1', port: sinkPort, mode: 'accept' },
    { host: '127.0.0.2', port: sinkPort, mode: 'tempfail' },
    { host: '127.0.0.3', port: sinkPort, mode: 'reject' },
  ]);
  cleanups.push(() => sink.stop());
  const dns = await startDns(await freePort('127.0.0.1'), '127.0.0.1', '127.0.0.2', [
    { domain: 'bounce.bench', ip: '127.0.0.3' },
    { domain: 'src.bench', ip: '127.0.0.1' },
  ]);
  cleanups.push(() => dns.stop());
  const dir = join(work, 'postern');
  sys = await startPostern({
    dir,
    smtpPort: await freePort('127.0.0.1'),
    submissionPort: await freePort('127.0.0.1'),
    to: {
      healthy: { host: '127.0.0.1', port: sinkPort },
      dead: { host: '127.0.0.2', port: sinkPort },
      dns: { host: dns.host, port: dns.port },
    },
    route: 'mx',
    delivery: 1,
    ingress: 1,
    logFile: join(outDir, 'logs', 'postern.log'),
    // Deferred mail is retried twice and expires within the run, so a steady state exists to be measured.
    retry: { schedule: ['1m', '2m'], maxLifetime: '5m' },
  });
  await warmUp(sys, sink);
  const peakRun = await measure({
    id: 'peak',
    scenario: 'peak',
    sys,
    sink,
    load: {
      generator: 'bench',
      messages: Number(args['peak-messages']),
      size: 2048,
      sessions: 10,
      recipients: 1,
      toDomain: 'healthy.bench',
    },
  });
  const peak = peakRun.deliveredPerSec;
  const rate = Math.max(1, peak / 2);
  log(
    `peak ${peak} delivered/s (closed loop, ${peakRun.accepted} messages); soak at ${rate.toFixed(1)}/s for ${minutes} min`,
  );

  const state = JSON.parse(readFileSync(join(dir, 'data', 'state.json'), 'utf8')) as { natsUrl: string };
  const nc = await connectNats(state.natsUrl, 'soak-sampler');
  cleanups.push(() => nc.close());
  const jsm = await jetstreamManager(nc);
  await sink.reset();
  const samples: Sample[] = [];
  const t0 = Date.now();
  const sampleOnce = async () => {
    const rss: Record<string, number> = {};
    const fds: Record<string, number> = {};
    for (const [pid, role] of sys!.processes()) {
      const name = role === 'supervisor' ? 'supervisor' : role;
      const p = readProc(pid);
      if (!p) continue;
      rss[name] = (rss[name] ?? 0) + p.rssBytes;
      fds[name] = (fds[name] ?? 0) + fdCount(pid);
    }
    const pending: Record<string, number> = {};
    const streamBytes: Record<string, number> = {};
    for await (const s of jsm.streams.list()) {
      streamBytes[s.config.name] = s.state.bytes;
      for await (const c of jsm.consumers.list(s.config.name)) {
        // Durable consumers only: the ordered consumers behind KV watches come and go with their watchers.
        if (c.config.durable_name) pending[`${s.config.name}/${c.name}`] = c.num_pending + c.num_ack_pending;
      }
    }
    const account = await jsm.getAccountInfo();
    const counts = await sink.count();
    samples.push({
      t: Math.round((Date.now() - t0) / 1000),
      rss,
      fds,
      storeBytes: account.storage,
      streamBytes,
      pending,
      delivered: counts.received,
      bounced: counts.rejected,
      deferred: counts.tempfailed,
    });
  };
  await sampleOnce();
  const timer = setInterval(
    () => void sampleOnce().catch((err: Error) => log(`sample failed: ${err.message}`)),
    sampleMs,
  );
  const seconds = minutes * 60;
  const gens = (Object.keys(MIX) as (keyof typeof MIX)[]).map((kind) =>
    runGenerator({
      host: sys!.smtp.host,
      port: sys!.smtp.port,
      sessions: kind === 'healthy' ? 8 : 1,
      messages: Math.max(1, Math.round(rate * MIX[kind] * seconds)),
      size: 2048,
      recipients: 1,
      toDomain: `${kind}.bench`,
      from: 'gen@src.bench',
      tag: `soak-${kind}`,
      rate: rate * MIX[kind],
    }).then((r) => ({ kind, ...r })),
  );
  const results = await Promise.all(gens);
  // A short tail shows whether what is queued drains back.
  await new Promise((r) => setTimeout(r, Math.min(120_000, sampleMs * 6)));
  clearInterval(timer);
  await sampleOnce();
  writeReport({ samples, results, peak, rate, seconds });
} finally {
  await cleanup();
}

function writeReport(o: {
  samples: Sample[];
  results: Array<{
    kind: string;
    accepted: number;
    tempfailed: number;
    rejected: number;
    errors: string[];
    acceptMs: number[];
  }>;
  peak: number;
  rate: number;
  seconds: number;
}) {
  const { samples } = o;
  const roles = [...new Set(samples.flatMap((s) => Object.keys(s.rss)))].sort();
  const consumers = [...new Set(samples.flatMap((s) => Object.keys(s.pending)))].sort();
  const streams = [...new Set(samples.flatMap((s) => Object.keys(s.streamBytes)))].sort();
  /** The queue's own footprint: every stream but EVENTS, which keeps 7 days (1 GiB) of history by design. */
  const queueBytes = (s: Sample) =>
    Object.entries(s.streamBytes).reduce((n, [name, b]) => (name === 'EVENTS' ? n : n + b), 0);
  const header = [
    't_s',
    ...roles.map((r) => `rss_mb_${r}`),
    ...roles.map((r) => `fds_${r}`),
    'store_mb',
    ...streams.map((n) => `stream_mb_${n}`),
    ...consumers.map((c) => `pending_${c}`),
    'delivered',
    'bounced_rcpt',
    'deferred_attempts',
  ];
  const mb = (b: number | undefined) => (b === undefined ? '' : (b / 1048576).toFixed(1));
  const rows = samples.map((s) =>
    [
      s.t,
      ...roles.map((r) => mb(s.rss[r])),
      ...roles.map((r) => s.fds[r] ?? ''),
      mb(s.storeBytes),
      ...streams.map((n) => mb(s.streamBytes[n])),
      ...consumers.map((c) => s.pending[c] ?? ''),
      s.delivered,
      s.bounced,
      s.deferred,
    ].join(','),
  );
  writeFileSync(join(outDir, 'samples.csv'), `${header.join(',')}\n${rows.join('\n')}\n`);
  writeFileSync(join(outDir, 'samples.json'), `${JSON.stringify(samples)}\n`);
  const series = (pick: (s: Sample) => number | undefined, scale = 1): Array<[number, number]> =>
    samples.flatMap((s) => {
      const v = pick(s);
      return v === undefined || Number.isNaN(v) ? [] : [[s.t, v / scale] as [number, number]];
    });
  const chart = (file: string, title: string, y: string, ss: Series[]) =>
    writeFileSync(join(outDir, file), lineChart(title, y, ss, 'seconds since the soak load started'));
  chart(
    'rss.svg',
    'RSS per process',
    'MB',
    roles.map((r) => ({ label: r, points: series((s) => s.rss[r], 1048576) })),
  );
  chart(
    'fds.svg',
    'Open file descriptors per process',
    'fds',
    roles.map((r) => ({ label: r, points: series((s) => s.fds[r]) })),
  );
  chart('store.svg', 'JetStream store size', 'MB', [
    { label: 'all streams', points: series((s) => s.storeBytes, 1048576) },
    { label: 'all but EVENTS', points: series(queueBytes, 1048576) },
    { label: 'EVENTS', points: series((s) => s.streamBytes['EVENTS'], 1048576) },
  ]);
  chart(
    'pending.svg',
    'Consumer pending (num_pending + num_ack_pending)',
    'messages',
    consumers.map((c) => ({ label: c, points: series((s) => s.pending[c]) })),
  );
  // Judged over the second half of the load: the first half holds start-up, V8 heap growth to its working size
  // and the first retries and expiries (deferred mail expires after 5 minutes), so only then is a steady state due.
  const loadEnd = o.seconds;
  const from = o.seconds / 2;
  const judged = (pts: Array<[number, number]>) => pts.filter(([t]) => t >= from && t <= loadEnd + 1);
  const verdicts: Array<[string, Trend, string]> = [
    ...roles.map((r): [string, Trend, string] => [
      `RSS ${r}`,
      trend(judged(series((s) => s.rss[r], 1048576)), { share: 0.1, floor: 16 }),
      'MB',
    ]),
    ...roles.map((r): [string, Trend, string] => [
      `fds ${r}`,
      trend(judged(series((s) => s.fds[r])), { share: 0.1, floor: 8 }),
      'fds',
    ]),
    [
      'JetStream store but EVENTS',
      trend(judged(series(queueBytes, 1048576)), { share: 0.2, floor: 8 }),
      'MB',
    ],
    [
      'EVENTS stream (7 days kept by design)',
      trend(judged(series((s) => s.streamBytes['EVENTS'], 1048576)), { share: 0.2, floor: 8 }),
      'MB',
    ],
    ...consumers.map((c): [string, Trend, string] => [
      `pending ${c}`,
      trend(judged(series((s) => s.pending[c])), { share: 0.2, floor: 200 }),
      'msgs',
    ]),
  ];
  const p99 = (xs: number[]) =>
    xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.99)]! : 0;
  const m = machineInfo();
  const report = [
    `# Soak run ${stamp}`,
    '',
    `Postern local mode (MX routing, 1 ingress, 1 delivery), ${o.seconds / 60} min at ${o.rate.toFixed(1)} msgs/s = half of the peak ${o.peak} delivered/s measured at the start of this run (closed loop, 2 KB).`,
    `Mix: ${MIX.healthy * 100}% healthy.bench (250), ${MIX.dead * 100}% dead.bench (451 at RCPT; retry 1m, 2m; expiry 5m), ${MIX.bounce * 100}% bounce.bench (550 at RCPT → DSN to src.bench).`,
    `Machine: ${JSON.stringify(m)}`,
    '',
    '| generator | accepted | tempfailed | rejected | accept p99 ms | errors |',
    '| --- | --- | --- | --- | --- | --- |',
    ...o.results.map(
      (r) =>
        `| ${r.kind} | ${r.accepted} | ${r.tempfailed} | ${r.rejected} | ${p99(r.acceptMs).toFixed(1)} | ${r.errors.length} |`,
    ),
    '',
    `Sink at the end: ${samples.at(-1)?.delivered} unique deliveries, ${samples.at(-1)?.bounced} RCPTs bounced, ${samples.at(-1)?.deferred} RCPTs deferred (451).`,
    '',
    `Verdicts: least-squares slope over t = ${from} s … ${loadEnd} s; "growing" when the fitted growth over that window exceeds max(share × mean, floor).`,
    '',
    '| series | mean | slope per hour | fitted growth over the window | verdict |',
    '| --- | --- | --- | --- | --- |',
    ...verdicts.map(
      ([name, t, unit]) =>
        `| ${name} | ${t.mean.toFixed(1)} ${unit} | ${t.slopePerHour.toFixed(1)} ${unit}/h | ${t.growth.toFixed(1)} ${unit} | ${t.verdict} |`,
    ),
    '',
    'EVENTS keeps every event for 7 days (1 GiB): it grows with the mail by design until those limits; the verdict on the store is taken without it.',
    '',
    'Charts: rss.svg, fds.svg, store.svg, pending.svg; raw: samples.csv, samples.json.',
    '',
  ].join('\n');
  writeFileSync(join(outDir, 'report.md'), report);
  log(`report: ${join(outDir, 'report.md')}`);
  process.stdout.write(report);
}
