/**
 * TLS-RPT aggregate reports (RFC 8460): parsing the `_smtp._tls.<domain>` TXT record, building the JSON report
 * (§4) from a period's session records, and wrapping it for delivery by mail (§5.3) or HTTPS (§5.4). Pure.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { TlsSessionRecord } from './sessions.ts';

/** RFC 8460 §5.3 / §6.4: the media type of a gzip-compressed report. */
export const TLSRPT_MEDIA_TYPE = 'application/tlsrpt+gzip';

/**
 * The `rua` URIs of a `_smtp._tls` TXT answer (§3): exactly one record starting with `v=TLSRPTv1`; fields
 * separated by `;`; `rua` a comma-separated list of `mailto:` / `https:` URIs. Anything else → [].
 */
export function parseTlsRptRecord(txt: string[][]): string[] {
  const records = txt.map((parts) => parts.join('')).filter((r) => /^v=TLSRPTv1\s*(;|$)/.test(r));
  if (records.length !== 1) return [];
  for (const field of records[0]!.split(';').slice(1)) {
    const m = /^\s*rua\s*=\s*(.+?)\s*$/.exec(field);
    if (m) {
      return m[1]!
        .split(',')
        .map((u) => u.trim())
        .filter((u) => /^(mailto:[^@\s]+@[^@\s]+|https:\/\/\S+)$/i.test(u));
    }
  }
  return [];
}

/** The report as JSON (RFC 8460 §4.4 field names). */
export interface TlsRptReport {
  'organization-name': string;
  'date-range': { 'start-datetime': string; 'end-datetime': string };
  'contact-info': string;
  'report-id': string;
  policies: {
    policy: {
      'policy-type': TlsSessionRecord['policyType'];
      'policy-string': string[];
      'policy-domain': string;
      'mx-host'?: string[];
    };
    summary: { 'total-successful-session-count': number; 'total-failure-session-count': number };
    'failure-details'?: {
      'result-type': string;
      'sending-mta-ip'?: string;
      'receiving-mx-hostname'?: string;
      'receiving-ip'?: string;
      'failed-session-count': number;
      'additional-information'?: string;
    }[];
  }[];
}

export interface ReportMeta {
  organization: string;
  contact: string;
  /** Report submitter: the sending MTA's domain (§5.3 subject, file name). */
  submitter: string;
  start: Date;
  end: Date;
}

/** RFC 3339 date-time without fractional seconds, as the RFC's examples write it. */
const rfc3339 = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

/** One report per policy domain from a period's records. */
export function buildReports(records: TlsSessionRecord[], meta: ReportMeta): Map<string, TlsRptReport> {
  const byDomain = new Map<string, TlsSessionRecord[]>();
  for (const r of records) {
    const list = byDomain.get(r.policyDomain) ?? [];
    list.push(r);
    byDomain.set(r.policyDomain, list);
  }
  const reports = new Map<string, TlsRptReport>();
  for (const [domain, list] of byDomain) {
    const policies = new Map<string, TlsRptReport['policies'][number]>();
    for (const r of list) {
      const key = JSON.stringify([r.policyType, r.policyString, r.mxHost]);
      let p = policies.get(key);
      if (!p) {
        p = {
          policy: {
            'policy-type': r.policyType,
            'policy-string': r.policyString,
            'policy-domain': domain,
            ...(r.mxHost.length ? { 'mx-host': r.mxHost } : {}),
          },
          summary: { 'total-successful-session-count': 0, 'total-failure-session-count': 0 },
        };
        policies.set(key, p);
      }
      if (r.result === 'success') {
        p.summary['total-successful-session-count']++;
        continue;
      }
      p.summary['total-failure-session-count']++;
      const details = p['failure-details'] ?? [];
      p['failure-details'] = details;
      const same = details.find(
        (d) =>
          d['result-type'] === r.result &&
          d['sending-mta-ip'] === r.sendingMtaIp &&
          d['receiving-mx-hostname'] === (r.receivingMxHostname || undefined) &&
          d['receiving-ip'] === r.receivingIp,
      );
      if (same) same['failed-session-count']++;
      else {
        details.push({
          'result-type': r.result,
          ...(r.sendingMtaIp ? { 'sending-mta-ip': r.sendingMtaIp } : {}),
          ...(r.receivingMxHostname ? { 'receiving-mx-hostname': r.receivingMxHostname } : {}),
          ...(r.receivingIp ? { 'receiving-ip': r.receivingIp } : {}),
          'failed-session-count': 1,
          ...(r.detail ? { 'additional-information': r.detail.slice(0, 500) } : {}),
        });
      }
    }
    const id = createHash('sha256')
      .update(`${meta.submitter}|${domain}|${meta.start.toISOString()}`)
      .digest('hex')
      .slice(0, 32);
    reports.set(domain, {
      'organization-name': meta.organization,
      'date-range': { 'start-datetime': rfc3339(meta.start), 'end-datetime': rfc3339(meta.end) },
      'contact-info': meta.contact,
      'report-id': `${rfc3339(meta.start)}_${domain}_${id}`,
      policies: [...policies.values()],
    });
  }
  return reports;
}

/** §5.1: `submitter!policy-domain!begin-timestamp!end-timestamp.json.gz` (seconds since the epoch). */
export function reportFileName(meta: ReportMeta, domain: string): string {
  const s = (d: Date) => Math.floor(d.getTime() / 1000);
  return `${meta.submitter}!${domain}!${s(meta.start)}!${s(meta.end)}.json.gz`;
}

export const gzipReport = (report: TlsRptReport): Buffer => gzipSync(JSON.stringify(report));

/** §5.3: the report as a message: multipart/report; report-type="tlsrpt", the gzip report attached. */
export function buildReportEmail(opts: {
  report: TlsRptReport;
  meta: ReportMeta;
  domain: string;
  from: string;
  to: string;
  messageId: string;
  now: Date;
}): string {
  const { report, meta, domain } = opts;
  const boundary = `=_tlsrpt_${createHash('sha256').update(opts.messageId).digest('hex').slice(0, 24)}`;
  const body = gzipReport(report).toString('base64').replace(/.{76}/g, '$&\r\n');
  const lines = [
    `From: ${opts.from}`,
    `To: ${opts.to}`,
    `Subject: Report Domain: ${domain} Submitter: ${meta.submitter} Report-ID: <${report['report-id']}>`,
    `Date: ${opts.now.toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <${opts.messageId}>`,
    `TLS-Report-Domain: ${domain}`,
    `TLS-Report-Submitter: ${meta.submitter}`,
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type="tlsrpt"; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    '',
    `This is an aggregate TLS report (RFC 8460) from ${meta.submitter} for ${domain},`,
    `covering ${report['date-range']['start-datetime']} to ${report['date-range']['end-datetime']}.`,
    '',
    `--${boundary}`,
    `Content-Type: ${TLSRPT_MEDIA_TYPE}`,
    'Content-Transfer-Encoding: base64',
    `Content-Disposition: attachment; filename="${reportFileName(meta, domain)}"`,
    '',
    body.replace(/\r\n$/, ''),
    `--${boundary}--`,
    '',
  ];
  return lines.join('\r\n');
}
