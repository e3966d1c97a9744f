/**
 * TLS policy per route against real peers: smtp-server sinks that do and do not offer STARTTLS, with
 * certificates from a local test CA (trusted through POSTERN_TLS_CA_FILE), self-signed or for the wrong name;
 * dnsmasq for MX/A/TXT; an HTTPS MTA-STS policy server on 127.0.0.30:443. Nothing leaves the machine.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { Kvm } from '@nats-io/kv';
import type { Route } from '../../../services/common/types.ts';
import { MTA_STS_BUCKET } from '../../../services/delivery/mta-sts.ts';
import { startTestDns, type TestDns } from '../../helpers/dns.ts';
import { freePort, type SmtpSink, startSmtpSink } from '../../helpers/smtp-sink.ts';
import { createTestCa, type TestCa } from '../../helpers/test-ca.ts';
import { type Harness, makeJob, startHarness } from './harness.ts';

const POLICY_HOST = '127.0.0.30';
const mx = (domain: string, tls: Route['tls']): Route => ({ kind: 'mx', domain, tls });

describe('TLS policy per route (real sinks, test CA, MTA-STS over HTTPS)', () => {
  let h: Harness;
  let dns: TestDns;
  let ca: TestCa;
  let policyServer: Server;
  const policyFetches: string[] = [];
  const sinks: Record<string, SmtpSink> = {};
  const smarthost = (name: string, tls: Route['tls']): Route => ({
    kind: 'smarthost',
    host: sinks[name]!.host,
    port: sinks[name]!.port,
    tls,
  });

  before(async () => {
    ca = createTestCa();
    const port = await freePort('127.0.0.21');
    sinks['plain'] = await startSmtpSink({ host: '127.0.0.21', port });
    sinks['trusted'] = await startSmtpSink({
      host: '127.0.0.22',
      port,
      tls: ca.issue(['mx.verify.test', 'mx.sts-enforce.test', 'mx.sts-mismatch.test', '127.0.0.22']),
    });
    sinks['selfsigned'] = await startSmtpSink({
      host: '127.0.0.23',
      port,
      tls: ca.selfSigned(['mx.selfsigned.test', 'mx.sts-badcert.test', 'mx.sts-testing.test', '127.0.0.23']),
    });
    sinks['wrongname'] = await startSmtpSink({
      host: '127.0.0.24',
      port,
      tls: ca.issue(['somewhere-else.test', '127.0.0.99']),
    });

    // RFC 8461 §3.3: the policy at https://mta-sts.<domain>/.well-known/mta-sts.txt, text/plain.
    const policies: Record<string, string> = {
      'mta-sts.sts-enforce.test': 'version: STSv1\nmode: enforce\nmx: mx.sts-enforce.test\nmax_age: 86400\n',
      'mta-sts.sts-badcert.test': 'version: STSv1\nmode: enforce\nmx: mx.sts-badcert.test\nmax_age: 86400\n',
      'mta-sts.sts-mismatch.test': 'version: STSv1\nmode: enforce\nmx: mx.elsewhere.test\nmax_age: 86400\n',
      'mta-sts.sts-testing.test': 'version: STSv1\nmode: testing\nmx: *.sts-testing.test\nmax_age: 86400\n',
    };
    policyServer = createServer({ ...ca.issue(Object.keys(policies)) }, (req, res) => {
      const host = String(req.headers.host ?? '');
      policyFetches.push(host);
      const body = req.url === '/.well-known/mta-sts.txt' ? policies[host] : undefined;
      res.writeHead(body ? 200 : 404, { 'content-type': 'text/plain' }).end(body ?? 'not found');
    });
    await new Promise<void>((resolve) => policyServer.listen(443, POLICY_HOST, resolve));

    const sts = (d: string) => [{ name: `_mta-sts.${d}`, text: 'v=STSv1; id=20240101T000000' }];
    dns = await startTestDns({
      mx: [
        ['req-plain.test', 'mx.req-plain.test'],
        ['opp-plain.test', 'mx.req-plain.test'],
        ['verify.test', 'mx.verify.test'],
        ['verify-self.test', 'mx.selfsigned.test'],
        ['verify-name.test', 'mx.wrongname.test'],
        ['sts-enforce.test', 'mx.sts-enforce.test'],
        ['sts-badcert.test', 'mx.sts-badcert.test'],
        ['sts-mismatch.test', 'mx.sts-mismatch.test'],
        ['sts-testing.test', 'mx.sts-testing.test'],
        ['sts-none.test', 'mx.req-plain.test'],
      ].map(([domain, exchange]) => ({ domain: domain!, exchange: exchange!, priority: 10 })),
      a: [
        { name: 'mx.req-plain.test', address: '127.0.0.21' },
        { name: 'mx.verify.test', address: '127.0.0.22' },
        { name: 'mx.selfsigned.test', address: '127.0.0.23' },
        { name: 'mx.wrongname.test', address: '127.0.0.24' },
        { name: 'mx.sts-enforce.test', address: '127.0.0.22' },
        { name: 'mx.sts-badcert.test', address: '127.0.0.23' },
        { name: 'mx.sts-mismatch.test', address: '127.0.0.22' },
        { name: 'mx.sts-testing.test', address: '127.0.0.23' },
        ...Object.keys(policies).map((name) => ({ name, address: POLICY_HOST })),
      ],
      txt: ['sts-enforce.test', 'sts-badcert.test', 'sts-mismatch.test', 'sts-testing.test'].flatMap(sts),
    });
    h = await startHarness();
    await h.startWorker({
      dnsServers: [dns.server],
      mxPort: port,
      allowLoopbackMx: true,
      tlsCaFile: ca.caFile,
    });
  });

  after(async () => {
    await h?.close();
    await dns?.close();
    await new Promise((resolve) => policyServer?.close(resolve));
    for (const s of Object.values(sinks)) await s.close();
    ca?.close();
  });

  const arrivals = (name: string, rcpt: string) => sinks[name]!.messages.filter((m) => m.to.includes(rcpt));

  describe('smarthost routes', () => {
    it('required: a smarthost without STARTTLS gets nothing; the attempt defers 4.7.10 saying why', async () => {
      const r = await h.deliver(makeJob(smarthost('plain', 'required'), ['a@far.test']));
      const o = r.outcomes[0]!;
      assert.equal(o.status, 'deferred');
      assert.equal(o.enhanced, '4.7.10');
      assert.match(o.response, /TLS required \(required\) but not offered by 127\.0\.0\.21:\d+/);
      assert.equal(o.tls?.failure, 'starttls-not-supported');
      assert.equal(arrivals('plain', 'a@far.test').length, 0, 'never sent in clear text');
    });

    it('opportunistic: a smarthost without STARTTLS gets the message in clear text', async () => {
      const r = await h.deliver(makeJob(smarthost('plain', 'opportunistic'), ['b@far.test']));
      assert.equal(r.outcomes[0]!.status, 'delivered');
      assert.equal(r.outcomes[0]!.tls?.version, undefined);
      assert.equal(arrivals('plain', 'b@far.test')[0]?.secure, false);
    });

    it('required: a self-signed certificate is accepted (encryption, no authentication) and reported unverified', async () => {
      const r = await h.deliver(makeJob(smarthost('selfsigned', 'required'), ['c@far.test']));
      const o = r.outcomes[0]!;
      assert.equal(o.status, 'delivered');
      assert.match(o.tls?.version ?? '', /^TLSv1\.[23]$/);
      assert.ok(o.tls?.cipher);
      assert.equal(o.tls?.verified, false);
      assert.equal(arrivals('selfsigned', 'c@far.test')[0]?.secure, true);
    });

    it('verify: a certificate from a trusted CA for the host delivers over TLS, verified', async () => {
      const r = await h.deliver(makeJob(smarthost('trusted', 'verify'), ['d@far.test']));
      const o = r.outcomes[0]!;
      assert.equal(o.status, 'delivered', o.response);
      assert.deepEqual([o.tls?.policy, o.tls?.applied, o.tls?.verified], ['verify', 'verify', true]);
      assert.equal(arrivals('trusted', 'd@far.test')[0]?.secure, true);
    });

    it('verify: a self-signed certificate defers 4.7.5 (certificate-not-trusted) and sends nothing', async () => {
      const r = await h.deliver(makeJob(smarthost('selfsigned', 'verify'), ['e@far.test']));
      const o = r.outcomes[0]!;
      assert.equal(o.status, 'deferred');
      assert.equal(o.enhanced, '4.7.5');
      assert.equal(o.tls?.failure, 'certificate-not-trusted');
      assert.equal(arrivals('selfsigned', 'e@far.test').length, 0);
    });

    it('verify: a trusted certificate for another name defers (certificate-host-mismatch)', async () => {
      const r = await h.deliver(makeJob(smarthost('wrongname', 'verify'), ['f@far.test']));
      assert.equal(r.outcomes[0]!.status, 'deferred');
      assert.equal(r.outcomes[0]!.tls?.failure, 'certificate-host-mismatch');
      assert.equal(arrivals('wrongname', 'f@far.test').length, 0);
    });

    it('none: never STARTTLS, even when offered', async () => {
      const r = await h.deliver(makeJob(smarthost('trusted', 'none'), ['g@far.test']));
      assert.equal(r.outcomes[0]!.status, 'delivered');
      assert.equal(arrivals('trusted', 'g@far.test')[0]?.secure, false);
    });
  });

  describe('MX routes', () => {
    it('required: an MX without STARTTLS defers with "TLS required but not offered by <mx>:<port>"', async () => {
      const r = await h.deliver(makeJob(mx('req-plain.test', 'required'), ['a@req-plain.test']));
      const o = r.outcomes[0]!;
      assert.equal(o.status, 'deferred');
      assert.match(o.response, /TLS required \(required\) but not offered by mx\.req-plain\.test:\d+/);
      assert.equal(arrivals('plain', 'a@req-plain.test').length, 0);
    });

    it('opportunistic: the same MX gets the message in clear text', async () => {
      const r = await h.deliver(makeJob(mx('opp-plain.test', 'opportunistic'), ['a@opp-plain.test']));
      assert.equal(r.outcomes[0]!.status, 'delivered');
    });

    it('verify: the MX host name must be on a trusted certificate', async () => {
      const ok = await h.deliver(makeJob(mx('verify.test', 'verify'), ['a@verify.test']));
      assert.equal(ok.outcomes[0]!.status, 'delivered', ok.outcomes[0]!.response);
      assert.equal(ok.outcomes[0]!.tls?.verified, true);
      const self = await h.deliver(makeJob(mx('verify-self.test', 'verify'), ['a@verify-self.test']));
      assert.equal(self.outcomes[0]!.status, 'deferred');
      assert.equal(self.outcomes[0]!.tls?.failure, 'certificate-not-trusted');
      const name = await h.deliver(makeJob(mx('verify-name.test', 'verify'), ['a@verify-name.test']));
      assert.equal(name.outcomes[0]!.tls?.failure, 'certificate-host-mismatch');
      assert.equal(arrivals('selfsigned', 'a@verify-self.test').length, 0);
      assert.equal(arrivals('wrongname', 'a@verify-name.test').length, 0);
    });
  });

  describe('MTA-STS (RFC 8461)', () => {
    it('enforce: delivers to a listed MX with a valid certificate, and caches the policy in KV', async () => {
      const first = await h.deliver(makeJob(mx('sts-enforce.test', 'mta-sts'), ['a@sts-enforce.test']));
      const second = await h.deliver(makeJob(mx('sts-enforce.test', 'mta-sts'), ['b@sts-enforce.test']));
      for (const r of [first, second]) {
        assert.equal(r.outcomes[0]!.status, 'delivered', r.outcomes[0]!.response);
        assert.deepEqual(
          [r.outcomes[0]!.tls?.applied, r.outcomes[0]!.tls?.verified],
          ['mta-sts-enforce', true],
        );
      }
      // Fetched once; the second attempt found the same TXT id and a fresh policy in the shared cache.
      assert.equal(policyFetches.filter((host) => host === 'mta-sts.sts-enforce.test').length, 1);
      const kv = await new Kvm(h.nc).open(MTA_STS_BUCKET);
      const cached = (await kv.get('sts-enforce_2etest'))?.json<{ mode: string; mx: string[] }>();
      assert.deepEqual([cached?.mode, cached?.mx], ['enforce', ['mx.sts-enforce.test']]);
    });

    it('enforce: an MX with an untrusted certificate defers, nothing is sent', async () => {
      const r = await h.deliver(makeJob(mx('sts-badcert.test', 'mta-sts'), ['a@sts-badcert.test']));
      assert.equal(r.outcomes[0]!.status, 'deferred');
      assert.equal(r.outcomes[0]!.tls?.failure, 'certificate-not-trusted');
      assert.equal(arrivals('selfsigned', 'a@sts-badcert.test').length, 0);
    });

    it('enforce: an MX the policy does not list gets nothing; the attempt defers saying so', async () => {
      const r = await h.deliver(makeJob(mx('sts-mismatch.test', 'mta-sts'), ['a@sts-mismatch.test']));
      assert.equal(r.outcomes[0]!.status, 'deferred');
      assert.match(r.outcomes[0]!.response, /not listed in the MTA-STS policy of sts-mismatch\.test/);
      assert.equal(arrivals('trusted', 'a@sts-mismatch.test').length, 0);
    });

    it('testing: delivers despite an untrusted certificate and reports what enforce would refuse', async () => {
      const r = await h.deliver(makeJob(mx('sts-testing.test', 'mta-sts'), ['a@sts-testing.test']));
      const o = r.outcomes[0]!;
      assert.equal(o.status, 'delivered');
      assert.deepEqual([o.tls?.applied, o.tls?.failure], ['mta-sts-testing', 'certificate-not-trusted']);
    });

    it('no policy published: opportunistic', async () => {
      const r = await h.deliver(makeJob(mx('sts-none.test', 'mta-sts'), ['a@sts-none.test']));
      assert.equal(r.outcomes[0]!.status, 'delivered');
      assert.equal(r.outcomes[0]!.tls?.applied, 'opportunistic');
    });
  });
});
