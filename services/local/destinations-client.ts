/**
 * `postern destinations list|suspend|resume`: the cluster-wide state of delivery sites over the queue admin API
 * (services/queue/admin-sites.ts). `list` prints a table (`--json` for the raw records).
 */
import { callAdmin, QueueClientError } from './queue-client.ts';

interface SiteView {
  site: string;
  domains: string[];
  status: string;
  limits?: Record<string, number>;
  limitSource?: string[];
  connections?: number;
  ratePerMinute?: number;
  throttle?: { ratePerMinute?: number; maxConnections?: number; until: string; by: string };
  suspendedUntil?: string;
  suspendedBy?: string;
  lastReply?: string;
}

const LIMIT_NAMES: Record<string, string> = {
  maxConnections: 'conn',
  messagesPerConnection: 'msg/conn',
  ratePerMinute: 'msg/min',
  connectionsPerMinute: 'conn/min',
};

/** One block per site, like `postqueue -p`: the site line, then what holds there now. */
export function formatSites(sites: SiteView[]): string {
  if (!sites.length) return 'No sites seen yet\n';
  const lines = sites.flatMap((s) => {
    const limits = Object.entries(s.limits ?? {})
      .map(([k, v]) => `${LIMIT_NAMES[k] ?? k}=${v}`)
      .join(' ');
    const state =
      s.status === 'suspended'
        ? `suspended until ${s.suspendedUntil} (${s.suspendedBy})`
        : s.status === 'throttled' && s.throttle
          ? `throttled until ${s.throttle.until} (${s.throttle.by}: ${[
              s.throttle.ratePerMinute ? `msg/min≤${s.throttle.ratePerMinute}` : '',
              s.throttle.maxConnections ? `conn≤${s.throttle.maxConnections}` : '',
            ]
              .filter(Boolean)
              .join(' ')})`
          : 'normal';
    return [
      `${s.site}  [${state}]`,
      `    domains: ${s.domains.join(', ') || '-'}`,
      `    limits: ${limits || 'none'}${s.limitSource?.length ? ` (${s.limitSource.join(', ')})` : ''}`,
      `    now: ${s.connections ?? '-'} connection(s), ${s.ratePerMinute ?? '-'} msg/min`,
      ...(s.lastReply ? [`    last reply: ${s.lastReply}`] : []),
    ];
  });
  return `${lines.join('\n')}\n-- ${sites.length} site(s)\n`;
}

export async function destinationsCommand(
  base: string,
  action: string,
  site: string | undefined,
  opts: { for?: string; json?: boolean },
): Promise<string> {
  const need = () => {
    if (!site) throw new QueueClientError(`destinations ${action} needs a site (name or recipient domain)`);
    return encodeURIComponent(site);
  };
  switch (action) {
    case 'list': {
      const sites = (await callAdmin(base, 'GET', '/sites')) as SiteView[];
      return opts.json ? `${JSON.stringify(sites, null, 2)}\n` : formatSites(sites);
    }
    case 'suspend': {
      const q = opts.for ? `?for=${encodeURIComponent(opts.for)}` : '';
      const r = (await callAdmin(base, 'POST', `/sites/${need()}/suspend${q}`)) as {
        suspended: string;
        until: string;
      };
      return `suspended ${r.suspended} until ${r.until}\n`;
    }
    case 'resume': {
      const r = (await callAdmin(base, 'POST', `/sites/${need()}/resume`)) as {
        resumed: string;
        changed: boolean;
      };
      return r.changed ? `resumed ${r.resumed}\n` : `${r.resumed} was neither suspended nor throttled\n`;
    }
    default:
      throw new QueueClientError(`unknown destinations action "${action}" (list, suspend, resume)`);
  }
}
