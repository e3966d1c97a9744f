/**
 * DANE (RFC 7672) against real peers: a validating resolver (unbound) serving a zone signed here
 * (ldns-signzone) and an unsigned one; smtp-server sinks with self-signed certificates (DANE-EE needs no CA).
 * The resolver is the only DNS delivery uses (POSTERN_DNS_SERVERS), so MX, A and TLSA all come from it.
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Route } from '../../../services/common/types.ts';
import { startValidatingResolver, type ValidatingResolver } from '../../helpers/dnssec-dns.ts';
import { freePort, type SmtpSink, startSmtpSink } from '../../helpers/smtp-sink.ts';
import { createTestCa, type TestCa } from '../../helpers/test-ca.ts';
import { type Harness, makeJob, startHarness } from './harness.ts';

const dane = (domain: string): Route => ({ kind: 'mx', domain, tls: 'dane' });

/** TLSA "3 1 1": DANE-EE, SubjectPublicKeyInfo, SHA-256 (RFC 7671 §5.1's recommended form). */
function tlsa311(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return `3 1 1 ${createHash('sha256').update(spki).digest('hex')}`;
}

describe('DANE (unbound validating a locally signed zone)', () => {
  let h: Harness;
  let ca: TestCa;
  let dns: ValidatingResolver;
  const sinks: Record<string, SmtpSink> = {};

  before(async () => {
    ca = createTestCa();
    const port = await freePort('127.0.0.41');
    const good = ca.selfSigned(['mx-good.dane.test']);
    const other = ca.selfSigned(['mx-bad.dane.test']);
    const unrelated = ca.selfSigned(['nobody.test']);
    sinks['good'] = await startSmtpSink({ host: '127.0.0.41', port, tls: good });
    sinks['bad'] = await startSmtpSink({ host: '127.0.0.42', port, tls: other });
    sinks['plain'] = await startSmtpSink({ host: '127.0.0.43', port });
    const tcp = `_${port}._tcp`;
    dns = await startValidatingResolver([
      {
        name: 'dane.test',
        signed: true,
        records: [
          'good IN MX 10 mx-good.dane.test.',
          'mx-good IN A 127.0.0.41',
          `${tcp}.mx-good IN TLSA ${tlsa311(good.cert)}`,
          // The TLSA record names a key the server does not have.
          'bad IN MX 10 mx-bad.dane.test.',
          'mx-bad IN A 127.0.0.42',
          `${tcp}.mx-bad IN TLSA ${tlsa311(unrelated.cert)}`,
          // TLSA published, but the host offers no STARTTLS.
          'plain IN MX 10 mx-plain.dane.test.',
          'mx-plain IN A 127.0.0.43',
          `${tcp}.mx-plain IN TLSA ${tlsa311(good.cert)}`,
          // A correct record whose signature was broken after signing: the resolver answers SERVFAIL.
          'bogus IN MX 10 mx-bogus.dane.test.',
          'mx-bogus IN A 127.0.0.41',
          `${tcp}.mx-bogus IN TLSA ${tlsa311(good.cert)}`,
          // Signed zone, no TLSA for the host: authenticated denial → no DANE.
          'notlsa IN MX 10 mx-notlsa.dane.test.',
          'mx-notlsa IN A 127.0.0.43',
        ],
        tamperTlsa: [`${tcp}.mx-bogus`],
      },
      {
        // Unsigned zone: its TLSA record (which matches nothing) is unauthenticated and must be ignored.
        name: 'insecure.test',
        signed: false,
        records: [
          '@ IN MX 10 mx.insecure.test.',
          'mx IN A 127.0.0.42',
          `${tcp}.mx IN TLSA ${tlsa311(unrelated.cert)}`,
        ],
      },
    ]);
    h = await startHarness();
    await h.startWorker({ dnsServers: [dns.server], mxPort: port, allowLoopbackMx: true });
  });

  after(async () => {
    await h?.close();
    await dns?.close();
    for (const s of Object.values(sinks)) await s.close();
    ca?.close();
  });

  const arrivals = (name: string, rcpt: string) => sinks[name]!.messages.filter((m) => m.to.includes(rcpt));

  it('an authenticated DANE-EE record matching the server key: delivered over TLS, verified (self-signed is fine)', async () => {
    const r = await h.deliver(makeJob(dane('good.dane.test'), ['a@good.dane.test']));
    const o = r.outcomes[0]!;
    assert.equal(o.status, 'delivered', o.response);
    assert.deepEqual([o.tls?.applied, o.tls?.verified], ['dane', true]);
    assert.equal(arrivals('good', 'a@good.dane.test')[0]?.secure, true);
  });

  it('an authenticated TLSA record that matches no certificate: deferred (tlsa-invalid), nothing sent', async () => {
    const r = await h.deliver(makeJob(dane('bad.dane.test'), ['a@bad.dane.test']));
    const o = r.outcomes[0]!;
    assert.equal(o.status, 'deferred');
    assert.equal(o.enhanced, '4.7.5');
    assert.equal(o.tls?.failure, 'tlsa-invalid');
    assert.equal(arrivals('bad', 'a@bad.dane.test').length, 0);
  });

  it('TLSA published but no STARTTLS: deferred, never in clear text', async () => {
    const r = await h.deliver(makeJob(dane('plain.dane.test'), ['a@plain.dane.test']));
    const o = r.outcomes[0]!;
    assert.equal(o.status, 'deferred');
    assert.match(o.response, /TLS required \(dane\) but not offered by mx-plain\.dane\.test:\d+/);
    assert.equal(arrivals('plain', 'a@plain.dane.test').length, 0);
  });

  it('a TLSA answer that fails validation (bogus): deferred, not treated as "no TLSA"', async () => {
    const r = await h.deliver(makeJob(dane('bogus.dane.test'), ['a@bogus.dane.test']));
    const o = r.outcomes[0]!;
    assert.equal(o.status, 'deferred');
    assert.match(o.response, /DANE|TLSA/);
    assert.equal(arrivals('good', 'a@bogus.dane.test').length, 0);
  });

  it('no TLSA record (authenticated denial): the non-DANE behaviour, opportunistic', async () => {
    const r = await h.deliver(makeJob(dane('notlsa.dane.test'), ['a@notlsa.dane.test']));
    assert.equal(r.outcomes[0]!.status, 'delivered');
    assert.equal(r.outcomes[0]!.tls?.applied, 'opportunistic');
  });

  it('a TLSA record from an unsigned zone is ignored: opportunistic delivery despite its mismatch', async () => {
    const r = await h.deliver(makeJob(dane('insecure.test'), ['a@insecure.test']));
    const o = r.outcomes[0]!;
    assert.equal(o.status, 'delivered', o.response);
    assert.equal(o.tls?.applied, 'opportunistic');
    assert.equal(arrivals('bad', 'a@insecure.test')[0]?.secure, true);
  });
});
