/**
 * The content-filter hook at end of DATA: the message goes to rspamd (rspamd-client.ts) before it is queued;
 * its verdict refuses the message or edits its headers (content-verdict.ts). When rspamd does not answer in
 * time, `failMode` decides: open → accepted unscanned (logged, counted), closed → `451 4.3.0`.
 */
import { performance } from 'node:perf_hooks';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { SMTPServerSession } from 'smtp-server';
import type { Logger } from '../common/telemetry.ts';
import { actionLabel, applyEdits, verdictOf } from './content-verdict.ts';
import type { ContentFilterSettings } from './filter-settings.ts';
import { REPLIES, type SmtpReply } from './replies.ts';
import { type RspamdResult, ScanError, type ScanRequest, scanMessage } from './rspamd-client.ts';

export type FilterOutcome =
  | { kind: 'accept'; body: Buffer }
  | { kind: 'refuse'; reply: SmtpReply; action: string; score?: number };

interface FilterMetrics {
  verdicts: Counter<'listener' | 'action'>;
  duration: Histogram<'listener'>;
  errors: Counter<'reason'>;
}

function createMetrics(registry: Registry): FilterMetrics {
  return {
    verdicts: new Counter({
      name: 'postern_content_filter_verdicts_total',
      help: 'Content filter outcomes at end of DATA: the rspamd action, or failed_open / failed_closed / too_big',
      labelNames: ['listener', 'action'],
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'postern_content_filter_duration_seconds',
      help: 'Time rspamd took to answer a scan (failures included)',
      labelNames: ['listener'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    errors: new Counter({
      name: 'postern_content_filter_errors_total',
      help: 'Scans without a verdict, by reason (timeout, unreachable, bad-reply)',
      labelNames: ['reason'],
      registers: [registry],
    }),
  };
}

/** What rspamd is told about the transaction: the envelope, client, HELO, AUTH user and TLS of the session. */
export function scanRequest(
  session: SMTPServerSession,
  id: string,
  user: string | undefined,
  body: Buffer,
): ScanRequest {
  const tls = session.tlsOptions;
  return {
    id,
    from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
    to: session.envelope.rcptTo.map((r) => r.address),
    clientAddress: session.remoteAddress,
    helo: session.hostNameAppearsAs || '',
    ...(user ? { user } : {}),
    ...(tls ? { tls: { version: tls.version, cipher: tls.name } } : {}),
    body,
  };
}

export class ContentFilter {
  readonly #settings: ContentFilterSettings;
  readonly #metrics: FilterMetrics;
  readonly #log: Logger;

  constructor(settings: ContentFilterSettings, deps: { registry: Registry; logger: Logger }) {
    this.#settings = settings;
    this.#metrics = createMetrics(deps.registry);
    this.#log = deps.logger.child({ check: 'content-filter' });
  }

  /** Scans `req.body` (the message as it will be queued); never rejects. */
  async check(listener: string, req: ScanRequest): Promise<FilterOutcome> {
    const label = { listener };
    const fields = { msgId: req.id, client: req.clientAddress };
    if (req.body.length > this.#settings.maxSize) {
      this.#metrics.verdicts.inc({ ...label, action: 'too_big' });
      this.#log.info(
        { ...fields, size: req.body.length },
        'not scanned: larger than the content filter maximum',
      );
      return { kind: 'accept', body: req.body };
    }
    const started = performance.now();
    let result: RspamdResult;
    try {
      result = await scanMessage(this.#settings.url, req, this.#settings.timeoutMs);
    } catch (err) {
      const reason = err instanceof ScanError ? err.reason : 'unreachable';
      this.#metrics.errors.inc({ reason });
      this.#metrics.duration.observe(label, (performance.now() - started) / 1000);
      const closed = this.#settings.failMode === 'closed';
      this.#metrics.verdicts.inc({ ...label, action: closed ? 'failed_closed' : 'failed_open' });
      this.#log.warn(
        { ...fields, reason, err: (err as Error).message, failMode: this.#settings.failMode },
        closed ? 'content filter failed: answered 451' : 'content filter failed: accepted unscanned',
      );
      return closed
        ? { kind: 'refuse', reply: REPLIES.contentFilterUnavailable, action: 'failed_closed' }
        : { kind: 'accept', body: req.body };
    }
    this.#metrics.duration.observe(label, (performance.now() - started) / 1000);
    this.#metrics.verdicts.inc({ ...label, action: actionLabel(result.action) });
    const verdict = verdictOf(result);
    const logged = { ...fields, action: result.action, score: result.score };
    if (actionLabel(result.action) === 'other') this.#log.warn(logged, 'unknown rspamd action: accepted');
    if (verdict.kind === 'refuse')
      return { kind: 'refuse', reply: verdict.reply, action: verdict.action, score: result.score };
    if (verdict.action !== 'no action') this.#log.info(logged, 'content filter: accepted with spam headers');
    return { kind: 'accept', body: applyEdits(req.body, verdict.edits) };
  }
}
