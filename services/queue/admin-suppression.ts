/**
 * The suppression list over the queue admin API (admin.ts):
 *   GET    /suppression[?domain=&limit=]   entries in force (address, reason, detail, response, created, expiry)
 *   GET    /suppression/:address           one entry, 404 when the address is not suppressed
 *   POST   /suppression                    add or replace entries: {"entries":[{address, reason?, note?, expires?}]}
 *                                          → {"added": n, "errors": [{"index", "error"}]}; nothing is written
 *                                          when any entry is invalid (the caller fixes its input and resends)
 *   DELETE /suppression/:address           remove, 404 when not suppressed
 * `expires` is a duration (`30d`) or an ISO date; default and ceiling: the bucket's max age (30 days).
 */
import type { IncomingMessage } from 'node:http';
import { parseDuration } from '../common/durations.ts';
import { SUPPRESSION_MAX_AGE_MS } from '../common/nats.ts';
import { SUPPRESSION_REASONS, type SuppressionReason } from '../common/suppression.ts';
import { checkMailbox } from '../ingress/address-syntax.ts';
import type { QueueContext } from './context.ts';

export interface AdminReply {
  status: number;
  body: unknown;
}

/** One entry to add, as the CLI's CSV import and `suppression add` send it. */
export interface SuppressionInput {
  address: string;
  reason?: string;
  note?: string;
  expires?: string;
}

const MAX_BODY = 16 * 1024 * 1024;

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new BadRequest(`request body over ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new BadRequest('request body is not JSON');
  }
}

class BadRequest extends Error {}

/** The time-to-live an input asks for, or the reason it cannot be used. */
export function ttlOf(expires: string | undefined, now = Date.now()): number | string {
  if (!expires) return SUPPRESSION_MAX_AGE_MS;
  let ms: number;
  if (/^\d+(ms|s|m|h|d)/.test(expires)) {
    try {
      ms = parseDuration(expires);
    } catch (err) {
      return (err as Error).message;
    }
  } else {
    const at = Date.parse(expires);
    if (Number.isNaN(at)) return `expires "${expires}" is neither a duration (30d) nor a date (2026-12-31)`;
    ms = at - now;
  }
  if (ms <= 0) return `expires "${expires}" is not in the future`;
  if (ms > SUPPRESSION_MAX_AGE_MS)
    return `expires "${expires}" is beyond 30 days, the suppression bucket's max age`;
  return ms;
}

/** Validates one input; the problem as text, or the entry to write. */
export function checkInput(
  input: SuppressionInput,
): string | { address: string; reason: SuppressionReason; note?: string; ttlMs: number } {
  if (typeof input?.address !== 'string') return 'address is missing';
  const address = input.address.trim();
  const verdict = checkMailbox(address);
  if (!verdict.ok) return `"${address}" is not an email address (${verdict.reason})`;
  const reason = (input.reason?.trim() || 'manual') as SuppressionReason;
  if (!SUPPRESSION_REASONS.includes(reason))
    return `reason "${input.reason}" is not one of ${SUPPRESSION_REASONS.join(', ')}`;
  const ttl = ttlOf(input.expires?.trim());
  if (typeof ttl === 'string') return ttl;
  return { address, reason, ...(input.note?.trim() ? { note: input.note.trim() } : {}), ttlMs: ttl };
}

export async function handleSuppression(
  ctx: QueueContext,
  req: IncomingMessage,
  url: URL,
  parts: string[],
): Promise<AdminReply> {
  const address = parts[1];
  try {
    if (parts.length > 2) return { status: 404, body: { error: 'not found' } };
    if (!address && req.method === 'GET') {
      const limit = Math.min(
        Math.max(Number(url.searchParams.get('limit') ?? 10_000) || 10_000, 1),
        1_000_000,
      );
      const domain = url.searchParams.get('domain') ?? undefined;
      return { status: 200, body: await ctx.suppression.list({ limit, ...(domain ? { domain } : {}) }) };
    }
    if (!address && req.method === 'POST') {
      const body = (await readJson(req)) as { entries?: SuppressionInput[] };
      if (!Array.isArray(body?.entries)) throw new BadRequest('body needs "entries": [...]');
      const checked = body.entries.map(checkInput);
      const errors = checked.flatMap((c, index) => (typeof c === 'string' ? [{ index, error: c }] : []));
      if (errors.length) return { status: 400, body: { error: `${errors.length} invalid entries`, errors } };
      for (const c of checked) {
        if (typeof c === 'string') continue;
        await ctx.suppression.put(
          { address: c.address, reason: c.reason, ...(c.note ? { detail: c.note } : {}) },
          c.ttlMs,
        );
      }
      ctx.log.info({ entries: checked.length }, 'suppression entries added by operator');
      return { status: 200, body: { added: checked.length, errors: [] } };
    }
    if (address && req.method === 'GET') {
      const entry = await ctx.suppression.lookup(address);
      return entry
        ? { status: 200, body: entry }
        : { status: 404, body: { error: `${address} is not suppressed` } };
    }
    if (address && req.method === 'DELETE') {
      const removed = await ctx.suppression.remove(address);
      if (removed) ctx.log.info({ address }, 'suppression removed by operator');
      return removed
        ? { status: 200, body: { removed: address } }
        : { status: 404, body: { error: `${address} is not suppressed` } };
    }
    return { status: 405, body: { error: 'method not allowed' } };
  } catch (err) {
    if (err instanceof BadRequest) return { status: 400, body: { error: err.message } };
    throw err;
  }
}
