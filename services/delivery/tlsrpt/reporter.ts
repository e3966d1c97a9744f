/**
 * The TLS-RPT reporter (RFC 8460 §5): after each report period (a UTC day by default; POSTERN_TLSRPT_PERIOD)
 * it aggregates the period's session records from the `TLSRPT` stream per policy domain, looks up the domain's
 * `_smtp._tls` TXT record and sends the gzip JSON report to every `rua`: `mailto:` by submitting a message into
 * Postern's own pipeline (SUBMIT, routed and retried like any mail, opportunistic TLS as §5.3 asks), `https:` by
 * POST (§5.4).
 *
 * Every delivery process runs one; exactly one of them sends each (domain, period) report: the right to send is
 * claimed with a KV create on `tlsrpt.<period start>.<domain>` (compare-and-set: the first creator wins).
 * A process that dies between claim and send loses that report (logged by nobody): reports are best effort,
 * like every MTA's.
 */

import type { LookupAddress } from 'node:dns';
import { request } from 'node:https';
import { isIP } from 'node:net';
import { DeliverPolicy, type JetStreamClient } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { attachedRef } from '../../common/body-wire.ts';
import { msgIds } from '../../common/msg-ids.ts';
import { subjectToken } from '../../common/nats.ts';
import { submitEnvelope } from '../../common/submit.ts';
import type { Logger } from '../../common/telemetry.ts';
import type { Envelope } from '../../common/types.ts';
import {
  buildReportEmail,
  buildReports,
  gzipReport,
  parseTlsRptRecord,
  type ReportMeta,
  TLSRPT_MEDIA_TYPE,
  type TlsRptReport,
} from './report.ts';
import { TLSRPT_STREAM, type TlsSessionRecord } from './sessions.ts';

export const TLSRPT_CLAIM_BUCKET = 'tlsrpt';

export interface ReporterOptions {
  nc: NatsConnection;
  js: JetStreamClient;
  periodMs: number;
  organization: string;
  contact: string;
  submitter: string;
  /** From: and envelope sender of mailed reports. */
  from: string;
  /** TXT lookup (`_smtp._tls.<domain>`), through the delivery resolver. */
  resolveTxt: (name: string) => Promise<string[][]>;
  /** Address of an https `rua` host, through the delivery resolver and its address rules. */
  resolveHost?: (name: string) => Promise<string>;
  log: Logger;
  replicas?: number;
}

export interface SentReport {
  domain: string;
  rua: string;
  ok: boolean;
  error?: string;
}

export interface TlsRptReporter {
  /** Reports the period that ended at `end` (aligned to the period); returns what this process sent. */
  runPeriod(end: Date): Promise<SentReport[]>;
  stop(): void;
}

/** The end of the last period that is closed at `now`, periods aligned to the epoch (UTC days for 1 d). */
export function lastClosedPeriodEnd(now: number, periodMs: number): number {
  return Math.floor(now / periodMs) * periodMs;
}

async function readPeriod(js: JetStreamClient, start: Date, end: Date): Promise<TlsSessionRecord[]> {
  const consumer = await js.consumers.get(TLSRPT_STREAM, {
    deliver_policy: DeliverPolicy.StartTime,
    opt_start_time: start.toISOString(),
  });
  const out: TlsSessionRecord[] = [];
  try {
    for (;;) {
      const m = await consumer.next({ expires: 2000 });
      if (!m) break;
      if (m.info.timestampNanos / 1e6 >= end.getTime()) break;
      const r = m.json<TlsSessionRecord>();
      const at = Date.parse(r.at);
      if (at >= start.getTime() && at < end.getTime()) out.push(r);
      if (m.info.pending === 0) break;
    }
  } finally {
    await consumer.delete().catch(() => undefined);
  }
  return out;
}

type LookupCallback = (err: Error | null, address: string | LookupAddress[], family?: number) => void;

function postReport(
  url: string,
  body: Buffer,
  resolveHost: ((name: string) => Promise<string>) | undefined,
  timeoutMs = 30_000,
): Promise<void> {
  // node:https would ask the system resolver; the rua host is resolved like every other name delivery uses.
  const lookup = resolveHost
    ? (name: string, options: { all?: boolean }, cb: LookupCallback) => {
        resolveHost(name).then(
          (address) => {
            const family = isIP(address);
            if (options.all) cb(null, [{ address, family }]);
            else cb(null, address, family);
          },
          (err: Error) => cb(err, ''),
        );
      }
    : undefined;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        headers: { 'content-type': TLSRPT_MEDIA_TYPE, 'content-length': body.length },
        timeout: timeoutMs,
        ...(lookup ? { lookup: lookup as never } : {}),
      },
      (res) => {
        res.resume();
        res.on('end', () =>
          (res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300
            ? resolve()
            : reject(new Error(`HTTP ${res.statusCode}`)),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

export async function startTlsRptReporter(opts: ReporterOptions): Promise<TlsRptReporter> {
  const { js, log } = opts;
  const claims: KV = await new Kvm(opts.nc).create(TLSRPT_CLAIM_BUCKET, {
    history: 1,
    replicas: opts.replicas ?? 1,
    ttl: Math.max(7 * 86_400_000, 4 * opts.periodMs),
  });

  const send = async (domain: string, report: TlsRptReport, meta: ReportMeta, rua: string) => {
    if (rua.startsWith('https:')) {
      await postReport(rua, gzipReport(report), opts.resolveHost);
      return;
    }
    const to = decodeURIComponent(rua.slice('mailto:'.length).split('?')[0]!);
    const id = `tlsrpt-${subjectToken(report['report-id']).slice(0, 80)}-${subjectToken(to).slice(0, 40)}`;
    const now = new Date();
    const raw = Buffer.from(
      buildReportEmail({
        report,
        meta,
        domain,
        from: opts.from,
        to,
        messageId: `${id}@${opts.submitter}`,
        now,
      }),
    );
    const envelope: Envelope = {
      id,
      from: opts.from,
      to: [to],
      receivedAt: now.toISOString(),
      client: { address: '127.0.0.1', helo: opts.submitter, tls: false },
      size: raw.length,
      body: attachedRef(raw),
      kind: 'mail',
    };
    // Through the pipeline like any accepted message: durable once acked, routed, DKIM-signed when the From
    // domain has a key, retried; Nats-Msg-Id = id so a repeated run inside the duplicate window is stored once.
    await submitEnvelope(js, envelope, msgIds.tlsReport(id), raw);
  };

  const runPeriod = async (end: Date): Promise<SentReport[]> => {
    const start = new Date(end.getTime() - opts.periodMs);
    const records = await readPeriod(js, start, end);
    // §4.4's example ends a day at 23:59:59Z: the range is inclusive.
    const meta: ReportMeta = {
      organization: opts.organization,
      contact: opts.contact,
      submitter: opts.submitter,
      start,
      end: new Date(end.getTime() - 1000),
    };
    const sent: SentReport[] = [];
    for (const [domain, report] of buildReports(records, meta)) {
      const key = `${Math.floor(start.getTime() / 1000)}.${subjectToken(domain)}`;
      try {
        await claims.create(key, JSON.stringify({ claimedAt: new Date().toISOString() }));
      } catch {
        continue; // another process reports this domain for this period
      }
      let ruas: string[] = [];
      try {
        ruas = parseTlsRptRecord(await opts.resolveTxt(`_smtp._tls.${domain}`));
      } catch (err) {
        log.debug({ domain, err: (err as Error).message }, 'no TLS-RPT record');
      }
      for (const rua of ruas) {
        try {
          await send(domain, report, meta, rua);
          sent.push({ domain, rua, ok: true });
        } catch (err) {
          sent.push({ domain, rua, ok: false, error: (err as Error).message });
        }
      }
      log.info({ domain, reportId: report['report-id'], sent }, 'TLS-RPT report');
    }
    return sent;
  };

  // Run a little after each period closes so records of sessions that ended at the boundary are in.
  const graceMs = Math.min(30_000, Math.floor(opts.periodMs / 4));
  let lastDone = lastClosedPeriodEnd(Date.now(), opts.periodMs);
  let running = false;
  const timer = setInterval(
    () => {
      const end = lastClosedPeriodEnd(Date.now() - graceMs, opts.periodMs);
      if (end <= lastDone || running) return;
      running = true;
      runPeriod(new Date(end))
        .then(() => {
          lastDone = end;
        })
        .catch((err: Error) => log.error({ err: err.message }, 'TLS-RPT report run failed; retrying'))
        .finally(() => {
          running = false;
        });
    },
    Math.max(250, Math.min(60_000, Math.floor(opts.periodMs / 8))),
  );
  timer.unref();
  return { runPeriod, stop: () => clearInterval(timer) };
}
