/**
 * `postern queue summary`: the queue's shape as a table like Postfix's qshape — one row per site, columns of
 * message counts by age in minutes (T = total), then pending recipients — followed by the oldest message and the
 * most frequent deferral reasons. The data comes from `GET /queue/summary` (services/queue/summary.ts).
 */
import type { QueueSummary, SiteShape } from '../queue/summary.ts';

function row(label: string, s: SiteShape, width: number): string {
  const cells = [s.messages, ...s.messagesByAge].map((n) => String(n).padStart(6));
  return `${label.padEnd(width)} ${cells.join('')} ${String(s.recipients).padStart(7)}`;
}

export function formatQueueSummary(s: QueueSummary): string {
  if (s.total.messages === 0) return `Mail queue is empty${s.status === 'all' ? '' : ` (${s.status})`}\n`;
  const labels = [
    'TOTAL',
    ...s.sites.map((x) => x.site),
    ...(s.other ? [`other (${s.other.sites} sites)`] : []),
  ];
  const width = Math.min(Math.max(...labels.map((l) => l.length), 4), 48);
  const header = `${''.padEnd(width)} ${['T', ...s.buckets].map((b) => b.padStart(6)).join('')} ${'rcpts'.padStart(7)}`;
  const lines = [
    `messages by site and age in minutes (${s.status === 'all' ? 'all pending' : s.status} jobs; site = smarthost or mailbox host:port, or recipient domain)`,
    header,
    row('TOTAL', s.total, width),
    ...s.sites.map((x) => row(x.site.slice(0, width), x, width)),
    ...(s.other ? [row(`other (${s.other.sites} sites)`.slice(0, width), s.other, width)] : []),
    '',
    `recipients: ${s.total.recipients} (active ${s.total.active}, deferred ${s.total.deferred}, held ${s.total.held})`,
  ];
  if (s.oldest) {
    lines.push(
      `oldest: ${s.oldest.id} received ${s.oldest.receivedAt} (${formatMinutes(s.oldest.ageSeconds)} ago) for ${s.oldest.sites.join(', ')}`,
    );
  }
  if (s.topReasons.length) {
    lines.push('', 'top deferral reasons (recipients, messages, sites):');
    for (const r of s.topReasons) {
      lines.push(
        `${String(r.recipients).padStart(7)} ${String(r.messages).padStart(6)}  ${r.reason}  [${r.sites.join(', ')}]`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

function formatMinutes(seconds: number): string {
  const m = Math.floor(seconds / 60);
  return m < 120 ? `${m} min` : `${Math.floor(m / 60)} h ${m % 60} min`;
}
