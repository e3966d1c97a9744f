import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BodyStore } from '../../../services/common/body-store.ts';
import { hashPassword } from '../../../services/common/config/password.ts';
import {
  DEFAULT_RETRY,
  type DomainConfig,
  domainKey,
  type PolicyConfig,
  policyKey,
} from '../../../services/common/config/resolved.ts';
import { bodyText } from '../../helpers/bodies.ts';
import {
  type Harness,
  RawSmtp,
  selfSignedCert,
  serverReplies,
  startHarness,
  swaks,
} from './ingress-harness.ts';

const inbound = (domain: string, recipients?: string[]): DomainConfig => ({
  source: `mail/${domain}`,
  domain,
  inbound: { enabled: true, ...(recipients ? { recipients } : {}) },
});

const policy = (p: Partial<PolicyConfig>): PolicyConfig => ({
  source: 'prod/p',
  networks: [],
  users: [],
  requireTLS: false,
  limits: {},
  delivery: { pool: 'default', destinations: [], retry: DEFAULT_RETRY, tls: 'opportunistic' },
  ...p,
});

/** Reads the reply of one command on a raw session. */
async function say(c: RawSmtp, line: string): Promise<string> {
  c.write(`${line}\r\n`);
  return c.reply();
}

async function rawSession(port: number, localAddress = '127.0.0.1'): Promise<RawSmtp> {
  const c = await RawSmtp.open(port, localAddress);
  assert.match(await c.reply(), /^220 mx\.test\.postern ESMTP/);
  assert.match(await say(c, 'EHLO raw.test'), /^250-mx\.test\.postern/);
  return c;
}

describe('SMTP ingress (real nats-server, swaks and raw sockets)', () => {
  let h: Harness;
  let files: string;
  before(async () => {
    files = mkdtempSync(join(tmpdir(), 'postern-ingress-'));
    h = await startHarness({
      listeners: [
        { name: 'mx', host: '127.0.0.1', port: 0, mode: 'relay' },
        { name: 'submission', host: '127.0.0.1', port: 0, mode: 'submission' },
      ],
      settings: { tls: selfSignedCert() },
      documents: {
        [domainKey('ours.example')]: inbound('ours.example'),
        [domainKey('listed.example')]: inbound('listed.example', ['alice']),
        [policyKey('prod', 'office')]: policy({
          networks: ['127.0.0.1/32'],
          senderDomains: ['corp.example'],
          limits: { messageSize: 300 * 1024 },
        }),
        [policyKey('prod', 'apps')]: policy({
          users: [{ name: 'app', hash: hashPassword('s3cret') }],
          limits: { recipientsPerMessage: 3 },
        }),
      },
    });
  });
  after(async () => {
    await h?.stop();
    rmSync(files, { recursive: true, force: true });
  });

  it('advertises PIPELINING, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, SIZE and STARTTLS', async () => {
    const c = await rawSession(h.port('mx'));
    c.write('EHLO again.test\r\n');
    const ehlo = await c.reply();
    for (const ext of [
      'PIPELINING',
      '8BITMIME',
      'SMTPUTF8',
      'ENHANCEDSTATUSCODES',
      'SIZE 1048576',
      'STARTTLS',
    ]) {
      assert.ok(ehlo.includes(ext), `EHLO lists ${ext}: ${ehlo}`);
    }
    c.close();
  });

  it('accepts inbound mail, answers 250 with the queue id and publishes the envelope with a Received header', async () => {
    const r = await swaks(h.port('mx'), [
      '--local-interface',
      '127.0.0.2',
      '--from',
      'sender@remote.example',
      '--to',
      'Bob@ours.example',
      '--header',
      'Subject: hello',
    ]);
    const queued = /250 2\.0\.0 Ok: queued as ([0-9A-Z]{26})/.exec(r.output);
    assert.ok(queued, r.output);
    const env = await h.nextEnvelope();
    assert.ok(env);
    assert.equal(env.id, queued[1]);
    assert.equal(env.from, 'sender@remote.example');
    assert.deepEqual(env.to, ['Bob@ours.example']);
    assert.equal(env.policy, undefined);
    assert.deepEqual(env.client, { address: '127.0.0.2', helo: 'client.test', tls: false });
    assert.ok('attached' in env.body, 'a small body travels attached, raw');
    const body = bodyText(env);
    assert.match(
      body,
      // Our sender-authentication results (the test DNS knows no name: nothing passes), then our trace header.
      /^Authentication-Results: mx\.test\.postern;\r\n iprev=fail policy\.iprev=127\.0\.0\.2;[\s\S]*?\r\nReceived: from client\.test \(\[127\.0\.0\.2\]\)\r\n\tby mx\.test\.postern \(Postern\) with ESMTP id /,
    );
    assert.ok(body.includes(`id ${env.id}`));
    assert.ok(body.includes('Subject: hello\r\n'));
    assert.equal(env.size, Buffer.byteLength(body));
  });

  it('answers 550 5.1.1 for a user the domain does not list', async () => {
    const r = await swaks(h.port('mx'), ['--from', 'a@remote.example', '--to', 'mallory@listed.example']);
    assert.ok(
      serverReplies(r.output).some((l) => l.startsWith('550 5.1.1')),
      r.output,
    );
    assert.doesNotMatch(r.output, /queued as/);
  });

  it('denies relaying from an unlisted client with 554 5.7.1, even with a forged allowed sender', async () => {
    const r = await swaks(h.port('mx'), [
      '--local-interface',
      '127.0.0.2',
      '--from',
      'ceo@corp.example',
      '--to',
      'victim@elsewhere.example',
    ]);
    assert.ok(serverReplies(r.output).includes('554 5.7.1 Relay access denied'), r.output);
    assert.doesNotMatch(r.output, /queued as/);
  });

  it('relays for a client in the policy network and records the policy on the envelope', async () => {
    const r = await swaks(h.port('mx'), ['--from', 'ops@corp.example', '--to', 'partner@elsewhere.example']);
    assert.match(r.output, /250 2\.0\.0 Ok: queued as/, r.output);
    const env = await h.nextEnvelope();
    assert.equal(env?.policy, 'prod.office');
    assert.deepEqual(env?.to, ['partner@elsewhere.example']);
  });

  it('refuses relaying for a network client whose sender domain the policy does not allow', async () => {
    const r = await swaks(h.port('mx'), ['--from', 'x@evil.example', '--to', 'partner@elsewhere.example']);
    assert.ok(serverReplies(r.output).includes('554 5.7.1 Relay access denied'), r.output);
  });

  it('relays after STARTTLS + AUTH on submission', async () => {
    const r = await swaks(h.port('submission'), [
      '--local-interface',
      '127.0.0.2',
      '--tls',
      '--auth',
      'PLAIN',
      '--auth-user',
      'app',
      '--auth-password',
      's3cret',
      '--from',
      'noreply@apps.example',
      '--to',
      'customer@elsewhere.example',
    ]);
    assert.match(r.output, /235 2\.7\.0/, r.output);
    assert.match(r.output, /250 2\.0\.0 Ok: queued as/, r.output);
    const env = await h.nextEnvelope();
    assert.equal(env?.policy, 'prod.apps');
    assert.deepEqual(env?.client, { address: '127.0.0.2', helo: 'client.test', user: 'app', tls: true });
    const body = bodyText(env!);
    assert.match(body, /with ESMTPSA id .*\r\n\t\(using TLSv1\.[23] with cipher /);
  });

  it('refuses AUTH before TLS on a listener that is not insecureAuth, and MAIL without AUTH (530 5.7.0)', async () => {
    const r = await swaks(h.port('submission'), [
      '--auth',
      'PLAIN',
      '--auth-user',
      'app',
      '--auth-password',
      's3cret',
      '--from',
      'noreply@apps.example',
      '--to',
      'customer@elsewhere.example',
    ]);
    assert.doesNotMatch(r.output, /235 /, r.output);
    assert.doesNotMatch(r.output, /queued as/);
    assert.ok(
      serverReplies(r.output).some((l) => /^538 5\.7\.0 /.test(l)),
      r.output,
    );
    const c = await rawSession(h.port('submission'));
    assert.equal(await say(c, 'MAIL FROM:<noreply@apps.example>'), '530 5.7.0 Authentication required');
    c.close();
  });

  it('answers 535 5.7.8 to a wrong password', async () => {
    const r = await swaks(h.port('submission'), [
      '--tls',
      '--auth',
      'LOGIN',
      '--auth-user',
      'app',
      '--auth-password',
      'wrong',
      '--to',
      'x@elsewhere.example',
    ]);
    assert.ok(
      serverReplies(r.output).some((l) => l.startsWith('535 5.7.8')),
      r.output,
    );
  });

  it('refuses source routes, % hacks, double @ and bang paths, even from a relay client', async () => {
    const c = await rawSession(h.port('mx'));
    assert.equal(
      await say(c, 'MAIL FROM:<@hop.example:ops@corp.example>'),
      '501 5.1.7 Source routes are not accepted',
    );
    assert.match(await say(c, 'MAIL FROM:<ops@corp.example>'), /^250 /);
    assert.equal(
      await say(c, 'RCPT TO:<@hop.example,@ours.example:victim@elsewhere.example>'),
      '501 5.1.3 Source routes are not accepted',
    );
    for (const rcpt of ['victim%elsewhere.example@ours.example', 'elsewhere.example!victim@ours.example']) {
      assert.equal(await say(c, `RCPT TO:<${rcpt}>`), '501 5.1.3 Bad recipient address syntax', rcpt);
    }
    assert.match(await say(c, 'RCPT TO:<victim@ours.example@elsewhere.example>'), /^501 5\.1\.3 /);
    assert.match(await say(c, 'RCPT TO:<"victim@elsewhere.example"@ours.example>'), /^501 5\.1\.3 /);
    assert.match(await say(c, 'DATA'), /^503 /, 'no recipient was accepted');
    c.close();
  });

  it('enforces SIZE: declared (global and policy limit) and actual, with 552 5.3.4', async () => {
    const c = await rawSession(h.port('mx'), '127.0.0.1');
    assert.match(await say(c, 'MAIL FROM:<ops@corp.example> SIZE=2000000'), /^552 5\.3\.4 /);
    assert.equal(
      await say(c, 'MAIL FROM:<ops@corp.example> SIZE=400000'),
      '552 5.3.4 Message size exceeds fixed maximum message size',
      'the policy lowers the limit for its clients',
    );
    c.close();
    const big = join(files, 'big.eml');
    // ~385 KiB: under the global 1 MiB, over the 300 KiB limit of the client's policy.
    writeFileSync(big, `Subject: big\n\n${`${'y'.repeat(76)}\n`.repeat(5000)}`);
    const r = await swaks(h.port('mx'), [
      '--from',
      'ops@corp.example',
      '--to',
      'a@ours.example',
      '--data',
      big,
    ]);
    assert.ok(
      serverReplies(r.output).some((l) => l.startsWith('552 5.3.4')),
      r.output,
    );
    assert.equal(await h.nextEnvelope(1000), undefined, 'nothing was queued');
  });

  it('stores a large body out of line in the body store and references it from the envelope', async () => {
    const big = join(files, 'large.eml');
    writeFileSync(big, `Subject: large\n\n${`${'z'.repeat(76)}\n`.repeat(5000)}`);
    const r = await swaks(h.port('mx'), [
      '--local-interface',
      '127.0.0.2',
      '--from',
      'a@remote.example',
      '--to',
      'a@ours.example',
      '--data',
      big,
    ]);
    assert.match(r.output, /250 2\.0\.0 Ok: queued as/, r.output);
    const env = await h.nextEnvelope();
    assert.ok(env && 'stored' in env.body, JSON.stringify(env?.body));
    assert.equal(env.body.stored, env.id);
    assert.ok(env.body.size > 256 * 1024);
    const stored = await new BodyStore(h.nc).get(env.body);
    assert.equal(stored.length, env.body.size);
    assert.match(
      stored.toString('latin1', 0, 1000),
      /^Authentication-Results: [\s\S]*?\r\nReceived: from client\.test/,
    );
  });

  for (const [kind, body] of [
    ['bare LF', 'Subject: x\r\n\r\nline one\nline two\r\n'],
    ['bare CR', 'Subject: x\r\n\r\nline one\rline two\r\n'],
    [
      'LF.LF smuggling',
      'Subject: x\r\n\r\nhi\n.\nMAIL FROM:<ceo@corp.example>\r\nRCPT TO:<a@ours.example>\r\nDATA\r\n',
    ],
  ] as const) {
    it(`refuses a message with a ${kind} with 550 5.6.0 and queues nothing`, async () => {
      const c = await rawSession(h.port('mx'), '127.0.0.2');
      assert.match(await say(c, 'MAIL FROM:<a@remote.example>'), /^250 /);
      assert.match(await say(c, 'RCPT TO:<a@ours.example>'), /^250 /);
      assert.match(await say(c, 'DATA'), /^354 /);
      c.write(`${body}.\r\n`);
      assert.equal(await c.reply(), '550 5.6.0 Bare LF/CR not allowed');
      assert.match(await say(c, 'NOOP'), /^250 /, 'the session continues in command mode');
      c.close();
      assert.equal(await h.nextEnvelope(1000), undefined);
    });
  }

  it('answers VRFY with 252 2.1.5 without disclosing anything, EXPN with 502', async () => {
    const c = await rawSession(h.port('mx'), '127.0.0.2');
    assert.equal(
      await say(c, 'VRFY mallory@listed.example'),
      '252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery',
    );
    assert.equal(
      await say(c, 'VRFY alice@listed.example'),
      '252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery',
    );
    assert.match(await say(c, 'EXPN staff'), /^502 5\.5\.1 /);
    c.close();
  });

  it('answers a pipelined transaction in order, refusing only the relayed recipient', async () => {
    const p = await rawSession(h.port('mx'), '127.0.0.2');
    p.write(
      'MAIL FROM:<a@remote.example>\r\nRCPT TO:<one@ours.example>\r\nRCPT TO:<x@elsewhere.example>\r\n' +
        'RCPT TO:<two@ours.example>\r\nDATA\r\nSubject: pipelined\r\n\r\nhi\r\n.\r\n',
    );
    assert.match(await p.reply(), /^250 /);
    assert.match(await p.reply(), /^250 /);
    assert.match(await p.reply(), /^554 5\.7\.1 /);
    assert.match(await p.reply(), /^250 /);
    assert.match(await p.reply(), /^354 /);
    assert.match(await p.reply(), /^250 2\.0\.0 Ok: queued as /);
    p.close();
    const env = await h.nextEnvelope();
    assert.deepEqual(env?.to, ['one@ours.example', 'two@ours.example']);
  });

  it('limits recipients per message for an authenticated policy client', async () => {
    const r = await swaks(h.port('submission'), [
      '--tls',
      '--auth',
      'PLAIN',
      '--auth-user',
      'app',
      '--auth-password',
      's3cret',
      '--from',
      'noreply@apps.example',
      '--to',
      'a@elsewhere.example,b@elsewhere.example,c@elsewhere.example,d@elsewhere.example',
      '--quit-after',
      'RCPT',
    ]);
    assert.ok(serverReplies(r.output).includes('452 4.5.3 Too many recipients'), r.output);
  });

  it('applies a config change from KV live, without restart', async () => {
    const args = ['--local-interface', '127.0.0.2', '--from', 'a@remote.example', '--to', 'x@fresh.example'];
    const before = await swaks(h.port('mx'), [...args, '--quit-after', 'RCPT']);
    assert.ok(serverReplies(before.output).includes('554 5.7.1 Relay access denied'), before.output);
    await h.kv.put(domainKey('fresh.example'), JSON.stringify(inbound('fresh.example')));
    await h.waitForConfig(() => h.config.snapshot().domains.has('fresh.example'));
    const afterChange = await swaks(h.port('mx'), args);
    assert.match(afterChange.output, /250 2\.0\.0 Ok: queued as/, afterChange.output);
    assert.deepEqual((await h.nextEnvelope())?.to, ['x@fresh.example']);
  });

  it('exports the ingress metrics', async () => {
    const text = await h.registry.metrics();
    assert.match(text, /postern_messages_received_total\{listener="mx",result="accepted"\} [1-9]/);
    assert.match(text, /postern_messages_received_total\{listener="mx",result="rejected"\} [1-9]/);
    assert.match(text, /postern_smtp_rejections_total\{listener="mx",reason="relay-denied"\} [1-9]/);
    assert.match(text, /postern_accept_duration_seconds_count\{listener="mx"\} [1-9]/);
    assert.match(text, /postern_smtp_sessions_active\{listener="mx"\} \d/);
  });
});
