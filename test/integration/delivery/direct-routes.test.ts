/**
 * Smarthost (AUTH), LMTP mailbox hand-off, connection reuse, DKIM signing and redelivery of a job whose worker
 * died — against real smtp-server sinks and a real nats-server.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { SECRET_CONTEXT } from '../../../services/common/secrets.ts';
import { type SmtpSink, startSmtpSink } from '../../helpers/smtp-sink.ts';
import { type Harness, makeJob, startHarness } from './harness.ts';

describe('delivery to smarthosts and mailbox stores', () => {
  let h: Harness;
  const sinks: SmtpSink[] = [];
  const sink = async (opts: Parameters<typeof startSmtpSink>[0]) => {
    const s = await startSmtpSink(opts);
    sinks.push(s);
    return s;
  };

  before(async () => {
    h = await startHarness();
    await h.startWorker({ concurrency: 4 });
  });
  after(async () => {
    await h?.close();
    for (const s of sinks) await s.close();
  });

  it('relays through a smarthost with AUTH', async () => {
    const s = await sink({ host: '127.0.0.9', auth: { user: 'relay', pass: 's3cret' } });
    const pass = h.secrets.seal('s3cret', SECRET_CONTEXT.smarthostPassword(s.host, s.port, 'relay'));
    const route = {
      kind: 'smarthost',
      host: s.host,
      port: s.port,
      tls: 'none',
      auth: { user: 'relay', pass },
    } as const;
    const r = await h.deliver(makeJob(route, ['out@far.test']));
    assert.equal(r.outcomes[0]?.status, 'delivered', JSON.stringify(r.outcomes));
    const [msg] = await s.waitForMessages(1);
    assert.equal(msg?.authUser, 'relay');
  });

  it('wrong smarthost credentials defer (our config, not the message) with the remote 535 text', async () => {
    const s = await sink({ host: '127.0.0.9', auth: { user: 'relay', pass: 's3cret' } });
    const pass = h.secrets.seal('nope', SECRET_CONTEXT.smarthostPassword(s.host, s.port, 'relay'));
    const route = {
      kind: 'smarthost',
      host: s.host,
      port: s.port,
      tls: 'none',
      auth: { user: 'relay', pass },
    } as const;
    const r = await h.deliver(makeJob(route, ['out@far.test']));
    assert.equal(r.outcomes[0]?.status, 'deferred');
    assert.match(r.outcomes[0]!.response, /535/);
    assert.equal(s.messages.length, 0);
  });

  it('a password sealed for another smarthost does not open here: deferred, nothing sent, no AUTH tried', async () => {
    const s = await sink({ host: '127.0.0.9', auth: { user: 'relay', pass: 's3cret' } });
    // Someone able to write the config moved the password of relay.example into a policy naming their own host.
    const pass = h.secrets.seal('s3cret', SECRET_CONTEXT.smarthostPassword('relay.example', 587, 'relay'));
    const route = {
      kind: 'smarthost',
      host: s.host,
      port: s.port,
      tls: 'none',
      auth: { user: 'relay', pass },
    } as const;
    const r = await h.deliver(makeJob(route, ['out@far.test']));
    assert.equal(r.outcomes[0]?.status, 'deferred');
    assert.match(r.outcomes[0]!.response, /cannot open the smarthost password/);
    assert.equal(s.messages.length, 0);
  });

  it('hands inbound mail to an LMTP store with one outcome per recipient', async () => {
    const s = await sink({
      lmtp: true,
      onData: () => ({ 'full@local.test': { code: 550, message: '5.2.2 Mailbox full' } }),
    });
    const route = {
      kind: 'mailbox',
      host: s.host,
      port: s.port,
      protocol: 'lmtp',
      tls: 'opportunistic',
    } as const;
    const r = await h.deliver(makeJob(route, ['ok@local.test', 'full@local.test']));
    const by = Object.fromEntries(r.outcomes.map((o) => [o.recipient, o]));
    assert.equal(by['ok@local.test']?.status, 'delivered', JSON.stringify(r.outcomes));
    assert.equal(by['full@local.test']?.status, 'failed');
    assert.equal(by['full@local.test']?.enhanced, '5.2.2');
    const [msg] = await s.waitForMessages(1);
    assert.deepEqual(msg?.to, ['ok@local.test']);
  });

  it('reuses one connection for two jobs to the same destination', async () => {
    const s = await sink({ host: '127.0.0.10' });
    const route = { kind: 'smarthost', host: s.host, port: s.port, tls: 'opportunistic' } as const;
    const a = await h.deliver(makeJob(route, ['one@far.test']));
    const b = await h.deliver(makeJob(route, ['two@far.test']));
    assert.equal(a.outcomes[0]?.status, 'delivered');
    assert.equal(b.outcomes[0]?.status, 'delivered');
    const msgs = await s.waitForMessages(2);
    assert.equal(s.connections, 1, 'both messages over one TCP connection');
    assert.equal(msgs[0]?.connection, msgs[1]?.connection);
  });

  it('a 5xx DATA reply fails every accepted recipient with the remote text', async () => {
    const s = await sink({ onData: () => ({ code: 554, message: '5.6.0 Content rejected' }) });
    const route = { kind: 'smarthost', host: s.host, port: s.port, tls: 'none' } as const;
    const r = await h.deliver(makeJob(route, ['a@far.test', 'b@far.test']));
    for (const o of r.outcomes) {
      assert.equal(o.status, 'failed');
      assert.match(o.response, /554 5\.6\.0 Content rejected/);
    }
  });

  it('signs with DKIM when the job carries a key (verified with mailauth)', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const pub = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    const s = await sink({});
    const route = { kind: 'smarthost', host: s.host, port: s.port, tls: 'none' } as const;
    const r = await h.deliver(
      makeJob(route, ['signed@far.test'], {
        dkim: {
          domain: 'origin.test',
          selector: 'sel1',
          privateKey: h.secrets.seal(pem, SECRET_CONTEXT.dkimKey('origin.test', 'sel1')),
        },
      }),
    );
    assert.equal(r.outcomes[0]?.status, 'delivered');
    const [msg] = await s.waitForMessages(1);
    assert.match(msg!.raw.toString(), /^DKIM-Signature:/im);
    const verified = await dkimVerify(msg!.raw, {
      resolver: async (name: string, rr: string) => {
        if (name === 'sel1._domainkey.origin.test' && rr === 'TXT') return [[`v=DKIM1; k=rsa; p=${pub}`]];
        throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
      },
    });
    assert.equal(verified.results[0]?.status.result, 'pass', JSON.stringify(verified.results[0]?.status));
  });

  it('a job whose body object was deleted fails with "message body missing"', async () => {
    const s = await sink({});
    const route = { kind: 'smarthost', host: s.host, port: s.port, tls: 'none' } as const;
    const r = await h.deliver(makeJob(route, ['x@far.test'], { body: { object: 'gone-object', size: 10 } }));
    assert.equal(r.outcomes[0]?.status, 'failed');
    assert.match(r.outcomes[0]!.response, /message body missing/);
  });
});

describe('a worker killed mid-job', () => {
  let h: Harness;
  let slow: SmtpSink;
  before(async () => {
    h = await startHarness();
    slow = await startSmtpSink({ delayMs: 700 });
  });
  after(async () => {
    await h?.close();
    await slow?.close();
  });

  it('leaves the job unacked so another worker delivers it after ack_wait', async () => {
    const dying = await h.startWorker({ pool: 'crash', ackWaitMs: 2000 });
    const job = makeJob(
      { kind: 'smarthost', host: slow.host, port: slow.port, tls: 'none' },
      ['late@far.test'],
      {
        pool: 'crash',
      },
    );
    await h.publish(job);
    // Wait (bounded) until the first worker is talking to the sink, then cut its NATS connection.
    for (let i = 0; i < 100 && slow.connections === 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(slow.connections >= 1, 'first worker started the job');
    await dying.nc.close();
    await h.startWorker({ pool: 'crash', ackWaitMs: 2000 });
    const r = await h.waitResult(job.jobId, 60_000);
    assert.equal(r.outcomes[0]?.status, 'delivered');
    assert.ok(slow.connections >= 2, 'the job was delivered again by the second worker');
  });
});
