/**
 * Secrets never sit in clear text in NATS (docs/secrets.md). Local mode with a smarthost that requires AUTH and a
 * DKIM key, both from Secret documents: every message of every stream and bucket (config, jobs waiting for a
 * retry, message state, results, events) and every file of the data directory is read raw, and neither the
 * password nor the private key appears — yet delivery authenticates to the smarthost and the mail arrives
 * DKIM-signed (verified with mailauth).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { eventually, startPostern, type TestPostern } from '../helpers/postern.ts';
import { type SmtpSink, startSmtpSink } from '../helpers/smtp-sink.ts';
import { swaks } from '../helpers/swaks.ts';

const PASSWORD = 'Sm4rthost-Secret-Pa55';
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const PEM = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const PUB = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
/** A line from the middle of the key's base64: found even if someone re-encoded the PEM headers away. */
const PEM_LINE = PEM.split('\n')[5]!;

/** Every stream's messages (subjects, headers, data) as one text, read straight from JetStream. */
async function everythingInJetStream(nc: NatsConnection): Promise<{ text: string; streams: string[] }> {
  const jsm = await jetstreamManager(nc);
  let text = '';
  const streams: string[] = [];
  for await (const si of jsm.streams.list()) {
    streams.push(si.config.name);
    for (let seq = si.state.first_seq; seq <= si.state.last_seq && si.state.messages > 0; seq++) {
      const m = await jsm.streams.getMessage(si.config.name, { seq }).catch(() => undefined); // deleted (work queue)
      if (!m) continue;
      text += `${m.subject}\n${m.header ? [...m.header.keys()].map((k) => `${k}: ${m.header!.get(k)}`).join('\n') : ''}\n`;
      text += Buffer.from(m.data).toString('utf8');
      // Values travelling base64-encoded (inline bodies) are searched decoded too.
      text += '\n';
    }
  }
  return { text, streams };
}

/** Every file under `dir` except the secrets key itself, as bytes (the JetStream store included). */
function everyFile(dir: string): Buffer[] {
  const out: Buffer[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...everyFile(p));
    else if (name !== 'secrets.key') out.push(readFileSync(p));
  }
  return out;
}

function assertNoSecret(where: string, text: string | Buffer) {
  const s = text.toString('latin1');
  assert.ok(!s.includes(PASSWORD), `${where} holds the smarthost password in clear text`);
  assert.ok(!s.includes('PRIVATE KEY'), `${where} holds a PEM private key`);
  assert.ok(!s.includes(PEM_LINE), `${where} holds the DKIM key's base64`);
  assert.ok(
    !s.includes(Buffer.from(PASSWORD).toString('base64')),
    `${where} holds the password base64-encoded`,
  );
}

describe('secrets at rest (local mode): nothing secret in clear text in NATS', () => {
  let smarthost: SmtpSink;
  let postern: TestPostern;
  let nc: NatsConnection;
  let refusedOnce = false;

  before(async () => {
    smarthost = await startSmtpSink({
      host: '127.0.0.9',
      auth: { user: 'relay-user', pass: PASSWORD },
      // The first attempt is deferred, so a delivery job waits in OUTBOUND (a JetStream schedule) while we look.
      onRcpt: () => {
        if (refusedOnce) return 'accept';
        refusedOnce = true;
        return { code: 451, message: '4.3.0 try again shortly' };
      },
    });
    postern = await startPostern({
      config: `
apiVersion: v1
kind: Secret
metadata: { name: relay-login }
stringData: { username: relay-user, password: ${PASSWORD} }
---
apiVersion: v1
kind: Secret
metadata: { name: origin-dkim }
stringData:
  private.key: |
${PEM.trim()
  .split('\n')
  .map((l) => `    ${l}`)
  .join('\n')}
---
apiVersion: postern.dev/v1alpha1
kind: MailDomain
metadata: { name: origin }
spec:
  domain: origin.test
  outbound: { dkim: { selector: sel1, keySecretRef: { name: origin-dkim } } }
---
apiVersion: postern.dev/v1alpha1
kind: RelayPolicy
metadata: { name: loopback }
spec:
  clients: { networks: [127.0.0.1/32] }
  delivery:
    smarthost: { host: ${smarthost.host}, port: ${smarthost.port}, tls: none, authSecretRef: { name: relay-login } }
    retry: { schedule: [2s] }
`,
    });
    nc = await connect({ servers: postern.natsUrl });
  });

  after(async () => {
    await nc?.close();
    await postern?.cleanup();
    await smarthost?.close();
  });

  it('the config, the waiting job and the store hold no password or key; delivery still authenticates and signs', async () => {
    const r = await swaks([
      '--server',
      `127.0.0.1:${postern.smtpPort}`,
      '--from',
      'me@origin.test',
      '--to',
      'you@far.test',
    ]);
    assert.equal(r.code, 0, r.transcript);

    // While the job waits for its retry, everything in JetStream is read raw.
    const waiting = await eventually('a deferred job waiting in OUTBOUND', async () => {
      const seen = await everythingInJetStream(nc);
      return /mail\.sched\./.test(seen.text) ? seen : undefined;
    });
    for (const s of ['KV_config', 'OUTBOUND', 'KV_messages', 'RESULTS', 'EVENTS'])
      assert.ok(waiting.streams.includes(s), s);
    assert.match(waiting.text, /"pass":"sealed:v1:/, 'the smarthost password is there, sealed');
    assert.match(waiting.text, /"privateKey":"sealed:v1:/, 'the DKIM key is there, sealed');
    // Control: what is stored in clear (the smarthost user name) is found by the same search.
    assert.match(waiting.text, /relay-user/);
    assertNoSecret('JetStream (job waiting for a retry)', waiting.text);

    const [msg] = await smarthost.waitForMessages(1, 60_000);
    assert.equal(msg?.authUser, 'relay-user');
    const verified = await dkimVerify(msg!.raw, {
      resolver: async (name: string, rr: string) => {
        if (name === 'sel1._domainkey.origin.test' && rr === 'TXT') return [[`v=DKIM1; k=rsa; p=${PUB}`]];
        throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
      },
    });
    assert.equal(verified.results[0]?.status.result, 'pass', JSON.stringify(verified.results[0]?.status));

    assertNoSecret('JetStream (after delivery)', (await everythingInJetStream(nc)).text);
    const files = everyFile(postern.dataDir);
    assert.ok(files.length > 5, 'the JetStream store files were read');
    assert.ok(
      files.some((f) => f.includes('relay-user')),
      'control: the store files hold the clear-text user name',
    );
    for (const f of files) assertNoSecret('a file in the data directory', f);
  });
});
