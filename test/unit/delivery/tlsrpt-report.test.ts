/** TLS-RPT (RFC 8460) record parsing and report building (services/delivery/tlsrpt/report.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import {
  buildReports,
  gzipReport,
  parseTlsRptRecord,
  reportFileName,
} from '../../../services/delivery/tlsrpt/report.ts';
import type { TlsSessionRecord } from '../../../services/delivery/tlsrpt/sessions.ts';

describe('_smtp._tls TXT record (RFC 8460 §3)', () => {
  it('reads mailto and https rua URIs', () => {
    assert.deepEqual(
      parseTlsRptRecord([['v=TLSRPTv1; rua=mailto:tls@example.com,https://r.example.com/v1']]),
      ['mailto:tls@example.com', 'https://r.example.com/v1'],
    );
  });
  it('joins the character-strings of one record', () => {
    assert.deepEqual(parseTlsRptRecord([['v=TLSRPTv1; rua=mailto:a@b.example', ',https://c.example/x']]), [
      'mailto:a@b.example',
      'https://c.example/x',
    ]);
  });
  it('ignores other TXT records, and refuses two TLSRPT records', () => {
    assert.deepEqual(parseTlsRptRecord([['v=spf1 -all'], ['v=TLSRPTv1;rua=mailto:a@b.example']]), [
      'mailto:a@b.example',
    ]);
    assert.deepEqual(
      parseTlsRptRecord([['v=TLSRPTv1;rua=mailto:a@b.example'], ['v=TLSRPTv1;rua=mailto:c@d.example']]),
      [],
    );
  });
  it('drops URIs of other schemes', () => {
    assert.deepEqual(parseTlsRptRecord([['v=TLSRPTv1; rua=http://insecure.example/,ftp://x']]), []);
  });
});

describe('aggregate report (RFC 8460 §4)', () => {
  const base = {
    at: '2024-04-01T10:00:00.000Z',
    policyDomain: 'company-y.example',
    policyType: 'sts' as const,
    policyString: ['version: STSv1', 'mode: enforce', 'mx: *.mail.company-y.example', 'max_age: 86400'],
    mxHost: ['*.mail.company-y.example'],
    receivingMxHostname: 'mx1.mail.company-y.example',
    receivingIp: '203.0.113.56',
    sendingMtaIp: '198.51.100.1',
  };
  const records: TlsSessionRecord[] = [
    { ...base, result: 'success' },
    { ...base, result: 'success' },
    { ...base, result: 'certificate-expired', detail: 'certificate has expired' },
    { ...base, result: 'certificate-expired', detail: 'certificate has expired' },
    { ...base, result: 'starttls-not-supported', receivingMxHostname: 'mx2.mail.company-y.example' },
  ];
  const meta = {
    organization: 'Company-X',
    contact: 'sts-reporting@company-x.example',
    submitter: 'company-x.example',
    start: new Date('2024-04-01T00:00:00Z'),
    end: new Date('2024-04-01T23:59:59Z'),
  };

  it('counts sessions per policy and groups failures by type and host', () => {
    const report = buildReports(records, meta).get('company-y.example')!;
    assert.equal(report['organization-name'], 'Company-X');
    assert.deepEqual(report['date-range'], {
      'start-datetime': '2024-04-01T00:00:00Z',
      'end-datetime': '2024-04-01T23:59:59Z',
    });
    assert.equal(report['contact-info'], 'sts-reporting@company-x.example');
    assert.equal(report.policies.length, 1);
    const [p] = report.policies;
    assert.deepEqual(p!.policy, {
      'policy-type': 'sts',
      'policy-string': base.policyString,
      'policy-domain': 'company-y.example',
      'mx-host': ['*.mail.company-y.example'],
    });
    assert.deepEqual(p!.summary, { 'total-successful-session-count': 2, 'total-failure-session-count': 3 });
    assert.deepEqual(
      p!['failure-details']!.map((d) => [
        d['result-type'],
        d['receiving-mx-hostname'],
        d['failed-session-count'],
      ]),
      [
        ['certificate-expired', 'mx1.mail.company-y.example', 2],
        ['starttls-not-supported', 'mx2.mail.company-y.example', 1],
      ],
    );
    assert.equal(JSON.parse(gunzipSync(gzipReport(report)).toString()).policies.length, 1);
  });

  it('names the file submitter!domain!begin!end.json.gz (§5.1)', () => {
    assert.equal(
      reportFileName(meta, 'company-y.example'),
      'company-x.example!company-y.example!1711929600!1712015999.json.gz',
    );
  });
});
