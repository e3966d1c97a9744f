/**
 * Summarises V8 .cpuprofile files written by `node --cpu-prof` (one per process; the pid is in the file
 * name): self time per function, top N per service, so the report can name the hot spots.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface CpuProfile {
  nodes: Array<{
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    hitCount?: number;
  }>;
  samples?: number[];
  timeDeltas?: number[];
  startTime: number;
  endTime: number;
}

/** Top self-time entries of one process. */
export interface ProfileSummary {
  role: string;
  pid: number;
  totalMs: number;
  top: Array<{ fn: string; where: string; selfMs: number; pct: number }>;
}

function shortUrl(url: string): string {
  const i = url.indexOf('node_modules/');
  if (i >= 0) return url.slice(i + 'node_modules/'.length);
  const s = url.indexOf('/services/');
  if (s >= 0) return url.slice(s + 1);
  return url.replace(/^file:\/\//, '') || '(native)';
}

export function summarise(file: string, topN = 12): { totalMs: number; top: ProfileSummary['top'] } {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++)
    self.set(samples[i]!, (self.get(samples[i]!) ?? 0) + (deltas[i] ?? 0) / 1000);
  const agg = new Map<string, { fn: string; where: string; selfMs: number }>();
  let total = 0;
  for (const [id, ms] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const fn = n.callFrame.functionName || '(anonymous)';
    const where = `${shortUrl(n.callFrame.url)}${n.callFrame.url ? `:${n.callFrame.lineNumber + 1}` : ''}`;
    const key = `${fn}@${where}`;
    const a = agg.get(key) ?? { fn, where, selfMs: 0 };
    a.selfMs += ms;
    agg.set(key, a);
    total += ms;
  }
  const busy = total - [...agg.values()].filter((a) => a.fn === '(idle)').reduce((s, a) => s + a.selfMs, 0);
  const top = [...agg.values()]
    .filter((a) => a.fn !== '(idle)')
    .sort((a, b) => b.selfMs - a.selfMs)
    .slice(0, topN)
    .map((a) => ({
      ...a,
      selfMs: Math.round(a.selfMs),
      pct: Math.round((a.selfMs / Math.max(1, busy)) * 1000) / 10,
    }));
  return { totalMs: Math.round(busy), top };
}

/** Every profile in `dir`, labelled with its role from local mode's pids.json. */
export function analyseProfiles(dir: string, pidsFile: string): ProfileSummary[] {
  if (!existsSync(dir)) return [];
  const pids = existsSync(pidsFile)
    ? (JSON.parse(readFileSync(pidsFile, 'utf8')) as Record<string, number>)
    : {};
  const roleOf = new Map(Object.entries(pids).map(([name, pid]) => [pid, name]));
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => {
      const pid = Number(f.split('.')[3]);
      return { role: roleOf.get(pid) ?? 'supervisor', pid, ...summarise(join(dir, f)) };
    })
    .sort((a, b) => b.totalMs - a.totalMs);
}
