/**
 * Haraka (npm `Haraka`, installed by bench/setup.sh outside the repo in ~/.cache/postern/bench/haraka) as a
 * loopback relay: the `relay` plugin lets 127.0.0.0/8 relay, relayed mail goes to Haraka's outbound queue (a
 * disk spool) and `queue/smtp_forward` (enable_outbound) makes the sink its next hop — Haraka's queueing
 * relay, the setup comparable to Postfix and Postern. One process (no cluster), run with the same Node 24.
 * dead.bench is not routed separately (smtp_forward has one host), so Haraka skips the dead-destination run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { startedGroups } from '../lib/process-groups.ts';
import { listProcesses } from '../lib/process-tree.ts';
import type { Destinations, RunningSystem } from './system.ts';

const ROOT = resolve(import.meta.dirname, '../..');
export const HARAKA_DIR = process.env['BENCH_HARAKA_DIR'] ?? join(homedir(), '.cache/postern/bench/haraka');
const BIN = join(HARAKA_DIR, 'node_modules/Haraka/bin/haraka');

export function harakaAvailable(): { ok: boolean; reason: string } {
  return existsSync(BIN)
    ? { ok: true, reason: '' }
    : { ok: false, reason: `not installed at ${HARAKA_DIR} (bench/setup.sh tries npm install Haraka there)` };
}

export async function startHaraka(o: {
  dir: string;
  port: number;
  to: Destinations;
  logFile: string;
}): Promise<RunningSystem> {
  rmSync(o.dir, { recursive: true, force: true });
  const cfg = join(o.dir, 'config');
  // Haraka's own defaults first (connection.ini carries the greeting the core needs), then ours on top.
  cpSync(join(HARAKA_DIR, 'node_modules/Haraka/config'), cfg, { recursive: true });
  mkdirSync(join(o.dir, 'queue'), { recursive: true });
  const files: Record<string, string> = {
    'smtp.ini': `[main]\nlisten=127.0.0.1:${o.port}\n`,
    plugins: 'relay\nqueue/smtp_forward\n',
    'relay.ini': '[relay]\nacl=true\nforce_routing=false\ndest_domains=false\nall=false\n',
    relay_acl_allow: '127.0.0.0/8\n',
    'smtp_forward.ini': `host=${o.to.healthy.host}\nport=${o.to.healthy.port}\nenable_tls=false\nenable_outbound=true\n`,
    'log.ini': '[main]\nlevel=warn\n',
    'outbound.ini': '[main]\nenable_tls=false\n',
    queue_dir: `${join(o.dir, 'queue')}\n`,
    me: 'haraka-bench.localdomain\n',
    host_list: '',
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(cfg, name), text);
  const child: ChildProcess = spawn(join(ROOT, 'node_modules/.bin/node'), [BIN, '-c', o.dir], {
    cwd: o.dir,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HARAKA: o.dir },
  });
  const log: string[] = [];
  const keep = (d: Buffer) => {
    log.push(d.toString());
    if (log.length > 500) log.shift();
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  startedGroups.add(child.pid!);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    startedGroups.delete(child.pid!);
    writeFileSync(o.logFile, log.join(''));
  };
  // Ready once the SMTP port accepts connections (bounded: 30 s).
  let ready = false;
  for (let i = 0; i < 300 && !ready && child.exitCode === null; i++) {
    ready = await new Promise<boolean>((res) => {
      const s = connect(o.port, '127.0.0.1', () => {
        s.destroy();
        res(true);
      });
      s.on('error', () => res(false));
    });
    if (!ready) await new Promise((r) => setTimeout(r, 100));
  }
  if (!ready) {
    await stop();
    throw new Error(`haraka did not listen on 127.0.0.1:${o.port}: ${log.join('').slice(-1500)}`);
  }
  return {
    label: 'haraka',
    smtp: { host: '127.0.0.1', port: o.port },
    // bin/haraka re-executes haraka.js as a child (and a cluster master forks workers): take the tree.
    processes() {
      const out = new Map<number, string>([[child.pid!, 'haraka']]);
      const all = listProcesses();
      for (let grew = true, round = 0; grew && round < 5; round++) {
        grew = false;
        for (const p of all)
          if (out.has(p.ppid) && !out.has(p.pid)) {
            out.set(p.pid, 'haraka');
            grew = true;
          }
      }
      return out;
    },
    stop,
  };
}
