/** The shared test peers behave as documented: the SMTP sink (driven by swaks, a client we did not write) and dnsmasq. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startTestDns, type TestDns } from '../../helpers/dns.ts';
import { type SmtpSink, startSmtpSink } from '../../helpers/smtp-sink.ts';

const run = promisify(execFile);

async function swaks(args: string[]): Promise<string> {
  try {
    const { stdout } = await run('swaks', ['--timeout', '20', '--hide-informational', ...args]);
    return stdout;
  } catch (err) {
    return String((err as { stdout?: string }).stdout ?? err);
  }
}

describe('smtp sink', () => {
  const sinks: SmtpSink[] = [];
  after(async () => {
    for (const s of sinks) await s.close();
  });

  it('accepts a message on 127.0.0.N and records envelope and body', async () => {
    const sink = await startSmtpSink({ host: '127.0.0.2' });
    sinks.push(sink);
    await swaks([
      '--server',
      `127.0.0.2:${sink.port}`,
      '--from',
      'a@x.test',
      '--to',
      'b@y.test',
      '--body',
      'hello',
    ]);
    const [msg] = await sink.waitForMessages(1);
    assert.equal(msg?.from, 'a@x.test');
    assert.deepEqual(msg?.to, ['b@y.test']);
    assert.match(msg!.raw.toString(), /hello/);
    assert.equal(sink.connections, 1);
  });

  it('answers scripted RCPT replies verbatim', async () => {
    const sink = await startSmtpSink({ onRcpt: () => ({ code: 550, message: '5.1.1 No such user' }) });
    sinks.push(sink);
    const out = await swaks(['--server', `127.0.0.1:${sink.port}`, '--from', 'a@x.test', '--to', 'b@y.test']);
    assert.match(out, /550 5\.1\.1 No such user/);
    assert.equal(sink.messages.length, 0);
  });

  it('LMTP gives one DATA reply per recipient', async () => {
    const sink = await startSmtpSink({
      lmtp: true,
      onData: () => ({ 'bad@y.test': { code: 550, message: '5.2.1 Mailbox disabled' } }),
    });
    sinks.push(sink);
    const out = await swaks([
      '--server',
      `127.0.0.1:${sink.port}`,
      '--protocol',
      'LMTP',
      '--from',
      'a@x.test',
      '--to',
      'ok@y.test,bad@y.test',
    ]);
    assert.match(out, /550 5\.2\.1 Mailbox disabled/);
    const [msg] = await sink.waitForMessages(1);
    assert.deepEqual(msg?.to, ['ok@y.test']);
  });

  it('offers STARTTLS and AUTH when asked', async () => {
    const sink = await startSmtpSink({ tls: true, auth: { user: 'u', pass: 'p' } });
    sinks.push(sink);
    await swaks([
      '--server',
      `127.0.0.1:${sink.port}`,
      '--tls',
      '--auth',
      'PLAIN',
      '--auth-user',
      'u',
      '--auth-password',
      'p',
      '--from',
      'a@x.test',
      '--to',
      'b@y.test',
    ]);
    const [msg] = await sink.waitForMessages(1);
    assert.equal(msg?.secure, true);
    assert.equal(msg?.authUser, 'u');
  });
});

describe('test dns (dnsmasq)', () => {
  let dns: TestDns;
  after(async () => {
    await dns?.close();
  });

  it('serves MX, A, null MX and NXDOMAIN', async () => {
    dns = await startTestDns({
      mx: [{ domain: 'example.test', exchange: 'mx1.example.test', priority: 10 }],
      a: [{ name: 'mx1.example.test', address: '127.0.0.2' }],
      nullMx: ['nomail.test'],
    });
    const r = new Resolver({ timeout: 2000, tries: 2 });
    r.setServers([dns.server]);
    const mx = (await r.resolveMx('example.test')).map(({ exchange, priority }) => ({ exchange, priority }));
    assert.deepEqual(mx, [{ exchange: 'mx1.example.test', priority: 10 }]);
    assert.deepEqual(await r.resolve4('mx1.example.test'), ['127.0.0.2']);
    const nullMx = (await r.resolveMx('nomail.test')).map(({ exchange, priority }) => ({
      exchange,
      priority,
    }));
    assert.deepEqual(nullMx, [{ exchange: '', priority: 0 }]);
    await assert.rejects(r.resolveMx('nothere.test'), { code: 'ENOTFOUND' });
  });
});
