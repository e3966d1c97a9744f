/** The machine a bench ran on, for the report: cores, CPU model, memory, kernel, tool versions. */
import { execFileSync } from 'node:child_process';
import { cpus, release, totalmem } from 'node:os';
import { findNatsServer } from '../../services/local/nats-server.ts';
import { postfixVersion } from '../systems/postfix.ts';

export interface MachineInfo {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  node: string;
  natsServer: string;
  postfix: string;
  load1m: string;
}

export function machineInfo(): MachineInfo {
  let nats = 'unknown';
  try {
    nats = execFileSync(findNatsServer(), ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    // reported as unknown
  }
  let load = '';
  try {
    load = execFileSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).split(' ')[0] ?? '';
  } catch {
    // not Linux
  }
  return {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    natsServer: nats,
    postfix: postfixVersion() ?? 'not installed',
    load1m: load,
  };
}
