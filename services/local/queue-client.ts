/**
 * `postern queue …`: the operator's view of the queue (like postqueue -p / postsuper), over the queue
 * service's admin HTTP API. Prints JSON for `show` and a table for `list`; exits non-zero with a clear message
 * when the API cannot be reached or the message is not queued.
 */
interface QueueEntry {
  id: string;
  from: string;
  ageSeconds: number;
  jobs: {
    status: string;
    attempt: number;
    destination: string;
    recipients: string[];
    nextAttemptAt?: string;
  }[];
}

import type { QueueSummary } from '../queue/summary.ts';
import { formatQueueSummary } from './queue-summary-format.ts';

export class QueueClientError extends Error {}

/** One request to the queue admin API (`json`: the request body); its error text (or the HTTP status) becomes a QueueClientError. */
export async function callAdmin(
  base: string,
  method: string,
  path: string,
  json?: unknown,
): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(
      new URL(path, base),
      json === undefined
        ? { method }
        : { method, body: JSON.stringify(json), headers: { 'content-type': 'application/json' } },
    );
  } catch (err) {
    throw new QueueClientError(`cannot reach the queue admin API at ${base}: ${(err as Error).message}`);
  }
  const body = (await res.json().catch(() => ({}))) as { error?: string };
  if (!res.ok) throw new QueueClientError(body.error ?? `${method} ${path}: HTTP ${res.status}`);
  return body;
}

/** Formats the queue like `postqueue -p`: one block per message, recipients under it. */
export function formatQueue(entries: QueueEntry[]): string {
  if (!entries.length) return 'Mail queue is empty\n';
  const lines = entries.flatMap((e) => [
    `${e.id}  ${formatAge(e.ageSeconds).padStart(6)}  <${e.from}>`,
    ...e.jobs.flatMap((j) =>
      j.recipients.map(
        (r) =>
          `    ${r}  [${j.status}, attempt ${j.attempt} via ${j.destination}${j.nextAttemptAt ? `, next ${j.nextAttemptAt}` : ''}]`,
      ),
    ),
  ]);
  return `${lines.join('\n')}\n-- ${entries.length} message(s)\n`;
}

function formatAge(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86_400)}d`;
}

/** Runs one queue sub-command against the admin API at `base` and returns what to print. */
export async function queueCommand(
  base: string,
  action: string,
  arg: string | undefined,
  filter: { from?: string; domain?: string; status?: string; json?: boolean },
): Promise<string> {
  const needId = () => {
    if (!arg) throw new QueueClientError(`queue ${action} needs a message id`);
    return encodeURIComponent(arg);
  };
  switch (action) {
    case 'list': {
      const q = new URLSearchParams(Object.entries(filter).filter(([, v]) => v) as [string, string][]);
      return formatQueue((await callAdmin(base, 'GET', `/queue?${q}`)) as QueueEntry[]);
    }
    case 'summary': {
      const q = new URLSearchParams(filter.status ? { status: filter.status } : {});
      const summary = (await callAdmin(base, 'GET', `/queue/summary?${q}`)) as QueueSummary;
      return filter.json ? `${JSON.stringify(summary, null, 2)}\n` : formatQueueSummary(summary);
    }
    case 'show':
      return `${JSON.stringify(await callAdmin(base, 'GET', `/queue/${needId()}`), null, 2)}\n`;
    case 'delete':
      await callAdmin(base, 'DELETE', `/queue/${needId()}`);
      return `deleted ${arg}\n`;
    case 'retry': {
      const r = (await callAdmin(base, 'POST', `/queue/${needId()}/retry`)) as { retried: unknown };
      return `retrying ${arg}: ${JSON.stringify(r.retried)}\n`;
    }
    case 'hold': {
      const r = (await callAdmin(base, 'POST', `/queue/${needId()}/hold`)) as { held: unknown };
      return `on hold ${arg}: ${JSON.stringify(r.held)}\n`;
    }
    case 'release': {
      const r = (await callAdmin(base, 'POST', `/queue/${needId()}/release`)) as { released: unknown };
      return `released ${arg}: ${JSON.stringify(r.released)}\n`;
    }
    default:
      throw new QueueClientError(
        `unknown queue action "${action}" (list, summary, show, delete, retry, hold, release)`,
      );
  }
}
