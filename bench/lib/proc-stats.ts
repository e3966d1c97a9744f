/**
 * CPU and memory of the processes under test, read from /proc (Linux only). CPU seconds are utime + stime
 * (fields 14/15 of /proc/<pid>/stat); for a supervisor we add cutime + cstime (fields 16/17) so that children it
 * already reaped still count. Peak RSS is VmHWM from /proc/<pid>/status: the kernel's own high-water mark, so
 * no sampling interval can miss a spike.
 */
import { readFileSync } from 'node:fs';

const CLK_TCK = 100; // sysconf(_SC_CLK_TCK) is 100 on every Linux this runs on.

/** One process's counters at one instant. */
export interface ProcSample {
  pid: number;
  comm: string;
  ppid: number;
  cpuSeconds: number;
  childCpuSeconds: number;
  rssBytes: number;
  hwmBytes: number;
  /** Proportional set size: shared pages split between sharers, so sums over processes are honest. */
  pssBytes: number;
  /** Bytes this process (and the children it reaped) caused to be written to storage (/proc/<pid>/io). */
  diskWriteBytes: number;
}

/** Reads one process; undefined when it has gone. */
export function readProc(pid: number): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm is in parentheses and may contain spaces: split after the last ')'.
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const f = stat.slice(close + 2).split(' ');
    // f[0] is field 3 (state); field n is f[n - 3].
    const num = (field: number) => Number(f[field - 3] ?? 0);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) =>
      Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    return {
      pid,
      comm,
      ppid: num(4),
      cpuSeconds: (num(14) + num(15)) / CLK_TCK,
      childCpuSeconds: (num(16) + num(17)) / CLK_TCK,
      rssBytes: kb('VmRSS'),
      hwmBytes: kb('VmHWM'),
      pssBytes: pss(pid),
      diskWriteBytes: diskWrites(pid),
    };
  } catch {
    return undefined;
  }
}

function pss(pid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    return Number(/^Pss:\s+(\d+) kB/m.exec(text)?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/**
 * `write_bytes` of /proc/<pid>/io: bytes the process caused to be sent to the storage layer, accounted when a
 * page is dirtied (so before any fsync), including children it reaped (Postfix's master); 0 when unreadable.
 */
function diskWrites(pid: number): number {
  try {
    return Number(/^write_bytes:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Per-role resource use over one run. */
export interface RoleUsage {
  role: string;
  cpuSeconds: number;
  peakRssBytes: number;
  processes: number;
  /** Bytes written to storage during the run (page-cache dirtying, see diskWrites). */
  diskWriteBytes: number;
}

/**
 * Samples a changing set of processes (`discover` is called each tick: Postfix forks smtpd/cleanup/smtp on
 * demand) and keeps, per pid, the last counters seen. CPU per role is the delta from the first sample, so
 * start-up cost is excluded when `start()` is called just before the load.
 */
export class ProcSampler {
  private readonly discover: () => Map<number, string>;
  private readonly first = new Map<number, ProcSample>();
  private readonly last = new Map<number, ProcSample>();
  private readonly roleOf = new Map<number, string>();
  private readonly peakRssTotal = new Map<string, number>();
  private readonly seenAt = new Map<number, number>();
  private ticks = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Sum of PSS over all sampled processes, per tick: [ms since start, bytes]. */
  readonly rssTimeline: Array<[number, number]> = [];
  private t0 = 0;
  private initial = false;

  constructor(discover: () => Map<number, string>) {
    this.discover = discover;
  }

  start(intervalMs = 250): void {
    this.t0 = Date.now();
    this.initial = true;
    this.tick();
    this.initial = false;
    this.timer = setInterval(() => this.tick(), intervalMs);
  }

  tick(): void {
    this.ticks += 1;
    const roles = this.discover();
    const totals = new Map<string, number>();
    let sum = 0;
    for (const [pid, role] of roles) {
      const s = readProc(pid);
      if (!s) continue;
      this.roleOf.set(pid, role);
      // A process born after start() counts from zero (its whole life is in the run).
      if (!this.first.has(pid))
        this.first.set(
          pid,
          this.initial ? s : { ...s, cpuSeconds: 0, childCpuSeconds: 0, diskWriteBytes: 0 },
        );
      this.last.set(pid, s);
      this.seenAt.set(pid, this.ticks);
      totals.set(role, (totals.get(role) ?? 0) + s.pssBytes);
      sum += s.pssBytes;
    }
    for (const [role, bytes] of totals)
      this.peakRssTotal.set(role, Math.max(this.peakRssTotal.get(role) ?? 0, bytes));
    this.rssTimeline.push([Date.now() - this.t0, sum]);
  }

  /** Stops sampling (after one final tick) and summarises per role. */
  stop(): RoleUsage[] {
    this.tick();
    if (this.timer) clearInterval(this.timer);
    // A sampled child that exited during the run was counted by its own samples, and its parent's cutime/cstime
    // and /proc/<pid>/io then grew by its whole life when the parent reaped it (Postfix's master reaps cleanup,
    // smtp…): take what was already counted back out of the parent, so nothing counts twice.
    const reaped = new Map<number, { cpu: number; disk: number }>();
    for (const [pid, s] of this.last) {
      if (this.seenAt.get(pid) === this.ticks || !this.last.has(s.ppid)) continue;
      const r = reaped.get(s.ppid) ?? { cpu: 0, disk: 0 };
      r.cpu += s.cpuSeconds + s.childCpuSeconds;
      r.disk += s.diskWriteBytes;
      reaped.set(s.ppid, r);
    }
    const out = new Map<string, RoleUsage>();
    for (const [pid, lastSample] of this.last) {
      const role = this.roleOf.get(pid) ?? 'other';
      const firstSample = this.first.get(pid) ?? lastSample;
      const counted = reaped.get(pid) ?? { cpu: 0, disk: 0 };
      const u = out.get(role) ?? { role, cpuSeconds: 0, peakRssBytes: 0, processes: 0, diskWriteBytes: 0 };
      u.diskWriteBytes += Math.max(0, lastSample.diskWriteBytes - firstSample.diskWriteBytes - counted.disk);
      u.cpuSeconds +=
        lastSample.cpuSeconds -
        firstSample.cpuSeconds +
        Math.max(0, lastSample.childCpuSeconds - firstSample.childCpuSeconds - counted.cpu);
      // One process: the kernel's RSS high-water mark. Several processes of one role (Postfix's smtp
      // workers): the peak of their summed PSS, since summing RSS would count shared libraries N times.
      u.peakRssBytes = Math.max(u.peakRssBytes, lastSample.hwmBytes);
      u.processes += 1;
      out.set(role, u);
    }
    for (const u of out.values())
      if (u.processes > 1) u.peakRssBytes = this.peakRssTotal.get(u.role) ?? u.peakRssBytes;
    return [...out.values()].map((u) => ({ ...u, cpuSeconds: Math.round(u.cpuSeconds * 100) / 100 }));
  }
}
