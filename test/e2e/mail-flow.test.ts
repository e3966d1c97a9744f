/**
 * The whole pipeline, as a user sees it: swaks in, Postern in local mode (separate ingress, queue and delivery
 * processes over a real nats-server), real SMTP/LMTP peers on 127.0.0.N, MX answers from a real DNS server.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestDns, type TestDns } from '../helpers/dns.ts';
import { eventually, startPostern, type TestPostern } from '../helpers/postern.ts';
import { freePort, type SmtpSink, startSmtpSink } from '../helpers/smtp-sink.ts';
import { swaks } from '../helpers/swaks.ts';

describe('mail flow through Postern (local mode)', () => {
  let dns: TestDns;
  let postern: TestPostern;
  const sinks: Record<string, SmtpSink> = {};
  let deferOnce = 0;

  before(async () => {
    // Every MX sink listens on the same port (POSTERN_MX_PORT) on its own loopback address.
    const mxPort = await freePort('127.0.0.4');
    sinks['backupMx'] = await startSmtpSink({ host: '127.0.0.4', port: mxPort });
    sinks['senderMx'] = await startSmtpSink({ host: '127.0.0.6', port: mxPort });
    sinks['mixedMx'] = await startSmtpSink({
      host: '127.0.0.7',
      port: mxPort,
      onRcpt: (rcpt) => {
        if (rcpt.startsWith('nobody@'))
          return { code: 550, message: '5.1.1 <nobody@mixed.test>: no such user here' };
        if (rcpt.startsWith('later@') && deferOnce++ === 0)
          return { code: 451, message: '4.2.0 greylisted, try again' };
        return 'accept';
      },
    });
    sinks['deadMx'] = await startSmtpSink({
      host: '127.0.0.8',
      port: mxPort,
      onRcpt: () => ({ code: 451, message: '4.3.0 mailbox temporarily unavailable' }),
    });
    sinks['smarthost'] = await startSmtpSink({ host: '127.0.0.9' });
    sinks['mailbox'] = await startSmtpSink({
      host: '127.0.0.5',
      lmtp: true,
      onData: () => ({ 'bob@inbound.test': { code: 452, message: '4.2.2 mailbox full' } }),
    });
    dns = await startTestDns({
      mx: [
        { domain: 'remote.test', exchange: 'mx1.remote.test', priority: 10 },
        { domain: 'remote.test', exchange: 'mx2.remote.test', priority: 20 },
        { domain: 'sender.test', exchange: 'mx.sender.test', priority: 10 },
        { domain: 'mixed.test', exchange: 'mx.mixed.test', priority: 10 },
        { domain: 'dead.test', exchange: 'mx.dead.test', priority: 10 },
      ],
      a: [
        { name: 'mx1.remote.test', address: '127.0.0.3' }, // nothing listens there: connection refused
        { name: 'mx2.remote.test', address: '127.0.0.4' },
        { name: 'mx.sender.test', address: '127.0.0.6' },
        { name: 'mx.mixed.test', address: '127.0.0.7' },
        { name: 'mx.dead.test', address: '127.0.0.8' },
      ],
    });
    postern = await startPostern({
      env: { POSTERN_DNS_SERVERS: dns.server, POSTERN_MX_PORT: String(mxPort) },
      config: `
apiVersion: postern.dev/v1alpha1
kind: MailDomain
metadata: { name: inbound }
spec:
  domain: inbound.test
  inbound:
    enabled: true
    recipients: [alice, bob]
    deliverTo: { host: 127.0.0.5, port: ${sinks['mailbox'].port}, protocol: lmtp, tls: none }
---
apiVersion: postern.dev/v1alpha1
kind: RelayPolicy
metadata: { name: a-mx }
spec:
  clients: { networks: [127.0.0.1/32] }
  delivery: { retry: { schedule: [1s], maxLifetime: 1h } }
---
apiVersion: postern.dev/v1alpha1
kind: RelayPolicy
metadata: { name: b-smarthost }
spec:
  clients: { networks: [127.0.0.2/32] }
  delivery: { smarthost: { host: 127.0.0.9, port: ${sinks['smarthost'].port}, tls: none } }
---
apiVersion: postern.dev/v1alpha1
kind: RelayPolicy
metadata: { name: c-short-lived }
spec:
  clients: { networks: [127.0.0.10/32] }
  delivery: { retry: { schedule: [1s], maxLifetime: 3s } }
`,
    });
  });

  after(async () => {
    await postern?.cleanup();
    await dns?.close();
    await Promise.all(Object.values(sinks).map((s) => s.close()));
  });

  const send = (from: string, to: string[], extra: string[] = []) =>
    swaks(['--server', `127.0.0.1:${postern.smtpPort}`, '--from', from, '--to', to.join(','), ...extra]);

  it('relays to the MX of the recipient domain, falling back to the backup MX when the primary refuses', async () => {
    const r = await send('sender@sender.test', ['user@remote.test'], ['--header', 'Subject: via mx']);
    assert.equal(r.code, 0, r.transcript);
    assert.match(r.replies.at(-2) ?? '', /^250 /, 'DATA answered 250');
    const [msg] = await sinks['backupMx']!.waitForMessages(1, 60_000);
    assert.deepEqual(msg!.to, ['user@remote.test']);
    assert.match(msg!.raw.toString(), /Subject: via mx/);
    assert.match(msg!.raw.toString(), /^Received: /m, 'Postern added a Received header');
  });

  it('relays a 300 KB message (stored out of line in the body store) intact', async () => {
    const line = `${'0123456789'.repeat(7)}abcdefg`;
    const body = Array.from({ length: 4000 }, (_, i) => `${String(i).padStart(5, '0')} ${line}`).join('\n');
    const file = join(mkdtempSync(join(tmpdir(), 'postern-large-')), 'body.txt');
    writeFileSync(file, body);
    const r = await send(
      'big@sender.test',
      ['large@remote.test'],
      ['--header', 'Subject: large', '--body', `@${file}`],
    );
    rmSync(dirname(file), { recursive: true, force: true });
    assert.equal(r.code, 0, r.transcript);
    const msg = await eventually('the large message at the MX', () =>
      sinks['backupMx']!.messages.find((m) => m.to.includes('large@remote.test')),
    );
    const text = msg.raw.toString();
    assert.ok(text.includes(`03999 ${line}`), 'the last line arrived');
    assert.equal(text.split(line).length - 1, 4000, 'every line arrived exactly once');
  });

  it('relays through the smarthost named by the client\u2019s RelayPolicy', async () => {
    const r = await send('ops@sender.test', ['someone@far.test'], ['--local-interface', '127.0.0.2']);
    assert.equal(r.code, 0, r.transcript);
    const [msg] = await sinks['smarthost']!.waitForMessages(1, 60_000);
    assert.deepEqual(msg!.to, ['someone@far.test']);
  });

  it('hands inbound mail to the mailbox store over LMTP and retries a recipient the store defers', async () => {
    const r = await send('friend@remote.test', ['alice@inbound.test', 'bob@inbound.test']);
    assert.equal(r.code, 0, r.transcript);
    const first = await sinks['mailbox']!.waitForMessages(1, 60_000);
    assert.deepEqual(first[0]!.to, ['alice@inbound.test'], 'LMTP accepted alice, deferred bob');
  });

  it('answers 550 5.1.1 for an unknown user of an inbound domain', async () => {
    const r = await send('friend@remote.test', ['mallory@inbound.test'], ['--quit-after', 'RCPT']);
    assert.ok(
      r.replies.some((l) => /^550 5\.1\.1/.test(l)),
      r.transcript,
    );
  });

  it('with mixed outcomes, delivers the good recipient, retries the deferred one and bounces the failed one', async () => {
    const r = await send('writer@sender.test', ['ok@mixed.test', 'nobody@mixed.test', 'later@mixed.test']);
    assert.equal(r.code, 0, r.transcript);
    const got = await eventually('both deliverable recipients at the MX', () => {
      const to = sinks['mixedMx']!.messages.flatMap((m) => m.to);
      return to.includes('ok@mixed.test') && to.includes('later@mixed.test') && to;
    });
    assert.ok(!got.includes('nobody@mixed.test'));
    const dsn = await eventually('a DSN at the sender\u2019s MX', () =>
      sinks['senderMx']!.messages.find((m) => m.to.includes('writer@sender.test')),
    );
    const text = dsn.raw.toString();
    assert.equal(dsn.from, '', 'DSNs are sent from the null sender');
    assert.match(text, /multipart\/report/i);
    assert.match(text, /report-type=("?)delivery-status\1/i);
    assert.match(text, /Final-Recipient: rfc822; ?nobody@mixed\.test/i);
    assert.match(text, /no such user here/, 'the DSN carries the remote reply text');
    assert.doesNotMatch(text, /Final-Recipient: rfc822; ?(ok|later)@mixed\.test/i);
  });

  it('expires a recipient that stays deferred past maxLifetime and bounces it with 4.4.7', async () => {
    const r = await send('patient@sender.test', ['x@dead.test'], ['--local-interface', '127.0.0.10']);
    assert.equal(r.code, 0, r.transcript);
    const dsn = await eventually('an expiry DSN', () =>
      sinks['senderMx']!.messages.find((m) => m.to.includes('patient@sender.test')),
    );
    const text = dsn.raw.toString();
    assert.match(text, /Final-Recipient: rfc822; ?x@dead\.test/i);
    assert.match(text, /Status: 4\.4\.7/);
    assert.match(text, /mailbox temporarily unavailable/);
  });
});
