#!/usr/bin/env node
/**
 * `npm run fuzz [-- --minutes 10] [--concurrency 4] [--seed N] [--no-huge] [--out DIR]` (issue #11 item 3, the
 * long run): the suite's fuzzer (test/fuzz/) against one real ingress process and nats-server for N minutes —
 * the hostile corpus first, then fast-check sessions (with lines of up to 10 MB unless --no-huge) from
 * consecutive seeds on `concurrency` parallel workers. Samples the ingress's RSS and V8 heap every 5 s and
 * judges them with the soak's trend test; checks the same oracles as the suite (process alive, valid replies,
 * clean ends, no session left open, acceptance). Writes report.md, fuzz.json and memory.svg into
 * bench/results/fuzz-<date>/; exits 1 on any failure, each reported with the seed that reproduces it
 * (`POSTERN_FUZZ_SEED=<seed>` in the suite's test, or `--seed <seed> --concurrency 1` here).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { checkEnvelopes, fuzzRun, newStats, type RunResult } from '../test/fuzz/fuzz-run.ts';
import { runSession } from '../test/fuzz/fuzz-session.ts';
import { startFuzzTarget } from '../test/fuzz/fuzz-target.ts';
import { HOSTILE_CORPUS } from '../test/fuzz/hostile-corpus.ts';
import { fuzzCases } from '../test/fuzz/smtp-grammar.ts';
import { lineChart } from './lib/svg-chart.ts';
import { trend } from './lib/trend.ts';

const ROOT = resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '4' },
    seed: { type: 'string' },
    'runs-per-seed': { type: 'string', default: '50' },
    'no-huge': { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
const stamp = new Date().toISOString().replace(/[:]/g, '-').replace(/\..*/, '');
const outDir = resolve(args.out ?? join(ROOT, 'bench/results', `fuzz-${stamp}`));
mkdirSync(outDir, { recursive: true });
const log = (msg: string) =>
  process.stderr.write(`[fuzz ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const deadline = Date.now() + Number(args.minutes) * 60_000;
let nextSeed = Number(args.seed ?? Math.floor(Math.random() * 2 ** 30));
const firstSeed = nextSeed;
const runsPerSeed = Number(args['runs-per-seed']);
const arbitrary = fuzzCases({ huge: !args['no-huge'] });

const target = await startFuzzTarget();
const stats = newStats();
const failures: string[] = [];
const memory: Array<{ t: number; rss: number; heap: number; sessions: number }> = [];
const t0 = Date.now();
const sample = async () => {
  memory.push({
    t: Math.round((Date.now() - t0) / 1000),
    rss: target.rssBytes(),
    heap: await target.metric('nodejs_heap_size_used_bytes'),
    sessions: stats.sessions,
  });
  target.trimLogs();
};
let exitCode = 0;
try {
  for (const [name, c] of Object.entries(HOSTILE_CORPUS)) {
    const o = await runSession(target, c);
    for (const id of o.queuedIds) stats.queued.add(id);
    if (o.violations.length) failures.push(`corpus "${name}": ${o.violations.join('; ')}`);
  }
  await sample();
  const timer = setInterval(() => void sample(), 5000);
  const seedsRun: RunResult[] = [];
  // Each worker takes the next seed until the time is up or the ingress died (nothing more to learn then).
  const worker = async () => {
    while (Date.now() < deadline && target.alive()) {
      const seed = nextSeed++;
      const r = await fuzzRun(target, { seed, numRuns: runsPerSeed, stats, arbitrary });
      seedsRun.push(r);
      if (r.failed) {
        failures.push(`seed ${seed}:\n${r.report}`);
        log(`seed ${seed} FAILED`);
      }
      log(
        `seed ${seed} done; ${stats.sessions} sessions, ${failures.length} failures, RSS ${target.rssBytes() >> 20} MB`,
      );
    }
  };
  await Promise.all(Array.from({ length: Number(args.concurrency) }, worker));
  clearInterval(timer);
  await sample();
  const envelopes = await target.drainEnvelopes();
  failures.push(...checkEnvelopes(envelopes, stats.queued).map((v) => `acceptance: ${v}`));
  if (!target.alive()) failures.push(`ingress died:\n${target.crashOutput()}`);
  if ((await target.healthz()) !== 200) failures.push('/healthz did not answer 200');
  const open = await target.metric('postern_smtp_sessions_active');
  const pts = (f: (m: (typeof memory)[number]) => number) =>
    memory
      .filter((m) => m.t >= (memory.at(-1)?.t ?? 0) / 5)
      .map((m): [number, number] => [m.t, f(m) / 1048576]);
  const rssTrend = trend(
    pts((m) => m.rss),
    { share: 0.1, floor: 16 },
  );
  const heapTrend = trend(
    pts((m) => m.heap),
    { share: 0.1, floor: 8 },
  );
  writeFileSync(
    join(outDir, 'memory.svg'),
    lineChart(
      'Ingress memory under fuzzing',
      'MB',
      [
        { label: 'RSS', points: memory.map((m) => [m.t, m.rss / 1048576]) },
        { label: 'V8 heap used', points: memory.map((m) => [m.t, m.heap / 1048576]) },
      ],
      'seconds since the generated sessions started',
    ),
  );
  writeFileSync(
    join(outDir, 'fuzz.json'),
    `${JSON.stringify({ firstSeed, seeds: seedsRun.length, sessions: stats.sessions, codes: stats.codes, queued: stats.queued.size, envelopes: envelopes.length, failures, memory }, null, 1)}\n`,
  );
  const report = [
    `# Fuzz run ${stamp}`,
    '',
    `${args.minutes} min, ${args.concurrency} workers, seeds ${firstSeed}…${nextSeed - 1} (${runsPerSeed} sessions each), lines up to 10 MB: ${!args['no-huge']}.`,
    `Sessions: ${stats.sessions} generated + ${Object.keys(HOSTILE_CORPUS).length} corpus; messages queued: ${stats.queued.size} (${envelopes.length} envelopes checked).`,
    `Replies by code: ${JSON.stringify(stats.codes)}`,
    `Ingress alive at the end: ${target.alive()}; sessions still open: ${open}.`,
    `RSS: mean ${rssTrend.mean.toFixed(1)} MB, slope ${rssTrend.slopePerHour.toFixed(1)} MB/h → ${rssTrend.verdict}; V8 heap used: mean ${heapTrend.mean.toFixed(1)} MB, slope ${heapTrend.slopePerHour.toFixed(1)} MB/h → ${heapTrend.verdict} (judged after the first fifth).`,
    '',
    failures.length
      ? `## Failures (${failures.length})\n\n${failures.map((f) => `\`\`\`\n${f}\n\`\`\``).join('\n\n')}`
      : 'No failures.',
    '',
  ].join('\n');
  writeFileSync(join(outDir, 'report.md'), report);
  process.stdout.write(report);
  if (failures.length || rssTrend.verdict === 'growing' || heapTrend.verdict === 'growing') exitCode = 1;
} finally {
  await target.stop();
}
process.exit(exitCode);
