#!/usr/bin/env node
/**
 * `npm run bench [-- --quick] [--systems postern,postern-queued,postern-mx,postfix,haraka] [--only compare,scaling,dead,large]
 * [--profile] [--out DIR]`: Postern local mode side by side with Postfix (and Haraka when it installs),
 * alternating A B A B on the same sink in one run, then Postern's delivery/ingress scaling and the
 * dead-destination run. Writes bench/results/<date>/{results.json,report.md,*.svg}. Never part of the test suite.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectNats } from '../services/common/nats.ts';
import { analyseProfiles } from './lib/cpu-profile.ts';
import { startDns } from './lib/dns.ts';
import { machineInfo } from './lib/machine.ts';
import { freePort } from './lib/ports.ts';
import { killStartedGroups } from './lib/process-groups.ts';
import { type Sink, startSink } from './lib/sink-client.ts';
import { writeReport } from './report.ts';
import { type Load, measure, type RunResult, runGenerator, warmUp } from './runner.ts';
import { harakaAvailable, startHaraka } from './systems/haraka.ts';
import { startPostern } from './systems/postern.ts';
import { postfixVersion, startPostfix } from './systems/postfix.ts';
import type { Destinations, RunningSystem } from './systems/system.ts';

const ROOT = resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    systems: { type: 'string' },
    only: { type: 'string', default: 'compare,latency,scaling,dead,shaping' },
    profile: { type: 'boolean', default: false },
    /** Message size of the profiled run, in KiB (default 2). */
    'profile-size': { type: 'string', default: '2' },
    out: { type: 'string' },
    recipients: { type: 'string', default: '1' },
    // The dead part's backlog: still arriving (measured right after it was accepted, while its first attempts
    // are being made) and/or deferred (measured once every backlog message had its first attempt).
    'dead-variants': { type: 'string', default: 'arriving,deferred' },
  },
});
const quick = args.quick!;
const plan = {
  pairs: quick ? 2 : 3,
  sessions: 10,
  recipients: Number(args.recipients),
  small: { size: 2 * 1024, messages: quick ? 3000 : 20_000 },
  large: { size: 100 * 1024, messages: quick ? 600 : 4000 },
  large8m: { size: 8 * 1048576, messages: quick ? 40 : 200, sessions: 4 },
  scaling: { messages: quick ? 3000 : 20_000, delivery: [1, 2, 4] },
  dead: { backlog: quick ? 5000 : 100_000, healthy: quick ? 2000 : 10_000 },
  shaping: { messages: quick ? 3000 : 20_000, throttledBacklog: quick ? 1000 : 5000, delivery: 2 },
};
const parts = new Set(args.only!.split(','));
const stamp = new Date().toISOString().replace(/[:]/g, '-').replace(/\..*/, '');
const outDir = resolve(args.out ?? join(ROOT, 'bench/results', stamp));
const work = join(process.env['BENCH_WORK_DIR'] ?? '/tmp', `postern-bench-${process.pid}`);
mkdirSync(outDir, { recursive: true });
mkdirSync(work, { recursive: true });
const log = (msg: string) =>
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

type Factory = (
  label: string,
  extra?: {
    delivery?: number;
    ingress?: number;
    nodeOptions?: string;
    destinations?: string[];
    env?: Record<string, string>;
  },
) => Promise<RunningSystem>;

const cleanups: Array<() => Promise<void>> = [];
let running: RunningSystem | undefined;
const cleanup = async () => {
  if (running) await running.stop().catch(() => undefined);
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  killStartedGroups();
};
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.on(sig, () => {
    log(`${sig}: stopping everything`);
    void cleanup().then(() => process.exit(130));
  });

const results: RunResult[] = [];
const skipped: string[] = [];
try {
  // Healthy sink on 127.0.0.1, dead destination (451 at RCPT) on 127.0.0.2, same port (POSTERN_MX_PORT).
  const sinkPort = await freePort('127.0.0.1');
  const sink = await startSink([
    { host: '127.0.0.1', port: sinkPort, mode: 'accept' },
    { host: '127.0.0.2', port: sinkPort, mode: 'tempfail' },
  ]);
  cleanups.push(() => sink.stop());
  const dns = await startDns(await freePort('127.0.0.1'), '127.0.0.1', '127.0.0.2');
  cleanups.push(() => dns.stop());
  const to: Destinations = {
    healthy: { host: '127.0.0.1', port: sinkPort },
    dead: { host: '127.0.0.2', port: sinkPort },
    dns: { host: dns.host, port: dns.port },
  };

  const posternReady = existsSync(join(ROOT, 'services/delivery/main.ts'));
  const factories: Record<string, Factory> = {};
  if (posternReady) {
    for (const route of ['smarthost', 'mx'] as const)
      factories[route === 'smarthost' ? 'postern' : 'postern-mx'] = async (label, extra) =>
        startPostern({
          dir: join(work, label),
          smtpPort: await freePort('127.0.0.1'),
          submissionPort: await freePort('127.0.0.1'),
          to,
          route,
          delivery: extra?.delivery ?? 1,
          ingress: extra?.ingress ?? 1,
          ...(extra?.nodeOptions ? { nodeOptions: extra.nodeOptions } : {}),
          ...(extra?.destinations ? { destinations: extra.destinations } : {}),
          ...(extra?.env ? { env: extra.env } : {}),
          logFile: join(outDir, 'logs', `${label}.log`),
        });
    // The flow before issue #10's lean path (every message through the queue), for before/after in one run.
    factories['postern-queued'] = (label, extra) =>
      factories['postern']!(label, { ...extra, env: { ...extra?.env, POSTERN_DIRECT_ROUTING: '0' } });
  } else skipped.push('postern: services/delivery/main.ts does not exist yet (local mode cannot deliver)');
  if (postfixVersion())
    factories['postfix'] = async (label) =>
      startPostfix({ dir: join(work, label), port: await freePort('127.0.0.1'), to });
  else skipped.push('postfix: not installed (bench/setup.sh installs it as root)');
  const haraka = harakaAvailable();
  if (haraka.ok)
    factories['haraka'] = async (label) =>
      startHaraka({
        dir: join(work, label),
        port: await freePort('127.0.0.1'),
        to,
        logFile: join(outDir, 'logs', `${label}.log`),
      });
  else skipped.push(`haraka: ${haraka.reason}`);
  mkdirSync(join(outDir, 'logs'), { recursive: true });

  const wanted = (args.systems ?? 'postern,postfix,postern-mx,haraka').split(',').filter((s) => factories[s]);
  let seq = 0;
  const broken = new Set<string>();
  /** Starts a system, warms it, measures one load, stops it (always). */
  const oneRun = async (system: string, scenario: string, load: Load, extra?: Parameters<Factory>[1]) => {
    const id = `r${++seq}`;
    log(`${id} ${scenario}: ${system} ${load.generator} ${load.messages}×${load.size}B`);
    if (broken.has(system)) return undefined;
    try {
      running = await factories[system]!(`${id}-${system}`, extra);
      await warmUp(running, sink);
      const r = await measure({ id, scenario, sys: running, sink, load });
      results.push(r);
      log(
        `${id} accepted ${r.acceptedPerSec}/s delivered ${r.deliveredPerSec}/s lost ${r.lost} ` +
          `accept p99 ${r.acceptLatencyMs?.p99 ?? '-'} ms e2e p99 ${r.endToEndLatencyMs?.p99 ?? '-'} ms`,
      );
      return r;
    } catch (err) {
      // One system failing (e.g. Haraka) must not sink the whole bench: note it and carry on without it.
      log(`${id} ${system} failed: ${(err as Error).message}`);
      skipped.push(`${system}: ${id} failed: ${(err as Error).message.split('\n')[0]}`);
      broken.add(system);
      return undefined;
    } finally {
      await running?.stop();
      running = undefined;
    }
  };
  const load = (size: number, messages: number, generator: Load['generator'] = 'bench'): Load => ({
    generator,
    messages,
    size,
    sessions: plan.sessions,
    recipients: plan.recipients,
    toDomain: 'healthy.bench',
  });

  if (parts.has('compare')) {
    for (const { size, messages } of [plan.small, plan.large]) {
      const scenario = `compare-${size / 1024}k`;
      // A B A B: every pair runs each system once, in the same order, back to back.
      for (let p = 0; p < plan.pairs; p++)
        for (const system of wanted) await oneRun(system, scenario, load(size, messages));
      // The same load from Postfix's smtp-source (a generator we did not write): throughput only.
      for (const system of wanted)
        await oneRun(system, `${scenario}-smtp-source`, load(size, messages, 'smtp-source'));
    }
  }
  if (parts.has('latency')) {
    // DESIGN §9: p99 accept latency at half of peak load. Peak = this run's median 2 KB delivered/s of the
    // system (the compare part), or a fresh closed-loop run when compare was skipped; then an open-loop run
    // paced at half of it.
    for (const system of ['postern', 'postfix'].filter((s) => factories[s])) {
      const peaks = results
        .filter(
          (r) =>
            r.scenario === 'compare-2k' &&
            // Postern's own peak: not the via-queue system (postern-queued) the same run may have measured.
            (system === 'postern'
              ? r.system.startsWith('postern (smarthost') && !r.system.includes('via queue')
              : r.system.startsWith('postfix')),
        )
        .map((r) => r.deliveredPerSec)
        .sort((a, b) => a - b);
      let peak = peaks[Math.floor((peaks.length - 1) / 2)];
      if (!peak)
        peak = (await oneRun(system, 'latency-peak', load(2048, plan.small.messages)))?.deliveredPerSec;
      if (!peak) continue;
      const rate = Math.max(1, Math.round(peak / 2));
      await oneRun(system, `latency-half-peak (${rate}/s)`, { ...load(2048, plan.small.messages), rate });
    }
  }
  if (parts.has('scaling') && factories['postern']) {
    for (const delivery of plan.scaling.delivery)
      await oneRun('postern', `scaling-delivery-${delivery}`, load(2048, plan.scaling.messages), {
        delivery,
      });
    await oneRun('postern', 'scaling-ingress-2-delivery-2', load(2048, plan.scaling.messages), {
      delivery: 2,
      ingress: 2,
    });
  }
  if (parts.has('dead')) {
    const variants = args['dead-variants']!.split(',');
    // Postern routes by MX here (postern or postern-mx asked for); Postfix only when asked for, so
    // `--systems postern-mx` measures Postern's memory without a Postfix run.
    const deadSystems = [
      ...(wanted.includes('postern') || wanted.includes('postern-mx') ? ['postern-mx'] : []),
      ...(wanted.includes('postfix') ? ['postfix'] : []),
    ];
    for (const system of deadSystems.filter((s) => factories[s])) {
      await oneRun(system, 'dead-baseline', load(2048, plan.dead.healthy));
      for (const variant of variants) {
        const id = `r${++seq}`;
        log(
          `${id} dead-backlog-${variant}: ${system} ${plan.dead.backlog} to dead.bench, then ${plan.dead.healthy} healthy`,
        );
        running = await factories[system]!(`${id}-${system}`);
        try {
          await warmUp(running, sink);
          const backlog = await sendBacklog(running, plan.dead.backlog, 'dead.bench', `${id}dead`);
          log(`${id} backlog accepted ${backlog.accepted}`);
          let note = `backlog accepted ${backlog.accepted}`;
          if (variant === 'deferred') {
            const { settled, seconds } = await settleBacklog(running, sink, backlog.accepted);
            log(`${id} backlog first attempts ${settled}/${backlog.accepted} after ${seconds} s`);
            note += `; first attempts done before the healthy run: ${settled} (after ${seconds} s)`;
          }
          await sink.reset();
          const scenario = `dead-with-backlog-${variant}`;
          const r = await measure({
            id,
            scenario,
            sys: running,
            sink,
            load: load(2048, plan.dead.healthy),
            // Arriving: measure at once, while the backlog's first attempts are still being made.
            ...(variant === 'arriving' ? { settleFirst: false } : {}),
          });
          const counts = await sink.count();
          const deferred = running.natsUrl ? await deferralEvents(running.natsUrl) : undefined;
          results.push({
            ...r,
            scenario,
            generatorErrors: [
              ...r.generatorErrors,
              `${note}; dead-destination attempts (451 at RCPT) during the healthy run: ${counts.tempfailed}` +
                (deferred !== undefined ? `; deferrals reported in all: ${deferred}` : ''),
            ],
          });
          log(`${id} healthy delivered ${r.deliveredPerSec}/s with backlog (${variant}), lost ${r.lost}`);
        } finally {
          await running.stop();
          running = undefined;
        }
      }
    }
  }
  if (parts.has('large')) {
    // Bodies above the server's max payload (1 MiB): the object store, streamed into the SMTP socket by delivery.
    // Not in the default parts; its figure is per-process peak RSS (report "Memory per role"), not throughput.
    for (let p = 0; p < plan.pairs; p++)
      for (const system of wanted)
        await oneRun(system, `large-${plan.large8m.size / 1048576}m`, {
          ...load(plan.large8m.size, plan.large8m.messages),
          sessions: plan.large8m.sessions,
        });
  }
  if (parts.has('shaping') && factories['postern-mx']) {
    // Issue #8: the cost of cluster-wide limits (same 2 KB load, MX route, 2 delivery processes): shaping off,
    // on without limits, on with generous limits every message must pass (a connection lease per session and a
    // shared token per message); then the same limits with one site throttled to 60/min and a backlog for it.
    const generous =
      '{ match: "*", maxConnections: 100, messagesPerConnection: 1000, ratePerMinute: 1000000, connectionsPerMinute: 100000 }';
    const n = plan.shaping.messages;
    const delivery = plan.shaping.delivery;
    await oneRun('postern-mx', 'shaping-off', load(2048, n), { delivery, env: { POSTERN_SHAPING: 'off' } });
    await oneRun('postern-mx', 'shaping-no-limits', load(2048, n), { delivery });
    await oneRun('postern-mx', 'shaping-generous-limits', load(2048, n), {
      delivery,
      destinations: [generous],
    });
    const id = `r${++seq}`;
    const extra = {
      delivery,
      destinations: [generous, '{ match: throttled.bench, ratePerMinute: 60 }'],
    };
    log(
      `${id} shaping-one-site-throttled: ${plan.shaping.throttledBacklog} to throttled.bench (60/min), then ${n} healthy`,
    );
    running = await factories['postern-mx']!(`${id}-postern-mx`, extra);
    try {
      await warmUp(running, sink);
      const backlog = await sendBacklog(
        running,
        plan.shaping.throttledBacklog,
        'throttled.bench',
        `${id}throttled`,
      );
      await sink.reset();
      const r = await measure({
        id,
        scenario: 'shaping-one-site-throttled',
        sys: running,
        sink,
        load: load(2048, n),
      });
      results.push({
        ...r,
        generatorErrors: [
          ...r.generatorErrors,
          `backlog for the throttled site (60/min) accepted ${backlog.accepted}; its arrivals during the run count in delivered (≤ 1/s)`,
        ],
      });
      log(`${id} healthy delivered ${r.deliveredPerSec}/s beside a throttled site`);
    } finally {
      await running.stop();
      running = undefined;
    }
  }
  let profile: Awaited<ReturnType<typeof analyseProfiles>> | undefined;
  if (args.profile && factories['postern']) {
    const dir = join(work, 'cpu-prof');
    const kib = Number(args['profile-size']);
    log(`profiling postern (node --cpu-prof on every service, ${kib} KiB messages)`);
    const messages = kib > 16 ? plan.large.messages : plan.small.messages;
    await oneRun('postern', `profile-${kib}k`, load(kib * 1024, messages), {
      nodeOptions: `--cpu-prof --cpu-prof-dir=${dir}`,
    });
    profile = analyseProfiles(dir, join(work, `r${seq}-postern`, 'data', 'pids.json'));
  }
  const machine = machineInfo();
  const commands = {
    bench: `npm run bench --${quick ? ' --quick' : ''}${args.systems ? ` --systems ${args.systems}` : ''}`,
    postfix: 'postfix -c <work>/rN-postfix start (main.cf/master.cf written by bench/systems/postfix.ts)',
    postern:
      'node bin/postern.ts local --config <work>/bench.yaml --data-dir <dir> --smtp-port P --delivery N --ingress N',
    smtpSource: `smtp-source -s ${plan.sessions} -m M -l SIZE -r ${plan.recipients} -d -N -f gen@src.bench -t rcpt@healthy.bench -M src.bench 127.0.0.1:P`,
    generator: `node bench/load-generator.ts '{"sessions":${plan.sessions},"messages":M,"size":SIZE,...}'`,
  };
  writeFileSync(
    join(outDir, 'results.json'),
    `${JSON.stringify({ date: new Date().toISOString(), quick, plan, machine, commands, skipped, results, profile }, null, 2)}\n`,
  );
  writeReport(outDir, { quick, plan, machine, commands, skipped, results, profile });
  log(`report: ${join(outDir, 'report.md')}`);
} catch (err) {
  log(`failed: ${(err as Error).stack ?? err}`);
  process.exitCode = 1;
} finally {
  await cleanup();
  execFileSync('rm', ['-rf', work]);
}

/**
 * Waits until every backlog message had its first attempt: 451s counted at the dead sink, or for Postern the
 * deferrals it reported (a job for a site known dead is deferred without a connection, so the sink never sees
 * it). Bounded: 15 min overall, or 60 s without progress.
 */
/** A backlog of 2 KB messages to one domain, sent with the plan's sessions (the dead and shaping parts). */
function sendBacklog(sys: RunningSystem, messages: number, toDomain: string, tag: string) {
  return runGenerator({
    host: sys.smtp.host,
    port: sys.smtp.port,
    sessions: plan.sessions,
    messages,
    size: 2048,
    recipients: 1,
    toDomain,
    from: 'gen@src.bench',
    tag,
  });
}

async function settleBacklog(sys: RunningSystem, sink: Sink, accepted: number) {
  const start = Date.now();
  const attempts = async () =>
    Math.max((await sink.count()).tempfailed, sys.natsUrl ? await deferralEvents(sys.natsUrl) : 0);
  let lastSeen = -1;
  let lastProgress = Date.now();
  for (;;) {
    const n = await attempts();
    if (n >= accepted) break;
    if (n > lastSeen) {
      lastSeen = n;
      lastProgress = Date.now();
    }
    if (Date.now() - start > 15 * 60_000 || Date.now() - lastProgress > 60_000) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  return { settled: await attempts(), seconds: Math.round((Date.now() - start) / 1000) };
}

/** Postern's `deferred` events so far (EVENTS, subject mail.event.deferred): one per deferred recipient attempt. */
async function deferralEvents(natsUrl: string): Promise<number> {
  const nc = await connectNats(natsUrl, 'postern-bench-deferrals');
  try {
    const jsm = await jetstreamManager(nc);
    const si = await jsm.streams.info('EVENTS', { subjects_filter: 'mail.event.deferred' });
    return (si.state.subjects as Record<string, number> | undefined)?.['mail.event.deferred'] ?? 0;
  } finally {
    await nc.close();
  }
}
