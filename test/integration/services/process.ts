/**
 * Test helper: a Postern service process (`node services/<svc>/main.ts`) with its JSON log lines collected,
 * its telemetry on a known port, and a way to wait for log lines or its exit.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { freePort } from '../../../services/local/ports.ts';
import { eventually } from '../../helpers/postern.ts';

export interface ServiceProcess {
  child: ChildProcess;
  metricsPort: number;
  lines: Record<string, unknown>[];
  /** Resolves with the first log line matching `test` (bounded wait). */
  waitForLine(what: string, test: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  /** HTTP status of /healthz or /readyz, or 0 when nothing answers. */
  probe(path: '/healthz' | '/readyz'): Promise<number>;
  exited: Promise<number | null>;
  kill(): void;
}

export async function startServiceProcess(
  entry: string,
  env: Record<string, string>,
): Promise<ServiceProcess> {
  const metricsPort = await freePort('127.0.0.1');
  const child = spawn(process.execPath, [entry], {
    env: {
      ...process.env,
      LOG_LEVEL: 'info',
      POSTERN_METRICS_HOST: '127.0.0.1',
      POSTERN_METRICS_PORT: String(metricsPort),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop() ?? '';
    for (const p of parts) {
      try {
        lines.push(JSON.parse(p) as Record<string, unknown>);
      } catch {
        lines.push({ msg: p });
      }
      if (process.env['POSTERN_TEST_LOGS']) process.stderr.write(`${entry}: ${p}\n`);
    }
  });
  child.stderr!.on('data', (d: Buffer) => lines.push({ msg: d.toString(), stderr: true }));
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  return {
    child,
    metricsPort,
    lines,
    exited,
    waitForLine: (what, test) => eventually(what, () => lines.find(test), 60_000),
    probe: async (path) => {
      try {
        return (await fetch(`http://127.0.0.1:${metricsPort}${path}`)).status;
      } catch {
        return 0;
      }
    },
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
