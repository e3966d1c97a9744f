/**
 * Large bodies (issue #10): an object-store body streams from JetStream into the SMTP socket, against a real
 * nats-server and a real smtp-server sink. What arrives is byte-exact (hash compared), DKIM-signed when the job
 * has a key, and a body store failing mid-DATA defers every recipient: the peer never gets the final dot, so never
 * a message it would take for complete, and the connection is not used again.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { BodyStore } from '../../../services/common/body-store.ts';
import { SECRET_CONTEXT } from '../../../services/common/secrets.ts';
import { dropLastChunk, largeMessage, sha256 } from '../../helpers/large-body.ts';
import { type SmtpSink, startSmtpSink } from '../../helpers/smtp-sink.ts';
import { type Harness, makeJob, startHarness } from './harness.ts';

const MiB = 1024 * 1024;

describe('large bodies stream from the object store into the SMTP socket', () => {
  let h: Harness;
  let sink: SmtpSink;
  let bodies: BodyStore;

  before(async () => {
    h = await startHarness();
    bodies = new BodyStore(h.nc);
    sink = await startSmtpSink({ host: '127.0.0.9' });
    await h.startWorker({ concurrency: 2 });
  });
  after(async () => {
    await h?.close();
    await sink?.close();
  });

  const route = () => ({ kind: 'smarthost', host: sink.host, port: sink.port, tls: 'none' }) as const;

  /** A job whose body is `raw`, stored the way ingress stores it (the object store above the max payload). */
  const jobWith = async (raw: Buffer, recipients: string[], over: Parameters<typeof makeJob>[2] = {}) => {
    const job = makeJob(route(), recipients, over);
    job.body = await bodies.put(job.messageId, raw, 10_000);
    assert.ok('object' in job.body, 'the body is in the object store');
    return job;
  };

  it('a 6 MiB body arrives byte-exact', async () => {
    const raw = largeMessage(6 * MiB, 'six mebibytes');
    const before = sink.messages.length;
    const r = await h.deliver(await jobWith(raw, ['big@far.test']), 60_000);
    assert.equal(r.outcomes[0]?.status, 'delivered', r.outcomes[0]?.response);
    const msg = (await sink.waitForMessages(before + 1))[before]!;
    assert.equal(msg.raw.length, raw.length);
    assert.equal(sha256(msg.raw), sha256(raw));
  });

  it('DKIM-signed: the signature header then the body byte-exact, and the signature verifies', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const pub = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    const raw = largeMessage(4 * MiB, 'signed and large');
    const job = await jobWith(raw, ['signed@far.test'], {
      dkim: {
        domain: 'origin.test',
        selector: 'sel1',
        privateKey: h.secrets.seal(pem, SECRET_CONTEXT.dkimKey('origin.test', 'sel1')),
      },
    });
    const before = sink.messages.length;
    const r = await h.deliver(job, 60_000);
    assert.equal(r.outcomes[0]?.status, 'delivered', r.outcomes[0]?.response);
    const msg = (await sink.waitForMessages(before + 1))[before]!;
    const header = msg.raw.subarray(0, msg.raw.length - raw.length).toString();
    assert.match(header, /^DKIM-Signature: [\s\S]*\r\n$/);
    assert.equal(sha256(msg.raw.subarray(header.length)), sha256(raw));
    const verified = await dkimVerify(msg.raw, {
      resolver: async (name: string, rr: string) => {
        if (name === 'sel1._domainkey.origin.test' && rr === 'TXT') return [[`v=DKIM1; k=rsa; p=${pub}`]];
        throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
      },
    });
    assert.equal(verified.results[0]?.status.result, 'pass', JSON.stringify(verified.results[0]?.status));
  });

  it('the body store fails mid-DATA: every recipient deferred, no message at the peer, the connection dropped', async () => {
    const raw = largeMessage(4 * MiB, 'cut short');
    const job = await jobWith(raw, ['one@far.test', 'two@far.test']);
    // Real damage: the object's last chunk removed from JetStream; the read gets the rest, then the obj
    // library's digest check fails.
    await dropLastChunk(h.nc, bodies, job.messageId);
    const accepted = sink.messages.length;
    const r = await h.deliver(job, 60_000);
    assert.deepEqual(
      r.outcomes.map((o) => [o.recipient, o.status, o.enhanced]),
      [
        ['one@far.test', 'deferred', '4.3.0'],
        ['two@far.test', 'deferred', '4.3.0'],
      ],
    );
    assert.match(r.outcomes[0]!.response, /digests do not match/);
    assert.equal(sink.messages.length, accepted, 'the peer accepted nothing');
    // The peer saw part of the DATA, then the connection ended without the dot.
    const deadline = Date.now() + 10_000;
    while (sink.aborted.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const [cut] = sink.aborted;
    assert.ok(
      cut && cut.bytes > 0 && cut.bytes < raw.length,
      `a partial DATA transfer (${cut?.bytes} bytes)`,
    );

    // The next message goes out on another connection: the broken one was never reused.
    const after = await h.deliver(makeJob(route(), ['next@far.test']));
    assert.equal(after.outcomes[0]?.status, 'delivered');
    const next = sink.messages.at(-1)!;
    assert.deepEqual(next.to, ['next@far.test']);
    assert.notEqual(next.connection, cut.connection);
  });
});
