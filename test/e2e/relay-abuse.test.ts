/**
 * Spammers' tricks against a running Postern: every attempt to relay without permission is refused at RCPT time,
 * oversized messages get 552 and SMTP smuggling (bare LF) is refused — and nothing of it reaches a destination.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { eventually, startPostern, type TestPostern } from '../helpers/postern.ts';
import { type SmtpSink, startSmtpSink } from '../helpers/smtp-sink.ts';
import { swaks } from '../helpers/swaks.ts';

/** Speaks raw SMTP lines (exact bytes, no client-side fixing of line endings); returns every reply line. */
async function rawSession(port: number, chunks: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let buf = '';
    let step = 0;
    const lines: string[] = [];
    socket.setTimeout(30_000, () => socket.destroy(new Error('raw session timed out')));
    socket.on('data', (d) => {
      buf += d.toString();
      let nl = buf.indexOf('\r\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        lines.push(line);
        // A final reply line ("250 ..." not "250-...") lets the next chunk go.
        if (/^\d{3} /.test(line)) {
          if (step < chunks.length) socket.write(chunks[step++]!);
          else socket.end();
        }
        nl = buf.indexOf('\r\n');
      }
    });
    socket.on('close', () => resolve(lines));
    socket.on('error', reject);
  });
}

describe('open-relay and abuse attempts against Postern', () => {
  let postern: TestPostern;
  let smarthost: SmtpSink;

  before(async () => {
    smarthost = await startSmtpSink({ host: '127.0.0.9' });
    postern = await startPostern({
      env: { POSTERN_POSTMASTER: 'postmaster@ours.test' },
      config: `
apiVersion: postern.dev/v1alpha1
kind: MailDomain
metadata: { name: ours }
spec:
  domain: ours.test
  inbound: { enabled: true, recipients: [postmaster], deliverTo: { host: 127.0.0.9, port: ${smarthost.port}, protocol: smtp, tls: none } }
---
apiVersion: postern.dev/v1alpha1
kind: RelayPolicy
metadata: { name: office }
spec:
  clients: { networks: [127.0.0.1/32], authSecretRef: { name: users } }
  senders: { domains: [ours.test] }
  limits: { messageSize: 10240 }
  delivery: { smarthost: { host: 127.0.0.9, port: ${smarthost.port}, tls: none } }
---
apiVersion: v1
kind: Secret
metadata: { name: users }
stringData: { alice: s3cret }
`,
    });
  });
  after(async () => {
    await postern?.cleanup();
    await smarthost?.close();
  });

  const rcptFrom = (iface: string, from: string, to: string) =>
    swaks([
      '--server',
      `127.0.0.1:${postern.smtpPort}`,
      '--local-interface',
      iface,
      '--from',
      from,
      '--to',
      to,
      '--quit-after',
      'RCPT',
    ]);
  /** The reply to RCPT: the last one before swaks' QUIT. */
  const rcptReply = (r: { replies: string[] }) => r.replies.filter((l) => !/^221 /.test(l)).at(-1) ?? '';

  it('refuses to relay for a client outside every RelayPolicy network (554 5.7.1)', async () => {
    const r = await rcptFrom('127.0.0.20', 'spam@elsewhere.test', 'victim@remote.test');
    assert.match(rcptReply(r), /^554 5\.7\.1/, r.transcript);
  });

  it('refuses a forged allowed sender from a disallowed client', async () => {
    const r = await rcptFrom('127.0.0.20', 'ceo@ours.test', 'victim@remote.test');
    assert.match(rcptReply(r), /^554 5\.7\.1/, r.transcript);
  });

  it('refuses a relay client whose envelope sender domain the policy does not allow', async () => {
    const r = await rcptFrom('127.0.0.1', 'spoof@bank.test', 'victim@remote.test');
    assert.match(rcptReply(r), /^(554 5\.7\.1|553 5\.7\.1)/, r.transcript);
  });

  for (const trick of [
    'victim@remote.test@ours.test',
    'victim%remote.test@ours.test',
    '@ours.test:victim@remote.test',
    'remote.test!victim@ours.test',
    '"victim@remote.test"@ours.test',
  ]) {
    it(`never relays the address trick <${trick}> from an outside client`, async () => {
      const r = await rcptFrom('127.0.0.20', 'spam@elsewhere.test', trick);
      assert.match(rcptReply(r), /^5\d\d /, r.transcript);
    });
  }

  it('still accepts mail for its own domain from anyone', async () => {
    const r = await rcptFrom('127.0.0.20', 'friend@elsewhere.test', 'postmaster@ours.test');
    assert.match(rcptReply(r), /^250 /, r.transcript);
  });

  it('requires AUTH on the submission port and relays for an authenticated user', async () => {
    const anon = await swaks([
      '--server',
      `127.0.0.1:${postern.submissionPort}`,
      '--local-interface',
      '127.0.0.20',
      '--from',
      'alice@ours.test',
      '--to',
      'x@remote.test',
      '--quit-after',
      'RCPT',
    ]);
    assert.match(rcptReply(anon), /^5\d\d 5\.7\.\d/, anon.transcript);
    const bad = await swaks([
      '--server',
      `127.0.0.1:${postern.submissionPort}`,
      '--local-interface',
      '127.0.0.20',
      '--auth',
      'PLAIN',
      '--auth-user',
      'alice',
      '--auth-password',
      'wrong',
      '--from',
      'alice@ours.test',
      '--to',
      'x@remote.test',
      '--quit-after',
      'RCPT',
    ]);
    assert.ok(
      bad.replies.some((l) => /^535 5\.7\.8/.test(l)),
      bad.transcript,
    );
    const ok = await swaks([
      '--server',
      `127.0.0.1:${postern.submissionPort}`,
      '--local-interface',
      '127.0.0.20',
      '--auth',
      'PLAIN',
      '--auth-user',
      'alice',
      '--auth-password',
      's3cret',
      '--from',
      'alice@ours.test',
      '--to',
      'x@remote.test',
    ]);
    assert.equal(ok.code, 0, ok.transcript);
    await smarthost.waitForMessages(1, 60_000);
    assert.ok(smarthost.messages.some((m) => m.to.includes('x@remote.test')));
  });

  it('refuses an oversized message with 552 5.3.4', async () => {
    const r = await swaks([
      '--server',
      `127.0.0.1:${postern.smtpPort}`,
      '--from',
      'a@ours.test',
      '--to',
      'b@remote.test',
      '--body',
      'x'.repeat(20_000),
    ]);
    assert.ok(
      r.replies.some((l) => /^552 5\.3\.4/.test(l)),
      r.transcript,
    );
  });

  it('refuses a message with a bare LF (SMTP smuggling) with 550 5.6.0 and delivers nothing of it', async () => {
    const before = smarthost.messages.length;
    const replies = await rawSession(postern.smtpPort, [
      'EHLO smuggler.test\r\n',
      'MAIL FROM:<a@ours.test>\r\n',
      'RCPT TO:<postmaster@ours.test>\r\n',
      'DATA\r\n',
      'Subject: hi\r\n\r\nhello\n.\nMAIL FROM:<evil@ours.test>\r\nRCPT TO:<victim@remote.test>\r\n.\r\n',
      'QUIT\r\n',
    ]);
    assert.ok(
      replies.some((l) => /^550 5\.6\.0/.test(l)),
      replies.join('\n'),
    );
    assert.ok(!replies.some((l) => /^250 2\.0\.0 .*queued/i.test(l)), 'nothing was queued');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(smarthost.messages.length, before);
  });

  it('accepts RCPT TO:<postmaster> without a domain from anyone and delivers it to the postmaster', async () => {
    const replies = await rawSession(postern.smtpPort, [
      'EHLO x.test\r\n',
      'MAIL FROM:<someone@elsewhere.test>\r\n',
      'RCPT TO:<Postmaster>\r\n',
      'DATA\r\n',
      'Subject: for the postmaster\r\n\r\nhello\r\n.\r\n',
      'QUIT\r\n',
    ]);
    assert.ok(
      replies.some((l) => /^250 .*queued/i.test(l)),
      replies.join('\n'),
    );
    const msg = await eventually('the message at the postmaster\u2019s mailbox', () =>
      smarthost.messages.find(
        (m) => m.to.includes('postmaster@ours.test') && m.raw.includes('for the postmaster'),
      ),
    );
    assert.equal(msg.from, 'someone@elsewhere.test');
  });

  it('answers VRFY with 252 and discloses nothing', async () => {
    const replies = await rawSession(postern.smtpPort, [
      'EHLO x.test\r\n',
      'VRFY postmaster\r\n',
      'QUIT\r\n',
    ]);
    assert.ok(
      replies.some((l) => /^252 /.test(l)),
      replies.join('\n'),
    );
  });
});
