/**
 * TLS-RPT (RFC 8460) end to end at the delivery tier: MTA-STS sessions that succeed and fail are recorded, and
 * after a (shortened) report period the aggregate report goes to each domain's `rua`: an HTTPS collector on
 * loopback (POST, application/tlsrpt+gzip) and a mailto: address (a message submitted into Postern's own
 * pipeline, read here from SUBMIT). The report bodies are checked against the RFC's JSON fields.
 */

import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { STREAMS } from '../../../services/common/nats.ts';
import type { Route } from '../../../services/common/types.ts';
import type { TlsRptReport } from '../../../services/delivery/tlsrpt/report.ts';
import { bodyText, type SeenEnvelope, seenEnvelope } from '../../helpers/bodies.ts';
import { startTestDns, type TestDns } from '../../helpers/dns.ts';
import { freePort, type SmtpSink, startSmtpSink } from '../../helpers/smtp-sink.ts';
import { createTestCa, type TestCa } from '../../helpers/test-ca.ts';
import { type Harness, makeJob, startHarness } from './harness.ts';

const WEB = '127.0.0.31';
const mx = (domain: string): Route => ({ kind: 'mx', domain, tls: 'mta-sts' });

/** The RFC 8460 §4.4 fields every report must carry, with their types. */
function assertReportShape(r: TlsRptReport) {
  assert.equal(typeof r['organization-name'], 'string');
  assert.match(r['date-range']['start-datetime'], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.match(r['date-range']['end-datetime'], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal(typeof r['contact-info'], 'string');
  assert.equal(typeof r['report-id'], 'string');
  assert.ok(Array.isArray(r.policies) && r.policies.length > 0);
  for (const p of r.policies) {
    assert.ok(['sts', 'tlsa', 'no-policy-found'].includes(p.policy['policy-type']));
    assert.ok(Array.isArray(p.policy['policy-string']));
    assert.equal(typeof p.policy['policy-domain'], 'string');
    assert.equal(typeof p.summary['total-successful-session-count'], 'number');
    assert.equal(typeof p.summary['total-failure-session-count'], 'number');
    for (const f of p['failure-details'] ?? []) {
      assert.equal(typeof f['result-type'], 'string');
      assert.equal(typeof f['failed-session-count'], 'number');
    }
  }
}

describe('TLS-RPT aggregate reports (RFC 8460)', () => {
  let h: Harness;
  let dns: TestDns;
  let ca: TestCa;
  let web: Server;
  const posted: { contentType: string; report: TlsRptReport }[] = [];
  let onPost: () => void = () => {};
  const sinks: SmtpSink[] = [];

  before(async () => {
    ca = createTestCa();
    const port = await freePort('127.0.0.32');
    sinks.push(
      await startSmtpSink({ host: '127.0.0.32', port, tls: ca.issue(['mx.rpt-ok.test']) }),
      await startSmtpSink({ host: '127.0.0.33', port, tls: ca.selfSigned(['mx.rpt-bad.test']) }),
    );
    // One HTTPS server plays both policy hosts and the report collector.
    const policy = (name: string) => `version: STSv1\nmode: enforce\nmx: ${name}\nmax_age: 600\n`;
    web = createServer(
      { ...ca.issue(['mta-sts.rpt-ok.test', 'mta-sts.rpt-bad.test', 'reports.rpt-ok.test']) },
      (req, res) => {
        const host = String(req.headers.host ?? '');
        if (req.method === 'POST') {
          const chunks: Buffer[] = [];
          req.on('data', (c: Buffer) => chunks.push(c));
          req.on('end', () => {
            posted.push({
              contentType: String(req.headers['content-type']),
              report: JSON.parse(gunzipSync(Buffer.concat(chunks)).toString('utf8')) as TlsRptReport,
            });
            res.writeHead(201).end();
            onPost();
          });
          return;
        }
        const body = host === 'mta-sts.rpt-ok.test' ? policy('mx.rpt-ok.test') : policy('mx.rpt-bad.test');
        res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
      },
    );
    await new Promise<void>((resolve) => web.listen(443, WEB, resolve));
    dns = await startTestDns({
      mx: [
        { domain: 'rpt-ok.test', exchange: 'mx.rpt-ok.test', priority: 10 },
        { domain: 'rpt-bad.test', exchange: 'mx.rpt-bad.test', priority: 10 },
      ],
      a: [
        { name: 'mx.rpt-ok.test', address: '127.0.0.32' },
        { name: 'mx.rpt-bad.test', address: '127.0.0.33' },
        { name: 'mta-sts.rpt-ok.test', address: WEB },
        { name: 'mta-sts.rpt-bad.test', address: WEB },
        { name: 'reports.rpt-ok.test', address: WEB },
      ],
      txt: [
        { name: '_mta-sts.rpt-ok.test', text: 'v=STSv1; id=1' },
        { name: '_mta-sts.rpt-bad.test', text: 'v=STSv1; id=1' },
        { name: '_smtp._tls.rpt-ok.test', text: 'v=TLSRPTv1; rua=https://reports.rpt-ok.test/v1/tlsrpt' },
        { name: '_smtp._tls.rpt-bad.test', text: 'v=TLSRPTv1; rua=mailto:tls-reports@rpt-bad.test' },
      ],
    });
    h = await startHarness();
    await h.startWorker({
      dnsServers: [dns.server],
      mxPort: port,
      allowLoopbackMx: true,
      tlsCaFile: ca.caFile,
      tlsRpt: {
        enabled: true,
        periodMs: 2000,
        organization: 'Postern Test',
        contact: 'postmaster@postern.test',
        submitter: 'postern.test',
        from: 'tlsrpt@postern.test',
      },
    });
  });

  after(async () => {
    await h?.close();
    await dns?.close();
    await new Promise((resolve) => web?.close(resolve));
    for (const s of sinks) await s.close();
    ca?.close();
  });

  it('counts successful and failed sessions per policy domain and sends the reports to https and mailto rua', async () => {
    const ok1 = await h.deliver(makeJob(mx('rpt-ok.test'), ['a@rpt-ok.test']));
    const bad = await h.deliver(makeJob(mx('rpt-bad.test'), ['a@rpt-bad.test']));
    const ok2 = await h.deliver(makeJob(mx('rpt-ok.test'), ['b@rpt-ok.test']));
    assert.deepEqual(
      [ok1, bad, ok2].map((r) => r.outcomes[0]!.status),
      ['delivered', 'deferred', 'delivered'],
    );

    // HTTPS rua: reports arrive after their period closes (bounded wait, no timing assertion). RFC 8460 counts
    // sessions, not messages: the two messages may share one pooled session.
    const okSessions = () =>
      posted
        .flatMap((p) => p.report.policies)
        .reduce((n, p) => n + p.summary['total-successful-session-count'], 0);
    const deadline = Date.now() + 30_000;
    while (okSessions() < 1) {
      assert.ok(Date.now() < deadline, `reports posted so far: ${JSON.stringify(posted)}`);
      await new Promise<void>((resolve) => {
        onPost = resolve;
        setTimeout(resolve, 1000).unref();
      });
    }
    for (const p of posted) {
      assert.equal(p.contentType, 'application/tlsrpt+gzip');
      assertReportShape(p.report);
      assert.equal(p.report['organization-name'], 'Postern Test');
      assert.equal(p.report['contact-info'], 'postmaster@postern.test');
      const [policy] = p.report.policies;
      assert.deepEqual(policy!.policy['policy-type'], 'sts');
      assert.equal(policy!.policy['policy-domain'], 'rpt-ok.test');
      assert.deepEqual(policy!.policy['mx-host'], ['mx.rpt-ok.test']);
      assert.ok(policy!.policy['policy-string'].includes('mode: enforce'));
      assert.equal(policy!.summary['total-failure-session-count'], 0);
    }

    // mailto rua: a report message submitted into the pipeline (SUBMIT), addressed to the rua.
    const jsm = await jetstreamManager(h.nc);
    await jsm.consumers.add(STREAMS.submit, {
      durable_name: 'test-tlsrpt',
      ack_policy: AckPolicy.Explicit,
      filter_subject: 'mail.submit.>',
    });
    const consumer = await jetstream(h.nc).consumers.get(STREAMS.submit, 'test-tlsrpt');
    let envelope: SeenEnvelope | undefined;
    while (!envelope) {
      assert.ok(Date.now() < deadline + 30_000, 'no TLS report submitted for rpt-bad.test');
      const m = await consumer.next({ expires: 1000 });
      const env = m ? seenEnvelope(m) : undefined;
      if (env?.to.includes('tls-reports@rpt-bad.test')) envelope = env;
      m?.ack();
    }
    assert.equal(envelope.from, 'tlsrpt@postern.test');
    const raw = bodyText(envelope);
    const [head] = raw.split('\r\n\r\n');
    assert.match(head!, /^Subject: Report Domain: rpt-bad\.test Submitter: postern\.test Report-ID: <.+>$/m);
    assert.match(head!, /^TLS-Report-Domain: rpt-bad\.test$/m);
    assert.match(head!, /^TLS-Report-Submitter: postern\.test$/m);
    assert.match(head!, /^Content-Type: multipart\/report; report-type="tlsrpt"; boundary=/m);
    // The attachment part: its headers, a blank line, base64 up to the closing boundary.
    const part =
      /Content-Type: application\/tlsrpt\+gzip\r\n(?:[^\r\n]+\r\n)*?Content-Disposition: attachment; filename="([^"]+)"\r\n\r\n([A-Za-z0-9+/=\r\n]+)\r\n--/.exec(
        raw,
      );
    assert.ok(part, 'the report is attached as application/tlsrpt+gzip');
    assert.match(part[1]!, /^postern\.test!rpt-bad\.test!\d+!\d+\.json\.gz$/);
    const gz = Buffer.from(part[2]!.replace(/\r\n/g, ''), 'base64');
    const report = JSON.parse(gunzipSync(gz).toString('utf8')) as TlsRptReport;
    assertReportShape(report);
    const [p] = report.policies;
    assert.equal(p!.summary['total-successful-session-count'], 0);
    assert.ok(p!.summary['total-failure-session-count'] >= 1);
    const detail = p!['failure-details']![0]!;
    assert.equal(detail['result-type'], 'certificate-not-trusted');
    assert.equal(detail['receiving-mx-hostname'], 'mx.rpt-bad.test');
    assert.equal(detail['receiving-ip'], '127.0.0.33');
  });
});
