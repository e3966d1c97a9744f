/**
 * One measured run: start a system, warm it up, apply a load with the bench generator (or smtp-source),
 * wait until the sink has everything (bounded), and turn the raw timings into figures. The sink is shared
 * across runs and reset before each; every process the run starts is stopped in `finally`.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { diffSnapshots, JetStreamProbe, type JetStreamWrites } from './lib/jetstream-stats.ts';
import { ProcSampler, type RoleUsage, readProc } from './lib/proc-stats.ts';
import type { Sink } from './lib/sink-client.ts';
import { type Latency, latency, rate, timeline } from './lib/stats.ts';
import type { GeneratorOptions, GeneratorResult } from './load-generator.ts';
import type { RunningSystem } from './systems/system.ts';

const NODE = join(import.meta.dirname, '..', 'node_modules/.bin/node');

/** The load of one run. */
export interface Load {
  generator: 'bench' | 'smtp-source';
  messages: number;
  size: number;
  sessions: number;
  recipients: number;
  toDomain: string;
  /** Open-loop pacing in messages per second (latency-at-load runs); absent = as fast as possible. */
  rate?: number;
}

/** Figures of one run (the JSON the report is built from). */
export interface RunResult {
  id: string;
  system: string;
  scenario: string;
  load: Load;
  accepted: number;
  refused: number;
  delivered: number;
  duplicates: number;
  lost: number;
  generatorErrors: string[];
  acceptedPerSec: number;
  deliveredPerSec: number;
  acceptLatencyMs: Latency | undefined;
  endToEndLatencyMs: Latency | undefined;
  wallSeconds: number;
  usage: RoleUsage[];
  /** Peak of the summed PSS of all the system's processes (bytes). */
  peakTotalMemoryBytes: number;
  cpuSecondsTotal: number;
  /**
   * CPU of the bench's own load generator (bench generator or smtp-source: the bench process's reaped children,
   * cutime + cstime) and of the sink process over the same window; not part of `usage` or `cpuSecondsTotal`.
   */
  harnessCpuSeconds: { generator: number; sink: number };
  /** JetStream writes per stream over the run (systems with `natsUrl`: Postern). */
  jetstream?: JetStreamWrites;
  /** Delivered msgs/s per 0.5 s from the first message sent. */
  deliveredTimeline: Array<[number, number]>;
}

/** Runs the bench generator in its own process (its CPU is not the runner's). */
export function runGenerator(o: GeneratorOptions): Promise<GeneratorResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [join(import.meta.dirname, 'load-generator.ts'), JSON.stringify(o)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`load generator exited ${code}`));
      resolve(JSON.parse(out) as GeneratorResult);
    });
  });
}

/** Runs Postfix's smtp-source; accepted = messages when it exits 0 (it aborts a session on any refusal). */
async function runSmtpSource(
  sys: RunningSystem,
  load: Load,
): Promise<{ ok: boolean; startedAt: number; endedAt: number }> {
  const args = [
    '-s',
    String(load.sessions),
    '-m',
    String(load.messages),
    '-l',
    String(load.size),
    '-r',
    String(load.recipients),
    '-d', // reuse connections: smtp-server delays each greeting 100 ms
    '-N', // unique recipient per message: the sink can count losses
    '-f',
    'gen@src.bench',
    '-t',
    `rcpt@${load.toDomain}`,
    '-M',
    'src.bench',
    `${sys.smtp.host}:${sys.smtp.port}`,
  ];
  const startedAt = Date.now();
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn('smtp-source', args, { stdio: ['ignore', 'ignore', 'inherit'] });
    const t = setTimeout(() => child.kill('SIGKILL'), 15 * 60_000);
    child.once('exit', (c) => {
      clearTimeout(t);
      resolve(c);
    });
  });
  return { ok: code === 0, startedAt, endedAt: Date.now() };
}

/** Sends `n` small messages and waits for them, so JIT warm-up and first connections are not measured. */
export async function warmUp(sys: RunningSystem, sink: Sink, n = 200): Promise<void> {
  await sink.reset();
  const r = await runGenerator({
    host: sys.smtp.host,
    port: sys.smtp.port,
    sessions: 4,
    messages: n,
    size: 2048,
    recipients: 1,
    toDomain: 'healthy.bench',
    from: 'warm@src.bench',
    tag: `warm${Date.now()}`,
  });
  if (r.accepted < n) throw new Error(`warm-up: ${r.accepted}/${n} accepted (${r.errors.join('; ')})`);
  const c = await sink.waitFor(r.accepted, 60_000);
  if (c.received < r.accepted) throw new Error(`warm-up: ${c.received}/${r.accepted} delivered within 60 s`);
  await sink.reset();
}

/** Measures one load against an already started (and warmed) system. */
export async function measure(opts: {
  id: string;
  scenario: string;
  sys: RunningSystem;
  sink: Sink;
  load: Load;
  /** How long to wait for deliveries after the load ends (bounded). */
  drainDeadlineMs?: number;
  /** Wait for JetStream to stop moving before starting (default); false measures at once (a backlog arriving). */
  settleFirst?: boolean;
}): Promise<RunResult> {
  const probe = opts.sys.natsUrl ? await JetStreamProbe.connect(opts.sys.natsUrl) : undefined;
  try {
    return await measureWith(opts, probe);
  } finally {
    await probe?.close();
  }
}

async function measureWith(
  opts: Parameters<typeof measure>[0],
  probe: JetStreamProbe | undefined,
): Promise<RunResult> {
  const { sys, sink, load } = opts;
  // The warm-up's tail (results, state deletes, events after its last arrival) must not count in this run.
  const jsBefore = probe
    ? opts.settleFirst === false
      ? await probe.snapshot()
      : (await probe.settle()).snap
    : undefined;
  const harnessCpu = () => ({
    generator: readProc(process.pid)?.childCpuSeconds ?? 0,
    sink: readProc(sink.pid)?.cpuSeconds ?? 0,
  });
  const harness0 = harnessCpu();
  const sampler = new ProcSampler(() => sys.processes());
  sampler.start();
  const t0 = performance.timeOrigin + performance.now();
  let accepted = 0;
  let refused = 0;
  let errors: string[] = [];
  let firstAcceptedAt = t0;
  let lastAcceptedAt = t0;
  let acceptMs: number[] | undefined;
  if (load.generator === 'bench') {
    const r = await runGenerator({
      host: sys.smtp.host,
      port: sys.smtp.port,
      sessions: load.sessions,
      messages: load.messages,
      size: load.size,
      recipients: load.recipients,
      toDomain: load.toDomain,
      from: 'gen@src.bench',
      tag: opts.id,
      ...(load.rate ? { rate: load.rate } : {}),
    });
    accepted = r.accepted;
    refused = r.tempfailed + r.rejected;
    errors = r.errors;
    firstAcceptedAt = r.acceptedAt[0] ?? t0;
    lastAcceptedAt = r.lastAcceptedAt || t0;
    acceptMs = r.acceptMs;
  } else {
    const r = await runSmtpSource(sys, load);
    accepted = r.ok ? load.messages : 0;
    if (!r.ok) errors = ['smtp-source exited non-zero (a reply other than 2xx/354)'];
    lastAcceptedAt = r.endedAt;
  }
  const expected = accepted * load.recipients;
  const counts = await sink.waitFor(expected, opts.drainDeadlineMs ?? 10 * 60_000);
  const snap = await sink.snapshot();
  // Work after the last arrival (results, state deletes, events) is part of each message's cost: wait until
  // JetStream stops moving (bounded), then stop the CPU sampler too.
  let jetstream: JetStreamWrites | undefined;
  if (probe && jsBefore) {
    const s = await probe.settle();
    jetstream = diffSnapshots(jsBefore, s.snap, s);
  }
  const usage = sampler.stop();
  const harness1 = harnessCpu();
  const round2 = (x: number) => Math.round(x * 100) / 100;
  const lastArrival = snap.arrivals.reduce((a, b) => Math.max(a, b), 0);
  const received = snap.arrivals.length;
  return {
    id: opts.id,
    system: sys.label,
    scenario: opts.scenario,
    load,
    accepted,
    refused,
    delivered: received,
    duplicates: counts.duplicates,
    lost: load.generator === 'smtp-source' && !accepted ? 0 : Math.max(0, expected - received),
    generatorErrors: errors,
    acceptedPerSec: rate(accepted, load.generator === 'bench' ? firstAcceptedAt : t0, lastAcceptedAt),
    // Issue #5: first accepted → last delivered.
    deliveredPerSec: rate(received, load.generator === 'bench' ? firstAcceptedAt : t0, lastArrival),
    acceptLatencyMs: acceptMs ? latency(acceptMs) : undefined,
    endToEndLatencyMs: snap.e2e.length ? latency(snap.e2e) : undefined,
    wallSeconds: Math.round((Math.max(lastArrival, lastAcceptedAt) - t0) / 100) / 10,
    usage,
    peakTotalMemoryBytes: sampler.rssTimeline.reduce((m, [, b]) => Math.max(m, b), 0),
    cpuSecondsTotal: round2(usage.reduce((s, u) => s + u.cpuSeconds, 0)),
    harnessCpuSeconds: {
      generator: round2(harness1.generator - harness0.generator),
      sink: round2(harness1.sink - harness0.sink),
    },
    ...(jetstream ? { jetstream } : {}),
    deliveredTimeline: timeline(snap.arrivals, t0),
  };
}
