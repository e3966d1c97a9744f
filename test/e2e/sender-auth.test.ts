/**
 * Sender authentication of inbound mail, as a user sees it: Postern in local mode (real nats-server, ingress,
 * queue and delivery processes), SPF/DKIM/DMARC/ARC records and PTRs served by a real DNS server (dnsmasq) that
 * every service asks through POSTERN_DNS_SERVERS, a real SMTP client (nodemailer's SMTPConnection) connecting
 * from chosen 127.0.0.N addresses, and the MailDomains' mailbox store a real SMTP sink. Assertions are on the
 * client's replies and on the Authentication-Results header of the message as the mailbox store receives it.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { authenticate, dkimSign, sealMessage } from 'mailauth';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { createDnsResolver } from '../../services/common/dns-resolver.ts';
import { callAdmin } from '../../services/local/queue-client.ts';
import { startTestDns, type TestDns } from '../helpers/dns.ts';
import { eventually, startPostern, type TestPostern } from '../helpers/postern.ts';
import { type SinkMessage, type SmtpSink, startSmtpSink } from '../helpers/smtp-sink.ts';

const AUTHSERV = 'mx.postern.test';
/** The address strict.test's SPF permits, with a PTR/A pair (iprev passes). */
const GOOD_IP = '127.0.0.10';
/** Not in any SPF record, no PTR (iprev fails). */
const BAD_IP = '127.0.0.11';
/** The forwarder fwd.test, permitted by fwd.test's SPF. */
const FWD_IP = '127.0.0.20';
/** A client of the RelayPolicy that ARC-seals what it relays. */
const SEALED_IP = '127.0.0.30';

function rsaKey(): { privateKey: string; record: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const p = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  // A TXT character-string holds at most 255 bytes (RFC 1035 §3.3): the helper splits on ','.
  const record = `v=DKIM1; k=rsa; p=${p}`.match(/.{1,200}/g)?.join(',') ?? '';
  return { privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), record };
}

const dkimKey = rsaKey();
const arcKey = rsaKey();

interface Reply {
  code: number;
  text: string;
}

/** One SMTP transaction from `localAddress` (after AUTH when `auth` is given); resolves with the DATA reply. */
function send(
  port: number,
  localAddress: string,
  helo: string,
  from: string,
  to: string,
  raw: string | Buffer,
  auth?: { user: string; pass: string },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const conn = new SMTPConnection({ port, host: '127.0.0.1', localAddress, name: helo, ignoreTLS: true });
    conn.once('error', reject);
    const transaction = () =>
      conn.send({ from, to: [to] }, raw, (err, info) => {
        conn.quit();
        if (err) {
          const e = err as Error & { responseCode?: number; response?: string };
          if (!e.responseCode) return reject(err);
          return resolve({ code: e.responseCode, text: e.response ?? '' });
        }
        resolve({ code: 250, text: info.response });
      });
    conn.connect(() => {
      if (!auth) return transaction();
      conn.login(auth, (err) => (err ? reject(err) : transaction()));
    });
  });
}

function message(from: string, to: string, subject: string, extra = ''): string {
  return [
    `From: <${from}>`,
    `To: <${to}>`,
    `Subject: ${subject}`,
    `Message-ID: <${subject.replace(/\W/g, '')}.${Date.now()}@${from.split('@')[1]}>`,
    'Date: Thu, 26 Nov 2026 12:00:00 +0000',
    ...(extra ? [extra] : []),
    '',
    `Body of ${subject}.`,
    '',
  ].join('\r\n');
}

async function signed(raw: string): Promise<string> {
  const { signatures } = await dkimSign(raw, {
    signatureData: [{ signingDomain: 'strict.test', selector: 'sel', privateKey: dkimKey.privateKey }],
  } as never);
  return signatures + raw;
}

/**
 * A message from strict.test (DKIM-signed) as the list fwd.test forwards it: the list changes the Subject (the
 * author's signature breaks) and seals what it saw on arrival as ARC instance 1.
 */
async function forwardedByList(subject: string): Promise<Buffer> {
  const original = await signed(message('news@strict.test', 'list@fwd.test', subject));
  const modified = original.replace(`Subject: ${subject}`, `Subject: [list] ${subject}`);
  const seal = await sealMessage(Buffer.from(modified), {
    signingDomain: 'fwd.test',
    selector: 'arc',
    privateKey: arcKey.privateKey,
    authResults:
      'mx.fwd.test; dkim=pass header.d=strict.test; spf=pass smtp.mailfrom=news@strict.test; dmarc=pass header.from=strict.test',
    cv: 'none',
  });
  return Buffer.concat([seal, Buffer.from(modified)]);
}

/** Our Authentication-Results field (unfolded) in a message that reached the mailbox store. */
function ourResults(m: SinkMessage): string[] {
  const head = m.raw.toString('latin1').split('\r\n\r\n')[0] ?? '';
  return head
    .replace(/\r\n[ \t]+/g, ' ')
    .split('\r\n')
    .filter((l) => /^Authentication-Results:/i.test(l));
}

describe('sender authentication of inbound mail (local mode, real DNS)', () => {
  let dns: TestDns;
  let sink: SmtpSink;
  let postern: TestPostern;
  const arrived = (subject: string) =>
    eventually(`"${subject}" at the mailbox store`, () =>
      sink.messages.find((m) => m.raw.toString('latin1').includes(`Subject: ${subject}\r\n`)),
    );

  before(async () => {
    sink = await startSmtpSink({ host: '127.0.0.5' });
    dns = await startTestDns({
      a: [
        // --host-record gives the PTR as well: iprev passes for these.
        { name: 'out.strict.test', address: GOOD_IP },
        { name: 'mx.fwd.test', address: FWD_IP },
      ],
      txt: [
        { name: 'strict.test', text: `v=spf1 ip4:${GOOD_IP} -all` },
        { name: '_dmarc.strict.test', text: 'v=DMARC1; p=reject' },
        { name: 'sel._domainkey.strict.test', text: dkimKey.record },
        { name: 'quar.test', text: `v=spf1 ip4:${GOOD_IP} -all` },
        { name: '_dmarc.quar.test', text: 'v=DMARC1; p=quarantine' },
        { name: 'fwd.test', text: `v=spf1 ip4:${FWD_IP} -all` },
        { name: 'arc._domainkey.fwd.test', text: arcKey.record },
        { name: 'arc._domainkey.seal.test', text: arcKey.record },
      ],
    });
    const domain = (name: string, domainName: string, authentication?: string) => `
apiVersion: postern.dev/v1alpha1
kind: MailDomain
metadata: { name: ${name} }
spec:
  domain: ${domainName}
  inbound:
    enabled: true
    deliverTo: { host: 127.0.0.5, port: ${sink.port}, protocol: smtp, tls: none }
${authentication ? `    authentication: ${authentication}\n` : ''}---`;
    postern = await startPostern({
      config: [
        domain(
          'enforce',
          'enforce.test',
          '{ dmarc: enforce, quarantine: hold, trustedArcSealers: [fwd.test] }',
        ),
        domain('untrusting', 'untrusting.test', '{ dmarc: enforce }'),
        domain('tagged', 'tag.test'),
        domain('off', 'off.test', '{ dmarc: off }'),
        domain('spf', 'spf.test', '{ spfFail: reject }'),
        `
apiVersion: postern.dev/v1alpha1
kind: RelayPolicy
metadata: { name: sealer }
spec:
  clients: { networks: [${SEALED_IP}/32], authSecretRef: { name: sealer-users } }
  arcSeal: { domain: seal.test, selector: arc, keySecretRef: { name: seal-key } }
  delivery:
    smarthost: { host: 127.0.0.5, port: ${sink.port}, tls: none }
---
apiVersion: v1
kind: Secret
metadata: { name: sealer-users }
stringData: { app: app-pass }
---
apiVersion: v1
kind: Secret
metadata: { name: seal-key }
data: { private.key: ${Buffer.from(arcKey.privateKey).toString('base64')} }`,
      ].join('\n'),
      env: { POSTERN_DNS_SERVERS: dns.server, POSTERN_AUTHSERV_ID: AUTHSERV },
    });
  });
  after(async () => {
    await postern?.cleanup();
    await sink?.close();
    await dns?.close();
  });

  it('a message from a permitted address with an aligned DKIM signature passes everything', async () => {
    const raw = await signed(message('news@strict.test', 'a@enforce.test', 'all pass'));
    const r = await send(
      postern.smtpPort,
      GOOD_IP,
      'out.strict.test',
      'news@strict.test',
      'a@enforce.test',
      raw,
    );
    assert.equal(r.code, 250, r.text);
    const results = ourResults(await arrived('all pass'));
    assert.equal(results.length, 1);
    const ar = results[0] as string;
    assert.match(ar, new RegExp(`^Authentication-Results: ${AUTHSERV.replaceAll('.', '\\.')};`));
    assert.match(ar, /iprev=pass \(out\.strict\.test\) policy\.iprev=127\.0\.0\.10/);
    assert.match(ar, /spf=pass [^;]*smtp\.mailfrom=news@strict\.test/);
    assert.match(ar, /dkim=pass [^;]*header\.[di]=@?strict\.test/);
    assert.match(ar, /dmarc=pass [^;]*header\.from=strict\.test/);
  });

  it('SPF fail with p=reject under dmarc: enforce gets 550 5.7.1 at end of DATA', async () => {
    const raw = message('ceo@strict.test', 'a@enforce.test', 'forged reject');
    const r = await send(postern.smtpPort, BAD_IP, 'bad.example', 'ceo@strict.test', 'a@enforce.test', raw);
    assert.equal(r.code, 550);
    assert.match(
      r.text,
      /^550 5\.7\.1 Message rejected: it fails the DMARC policy of strict\.test \(p=reject\)/,
    );
  });

  it('dmarc: tag accepts the same forgery and records every failure in the header', async () => {
    const raw = message('ceo@strict.test', 'a@tag.test', 'forged tag');
    const r = await send(postern.smtpPort, BAD_IP, 'bad.example', 'ceo@strict.test', 'a@tag.test', raw);
    assert.equal(r.code, 250, r.text);
    const ar = ourResults(await arrived('forged tag')).join('\n');
    assert.match(ar, /iprev=fail policy\.iprev=127\.0\.0\.11/);
    assert.match(ar, /spf=fail [^;]*smtp\.mailfrom=ceo@strict\.test/);
    assert.match(ar, /dmarc=fail [^;]*header\.from=strict\.test/);
  });

  it('dmarc: off accepts it and evaluates no DMARC (SPF, DKIM and iprev are still recorded)', async () => {
    const raw = message('ceo@strict.test', 'a@off.test', 'forged off');
    const r = await send(postern.smtpPort, BAD_IP, 'bad.example', 'ceo@strict.test', 'a@off.test', raw);
    assert.equal(r.code, 250, r.text);
    const ar = ourResults(await arrived('forged off')).join('\n');
    assert.match(ar, /spf=fail/);
    assert.match(ar, /iprev=fail/);
    assert.doesNotMatch(ar, /dmarc=/);
  });

  it('spfFail: reject refuses an SPF hard fail with 550 5.7.23 naming the domain and the address', async () => {
    const raw = message('ceo@strict.test', 'a@spf.test', 'spf hard fail');
    const r = await send(postern.smtpPort, BAD_IP, 'bad.example', 'ceo@strict.test', 'a@spf.test', raw);
    assert.equal(r.code, 550);
    assert.match(r.text, /^550 5\.7\.23 .*SPF record of strict\.test does not permit 127\.0\.0\.11/);
  });

  it('p=quarantine under quarantine: hold keeps the message on hold until an operator releases it', async () => {
    const raw = message('billing@quar.test', 'a@enforce.test', 'quarantined');
    const r = await send(postern.smtpPort, BAD_IP, 'bad.example', 'billing@quar.test', 'a@enforce.test', raw);
    assert.equal(r.code, 250, r.text);
    const id = /queued as (\S+)/.exec(r.text)?.[1];
    assert.ok(id, r.text);
    const admin = `http://127.0.0.1:${postern.adminPort}`;
    const held = await eventually('the message held in the queue', async () => {
      const q = (await callAdmin(admin, 'GET', `/queue/${id}`).catch(() => undefined)) as
        | { jobs?: Record<string, { status: string }> }
        | undefined;
      return q?.jobs && Object.values(q.jobs).every((j) => j.status === 'held') ? q : undefined;
    });
    assert.ok(Object.keys(held.jobs ?? {}).length > 0);
    assert.equal(
      sink.messages.some((m) => m.raw.includes('Subject: quarantined\r\n')),
      false,
      'a held message is not delivered',
    );
    await callAdmin(admin, 'POST', `/queue/${id}/release`);
    const ar = ourResults(await arrived('quarantined')).join('\n');
    assert.match(ar, /dmarc=fail [^;]*header\.from=quar\.test[^;]*\(held for review by local policy\)/);
  });

  it('forged Authentication-Results claiming our authserv-id are removed; others stay', async () => {
    const raw = await signed(
      message(
        'news@strict.test',
        'a@tag.test',
        'forged results',
        `Authentication-Results: ${AUTHSERV}; dmarc=pass header.from=bank.test\r\nAuthentication-Results: elsewhere.test; spf=pass`,
      ),
    );
    const r = await send(postern.smtpPort, GOOD_IP, 'out.strict.test', 'news@strict.test', 'a@tag.test', raw);
    assert.equal(r.code, 250, r.text);
    const m = await arrived('forged results');
    const results = ourResults(m);
    assert.equal(results.filter((l) => l.includes(AUTHSERV)).length, 1, results.join('\n'));
    assert.doesNotMatch(m.raw.toString(), /bank\.test/);
    assert.match(m.raw.toString(), /Authentication-Results: elsewhere\.test; spf=pass/);
  });

  describe('a RelayPolicy with arcSeal seals the mail it relays (no verification of its own clients)', () => {
    const verifyArc = async (m: SinkMessage) => {
      const res = await authenticate(m.raw, {
        ip: '127.0.0.1',
        helo: 'mx.postern.test',
        sender: m.from,
        mta: 'receiver.test',
        resolver: createDnsResolver([dns.server]).resolve,
        disableBimi: true,
      });
      const arc = res.arc || undefined;
      const aar = (m.raw.toString('latin1').split('\r\n\r\n')[0] ?? '')
        .replace(/\r\n[ \t]+/g, ' ')
        .split('\r\n')
        .find((l) => /^ARC-Authentication-Results:/i.test(l));
      return { result: arc?.status.result, aar };
    };

    it('a network client: instance 1 sealed by seal.test, verifiable at the next hop, no results of its own', async () => {
      const raw = message('app@corp.test', 'someone@far.test', 'sealed network');
      const r = await send(
        postern.smtpPort,
        SEALED_IP,
        'app.corp.test',
        'app@corp.test',
        'someone@far.test',
        raw,
      );
      assert.equal(r.code, 250, r.text);
      const m = await arrived('sealed network');
      assert.deepEqual(ourResults(m), [], 'relayed mail is not verified');
      const { result, aar } = await verifyArc(m);
      assert.equal(result, 'pass');
      assert.match(
        aar ?? '',
        new RegExp(`^ARC-Authentication-Results: i=1; ${AUTHSERV.replaceAll('.', '\\.')}; none`),
      );
      assert.match(m.raw.toString('latin1'), /ARC-Seal: i=1; [\s\S]*?d=seal\.test; s=arc/);
    });

    it('its client writing to an inbound domain and a remote one (mixed): not verified, forged results still removed', async () => {
      const raw = message(
        'app@corp.test',
        'a@tag.test',
        'mixed own client',
        `Authentication-Results: ${AUTHSERV}; dmarc=pass header.from=bank.test`,
      );
      const conn = await new Promise<SMTPConnection>((resolve, reject) => {
        const c = new SMTPConnection({
          port: postern.smtpPort,
          host: '127.0.0.1',
          localAddress: SEALED_IP,
          name: 'app.corp.test',
          ignoreTLS: true,
        });
        c.once('error', reject);
        c.connect(() => resolve(c));
      });
      const info = await new Promise<{ accepted: unknown[] }>((resolve, reject) =>
        conn.send({ from: 'app@corp.test', to: ['a@tag.test', 'mixed@far.test'] }, raw, (err, i) =>
          err ? reject(err) : resolve(i),
        ),
      );
      conn.quit();
      assert.deepEqual(info.accepted, ['a@tag.test', 'mixed@far.test']);
      await eventually('both copies at the sink', () =>
        sink.messages.filter((m) => m.raw.includes('Subject: mixed own client\r\n')).length >= 2
          ? true
          : undefined,
      );
      for (const m of sink.messages.filter((x) => x.raw.includes('Subject: mixed own client\r\n'))) {
        assert.deepEqual(ourResults(m), [], 'no verification header, and the forged one is gone');
        assert.doesNotMatch(m.raw.toString(), /bank\.test/);
      }
    });

    it('an authenticated client: the seal records auth=pass with its identity', async () => {
      const raw = message('app@corp.test', 'other@far.test', 'sealed auth');
      const r = await send(
        postern.submissionPort,
        '127.0.0.31',
        'app.corp.test',
        'app@corp.test',
        'other@far.test',
        raw,
        {
          user: 'app',
          pass: 'app-pass',
        },
      );
      assert.equal(r.code, 250, r.text);
      const { result, aar } = await verifyArc(await arrived('sealed auth'));
      assert.equal(result, 'pass');
      assert.match(aar ?? '', /auth=pass smtp\.auth=app/);
    });
  });

  it('a message that already has an ARC chain is validated and sealed as the next instance (cv=pass)', async () => {
    const raw = await forwardedByList('chained');
    const r = await send(
      postern.smtpPort,
      SEALED_IP,
      'app.corp.test',
      'list@fwd.test',
      'third@far.test',
      raw,
    );
    assert.equal(r.code, 250, r.text);
    const m = await arrived('[list] chained');
    const text = m.raw.toString('latin1').replace(/\r\n[ \t]+/g, ' ');
    assert.match(text, /ARC-Seal: i=2; [^\r]*cv=pass[^\r]*d=seal\.test/);
    const res = await authenticate(m.raw, {
      ip: '127.0.0.1',
      mta: 'receiver.test',
      resolver: createDnsResolver([dns.server]).resolve,
      disableBimi: true,
    });
    assert.equal(res.arc ? res.arc.status.result : undefined, 'pass');
  });

  describe('a mailing list that rewrites the subject (DKIM broken) and seals the chain with ARC', () => {
    let forwarded: Buffer;
    before(async () => {
      forwarded = await forwardedByList('newsletter');
    });

    it('passes for a domain that trusts the sealer, with the override in the header', async () => {
      const r = await send(
        postern.smtpPort,
        FWD_IP,
        'mx.fwd.test',
        'list@fwd.test',
        'a@enforce.test',
        forwarded,
      );
      assert.equal(r.code, 250, r.text);
      const ar = ourResults(await arrived('[list] newsletter')).join('\n');
      assert.match(ar, /arc=pass/);
      assert.match(ar, /dmarc=fail [^;]*\(accepted: trusted ARC sealer fwd\.test\)/);
      assert.match(ar, /iprev=pass \(mx\.fwd\.test\)/);
    });

    it('is refused with 550 5.7.1 by a domain that trusts no sealer', async () => {
      const r = await send(
        postern.smtpPort,
        FWD_IP,
        'mx.fwd.test',
        'list@fwd.test',
        'a@untrusting.test',
        forwarded,
      );
      assert.equal(r.code, 550);
      assert.match(r.text, /^550 5\.7\.1 .*strict\.test/);
    });
  });
});
