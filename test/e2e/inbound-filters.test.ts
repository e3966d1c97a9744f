/**
 * DNSBL and content filter as a local-mode user sets them up: an `IngressSettings` document in the config file,
 * a DNS server serving a block list zone (dnsmasq), the real rspamd, and the mailbox store an SMTP sink.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestDns, type TestDns } from '../helpers/dns.ts';
import { startPostern, type TestPostern } from '../helpers/postern.ts';
import { startTestRspamd, type TestRspamd } from '../helpers/rspamd.ts';
import { type SmtpSink, startSmtpSink } from '../helpers/smtp-sink.ts';
import { swaks } from '../helpers/swaks.ts';

describe('DNSBL and rspamd in local mode (IngressSettings in the config file)', () => {
  let dns: TestDns;
  let rspamd: TestRspamd;
  let mailbox: SmtpSink;
  let postern: TestPostern;
  const send = (from: string, extra: string[]) =>
    swaks([
      '--server',
      `127.0.0.1:${postern.smtpPort}`,
      '--local-interface',
      from,
      '--from',
      'someone@far.example',
      '--to',
      'alice@inbound.test',
      ...extra,
    ]);

  before(async () => {
    dns = await startTestDns({ a: [{ name: '2.0.0.127.bl.test', address: '127.0.0.2' }], ttl: 600 });
    rspamd = await startTestRspamd();
    mailbox = await startSmtpSink({ host: '127.0.0.5' });
    postern = await startPostern({
      env: { POSTERN_DNS_SERVERS: dns.server },
      config: `
apiVersion: postern.dev/v1alpha1
kind: MailDomain
metadata: { name: inbound }
spec:
  domain: inbound.test
  inbound:
    enabled: true
    deliverTo: { host: 127.0.0.5, port: ${mailbox.port}, protocol: smtp, tls: none }
---
kind: IngressSettings
dnsbl:
  zones: [{ zone: bl.test, codes: [127.0.0.2-127.0.0.11] }]
contentFilter:
  url: ${rspamd.url}
  failMode: closed
`,
    });
  });
  after(async () => {
    await postern?.cleanup();
    await mailbox?.close();
    await rspamd?.close();
    await dns?.close();
  });

  it('refuses a listed client at connect', async () => {
    const r = await send('127.0.0.2', []);
    assert.deepEqual(r.replies, ['554 5.7.1 Service unavailable; client [127.0.0.2] blocked using bl.test']);
  });

  it('delivers an unlisted client’s message with the headers rspamd asked for', async () => {
    const r = await send('127.0.0.3', ['--header', 'Subject: postern-add-header']);
    assert.equal(r.code, 0, r.transcript);
    const [message] = await mailbox.waitForMessages(1, 60_000);
    const raw = message!.raw.toString('latin1');
    assert.match(raw, /^X-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=/);
    assert.match(raw, /\r\nSubject: postern-add-header\r\n/);
  });

  it('rejects GTUBE at end of DATA', async () => {
    const r = await send('127.0.0.3', [
      '--body',
      'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X',
    ]);
    assert.ok(r.replies.includes('550 5.7.1 Gtube pattern'), r.transcript);
  });
});
