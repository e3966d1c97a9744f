/**
 * Turns the bench's raw results into report.md (tables, ratios pair by pair, resources, scaling,
 * dead destination, profile) and one SVG chart of delivered throughput over time per comparison scenario.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ProfileSummary } from './lib/cpu-profile.ts';
import type { MachineInfo } from './lib/machine.ts';
import { lineChart } from './lib/svg-chart.ts';
import { costSection } from './report-cost.ts';
import type { RunResult } from './runner.ts';

export interface ReportInput {
  quick: boolean;
  plan: unknown;
  machine: MachineInfo;
  commands: Record<string, string>;
  skipped: string[];
  results: RunResult[];
  profile: ProfileSummary[] | undefined;
}

const mb = (b: number) => `${Math.round(b / 2 ** 20)}`;
const lat = (l: RunResult['acceptLatencyMs']) => (l ? `${l.p50} / ${l.p95} / ${l.p99}` : '–');
const row = (cells: Array<string | number>) => `| ${cells.join(' | ')} |`;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length
    ? (s[Math.floor((s.length - 1) / 2)]! + s[Math.ceil((s.length - 1) / 2)]!) / 2
    : Number.NaN;
  return Math.round(m * 100) / 100;
};
const ratio = (a: number, b: number) => (b > 0 ? Math.round((a / b) * 100) / 100 : Number.NaN);

function runTable(runs: RunResult[]): string[] {
  return [
    row([
      'run',
      'scenario',
      'system',
      'accepted/s',
      'delivered/s',
      'accept p50/p95/p99 ms',
      'e2e p50/p95/p99 ms',
      'lost',
      'dup',
      'CPU s',
      'peak mem MB',
    ]),
    row(Array(11).fill('---')),
    ...runs.map((r) =>
      row([
        r.id,
        r.scenario,
        r.system,
        r.acceptedPerSec,
        r.deliveredPerSec,
        lat(r.acceptLatencyMs),
        lat(r.endToEndLatencyMs),
        r.lost,
        r.duplicates,
        r.cpuSecondsTotal,
        mb(r.peakTotalMemoryBytes),
      ]),
    ),
  ];
}

/** Ratios of each system to Postfix, pair by pair (k-th run of each system in the scenario). */
export function pairRatios(results: RunResult[], scenario: string) {
  const runs = results.filter((r) => r.scenario === scenario);
  const base = runs.filter((r) => r.system === 'postfix');
  const systems = [...new Set(runs.map((r) => r.system))].filter((s) => s !== 'postfix');
  return systems.map((system) => {
    const mine = runs.filter((r) => r.system === system);
    const pairs = mine.slice(0, base.length).map((r, k) => ({
      delivered: ratio(r.deliveredPerSec, base[k]!.deliveredPerSec),
      accepted: ratio(r.acceptedPerSec, base[k]!.acceptedPerSec),
    }));
    return {
      system,
      pairs,
      medianDelivered: median(pairs.map((p) => p.delivered)),
      medianAccepted: median(pairs.map((p) => p.accepted)),
    };
  });
}

export function writeReport(dir: string, input: ReportInput): void {
  const { results, machine } = input;
  const md: string[] = [
    `# Postern bench report (${input.quick ? 'quick' : 'full'} run, ${new Date().toISOString().slice(0, 16)}Z)`,
    '',
    `Machine: ${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB, Linux ${machine.kernel}; ` +
      `Node ${machine.node}; ${machine.natsServer}; Postfix ${machine.postfix}; 1-min load at the end ${machine.load1m}.`,
    '',
    'Caveat: the load generator, the sink and the system under test share these cores; other engineers’ test ' +
      'runs may have shared them too while this ran. Compare systems within a pair, not across reports. ' +
      'Throughput (msgs/s) and latency depend on that sharing; CPU µs per message and JetStream writes per ' +
      'message (“Cost per message”) hardly do: CPU time is charged to the process that used it, and writes ' +
      'are counted by the server.',
    '',
  ];
  if (input.skipped.length) md.push('Skipped:', ...input.skipped.map((s) => `- ${s}`), '');
  const compare = [...new Set(results.map((r) => r.scenario))].filter(
    (s) => s.startsWith('compare-') && !s.endsWith('smtp-source'),
  );
  if (compare.length) {
    md.push('## Ratios to Postfix, pair by pair (delivered msgs/s end to end; accepted msgs/s)', '');
    md.push(
      row(['scenario', 'system', 'delivered ratio per pair', 'median', 'accepted ratio per pair', 'median']),
      row(Array(6).fill('---')),
    );
    for (const s of [...compare, ...compare.map((c) => `${c}-smtp-source`)])
      for (const r of pairRatios(results, s))
        md.push(
          row([
            s,
            r.system,
            r.pairs.map((p) => p.delivered).join(', '),
            r.medianDelivered,
            r.pairs.map((p) => p.accepted).join(', '),
            r.medianAccepted,
          ]),
        );
    md.push('');
  }
  md.push('## All runs', '', ...runTable(results), '');
  md.push(
    'accepted/s: first 250 → last 250 at the generator. delivered/s: first accepted → last arrival at the sink. ' +
      'accept latency: end-of-data dot → 250 reply. e2e: X-Bench-Sent header → arrival at the sink. ' +
      'peak mem: peak of the summed PSS of all the system’s processes. smtp-source runs have no per-message timing.',
    '',
  );
  // The dead-destination runs too: their peak RSS (VmHWM) covers the 100k backlog (docs/bench.md "Memory").
  const deadScenarios = [...new Set(results.map((r) => r.scenario))].filter((s) => s.startsWith('dead-'));
  const withUsage = [...compare, ...deadScenarios].flatMap((s) => {
    const runs = results.filter((r) => r.scenario === s);
    return [...new Set(runs.map((r) => r.system))].map((sys) => runs.filter((r) => r.system === sys).at(-1)!);
  });
  if (withUsage.length) {
    md.push(
      '## Per-process resources (last run of each system per scenario)',
      '',
      row(['scenario', 'system', 'role', 'processes', 'CPU s', 'peak RSS MB']),
      row(Array(6).fill('---')),
    );
    for (const r of withUsage)
      for (const u of r.usage)
        md.push(row([r.scenario, r.system, u.role, u.processes, u.cpuSeconds, mb(u.peakRssBytes)]));
    md.push('', 'Single process: kernel VmHWM. Several processes of one role: peak of their summed PSS.', '');
  }
  md.push(...costSection(results));
  const halfPeak = results.filter((r) => r.scenario.startsWith('latency-'));
  if (halfPeak.length)
    md.push(
      '## Accept latency at half of peak load (2 KB, open loop; DESIGN §9 target: p99 < 50 ms)',
      '',
      ...runTable(halfPeak),
      '',
    );
  const scaling = results.filter((r) => r.scenario.startsWith('scaling-'));
  if (scaling.length) md.push('## Scaling (Postern, 2 KB, smarthost)', '', ...runTable(scaling), '');
  const shaping = results.filter((r) => r.scenario.startsWith('shaping-'));
  if (shaping.length) {
    const off = shaping.find((r) => r.scenario === 'shaping-off');
    md.push(
      '## Traffic shaping (Postern, 2 KB, MX route, 2 delivery processes; issue #8)',
      '',
      'Cost of cluster-wide limits: the same load with shaping off, on without limits, and with generous limits',
      'every message passes (connection lease per session, shared token per message); then one site throttled to',
      '60/min with a backlog while the healthy site flows.',
      '',
      row(['scenario', 'delivered/s', 'vs shaping-off', 'CPU s (all processes)', 'e2e p99 ms', 'notes']),
      row(Array(6).fill('---')),
    );
    for (const r of shaping) {
      const vs = off ? `${Math.round((r.deliveredPerSec / off.deliveredPerSec - 1) * 1000) / 10}%` : '–';
      md.push(
        row([
          r.scenario,
          r.deliveredPerSec,
          vs,
          r.cpuSecondsTotal,
          r.endToEndLatencyMs?.p99 ?? '–',
          r.generatorErrors.join('; '),
        ]),
      );
    }
    md.push('');
  }
  const dead = results.filter((r) => r.scenario.startsWith('dead-'));
  if (dead.length) {
    md.push(
      '## Dead destination (451 at RCPT) backlog vs healthy flow',
      '',
      row([
        'system',
        'healthy delivered/s without backlog',
        'with backlog',
        'change',
        'e2e p99 without / with (ms)',
        'notes',
      ]),
      row(Array(6).fill('---')),
    );
    for (const sys of [...new Set(dead.map((r) => r.system))]) {
      const a = dead.find((r) => r.system === sys && r.scenario === 'dead-baseline');
      if (!a) continue;
      for (const b of dead.filter((r) => r.system === sys && r.scenario.startsWith('dead-with-backlog'))) {
        const change = Math.round((b.deliveredPerSec / a.deliveredPerSec - 1) * 1000) / 10;
        const variant = b.scenario.replace(/^dead-with-backlog-?/, '') || 'deferred';
        md.push(
          row([
            `${sys} (backlog ${variant})`,
            a.deliveredPerSec,
            b.deliveredPerSec,
            `${change}%`,
            `${a.endToEndLatencyMs?.p99 ?? '–'} / ${b.endToEndLatencyMs?.p99 ?? '–'}`,
            b.generatorErrors.join('; '),
          ]),
        );
      }
    }
    md.push('');
  }
  if (input.profile?.length) {
    md.push('## CPU profile of Postern under load (node --cpu-prof, self time)', '');
    for (const p of input.profile) {
      md.push(
        `### ${p.role} (pid ${p.pid}, ${p.totalMs} ms busy)`,
        '',
        row(['function', 'where', 'self ms', '%']),
        row(Array(4).fill('---')),
      );
      for (const t of p.top) md.push(row([t.fn, t.where, t.selfMs, t.pct]));
      md.push('');
    }
  }
  const charts = compare.map((s) => {
    const runs = results.filter((r) => r.scenario === s);
    const first = [...new Set(runs.map((r) => r.system))].map((sys) => runs.find((r) => r.system === sys)!);
    const file = `throughput-${s}.svg`;
    writeFileSync(
      join(dir, file),
      lineChart(
        `Delivered msgs/s over time — ${s} (first pair)`,
        'delivered msgs/s',
        first.map((r) => ({ label: `${r.system} (${r.id})`, points: r.deliveredTimeline })),
      ),
    );
    return `![${s}](${file})`;
  });
  if (charts.length) md.push('## Throughput over time', '', ...charts, '');
  md.push(
    '## Commands',
    '',
    ...Object.entries(input.commands).map(([k, v]) => `- ${k}: \`${v}\``),
    '',
    '## Plan',
    '',
    '```json',
    JSON.stringify(input.plan, null, 2),
    '```',
    '',
  );
  writeFileSync(join(dir, 'report.md'), md.join('\n'));
}
