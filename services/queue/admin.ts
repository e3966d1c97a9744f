/**
 * The queue admin HTTP API (JSON):
 *   GET    /queue[?from=&domain=&limit=]  list queued messages
 *   GET    /queue/summary[?status=&top=]  the queue's shape by site and age (admin-summary.ts)
 *   GET    /queue/:id                     one message with its jobs and final recipients
 *   DELETE /queue/:id                     drop it (pending jobs final, schedules purged, body deleted)
 *   POST   /queue/:id/retry               publish its deferred jobs now
 *   POST   /queue/:id/hold                put it on hold (no further attempts until released)
 *   POST   /queue/:id/release             release a held message (attempted at once)
 *   GET    /sites, POST /sites/:site/suspend|resume   site state (admin-sites.ts)
 *   GET|POST /suppression, GET|DELETE /suppression/:address   the suppression list (admin-suppression.ts)
 * Binds where POSTERN_ADMIN_HOST/PORT say (loopback by default): it has no authentication of its own.
 */
import { createServer, type ServerResponse } from 'node:http';
import { dropMessage, getQueued, holdMessage, listQueue, releaseMessage, retryNow } from './admin-actions.ts';
import { handleSites } from './admin-sites.ts';
import { queueSummary, SummaryRequestError } from './admin-summary.ts';
import { handleSuppression } from './admin-suppression.ts';
import type { QueueContext } from './context.ts';

export interface AdminServer {
  port: number;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: unknown) {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.end(`${JSON.stringify(body)}\n`);
}

export async function startAdminServer(ctx: QueueContext, host: string, port: number): Promise<AdminServer> {
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    try {
      if (parts[0] === 'sites') {
        const r = await handleSites(ctx.js, req, url, parts);
        return send(res, r.status, r.body);
      }
      if (parts[0] === 'suppression') {
        const r = await handleSuppression(ctx, req, url, parts);
        return send(res, r.status, r.body);
      }
      if (parts[0] !== 'queue' || parts.length > 3) return send(res, 404, { error: 'not found' });
      const id = parts[1];
      // Message ids are ULIDs (upper-case base32), so the literal "summary" cannot be one.
      if (id === 'summary' && parts.length === 2 && req.method === 'GET') {
        return send(res, 200, await queueSummary(ctx, url.searchParams));
      }
      if (!id && req.method === 'GET') {
        const limit = Math.min(Math.max(Number(url.searchParams.get('limit') ?? 1000) || 1000, 1), 10_000);
        const from = url.searchParams.get('from') ?? undefined;
        const domain = url.searchParams.get('domain') ?? undefined;
        return send(
          res,
          200,
          await listQueue(ctx, { limit, ...(from ? { from } : {}), ...(domain ? { domain } : {}) }),
        );
      }
      if (id && parts.length === 2 && req.method === 'GET') {
        const entry = await getQueued(ctx, id);
        return entry ? send(res, 200, entry) : send(res, 404, { error: `message ${id} not queued` });
      }
      if (id && parts.length === 2 && req.method === 'DELETE') {
        return (await dropMessage(ctx, id))
          ? send(res, 200, { dropped: id })
          : send(res, 404, { error: `message ${id} not queued` });
      }
      if (id && parts[2] === 'retry' && req.method === 'POST') {
        const jobs = await retryNow(ctx, id);
        return jobs
          ? send(res, 200, { retried: jobs })
          : send(res, 404, { error: `message ${id} not queued` });
      }
      if (id && parts[2] === 'hold' && req.method === 'POST') {
        const jobs = await holdMessage(ctx, id);
        return jobs ? send(res, 200, { held: jobs }) : send(res, 404, { error: `message ${id} not queued` });
      }
      if (id && parts[2] === 'release' && req.method === 'POST') {
        const jobs = await releaseMessage(ctx, id);
        return jobs
          ? send(res, 200, { released: jobs })
          : send(res, 404, { error: `message ${id} not queued` });
      }
      return send(res, 405, { error: 'method not allowed' });
    } catch (err) {
      if (err instanceof SummaryRequestError) return send(res, 400, { error: err.message });
      ctx.log.error({ messageId: parts[1], err: (err as Error).message }, 'admin request failed');
      return send(res, 500, { error: (err as Error).message });
    }
  });
  await new Promise<void>((r) => server.listen(port, host, r));
  const bound = (server.address() as { port: number }).port;
  return { port: bound, close: () => new Promise((r) => server.close(() => r())) };
}
