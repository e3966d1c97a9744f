/**
 * MX delivery against real peers: dnsmasq answers MX/A records, smtp-server sinks on 127.0.0.N play the remote
 * MX hosts (all on one port, which the worker uses as POSTERN_MX_PORT), a real nats-server carries jobs/results.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestDns, type TestDns } from '../../helpers/dns.ts';
import { freePort, type SmtpSink, startSmtpSink } from '../../helpers/smtp-sink.ts';
import { type Harness, makeJob, startHarness } from './harness.ts';

const mx = (domain: string) => ({ kind: 'mx', domain, tls: 'opportunistic' }) as const;

describe('delivery via MX (dnsmasq + smtp sinks)', () => {
  let h: Harness;
  let dns: TestDns;
  const sinks: Record<string, SmtpSink> = {};

  before(async () => {
    const port = await freePort('127.0.0.2');
    sinks['primary'] = await startSmtpSink({ host: '127.0.0.2', port, tls: true });
    sinks['backup'] = await startSmtpSink({ host: '127.0.0.4', port });
    sinks['busy'] = await startSmtpSink({
      host: '127.0.0.5',
      port,
      onConnect: () => ({ code: 421, message: '4.3.2 Too busy, try another MX' }),
    });
    sinks['defer'] = await startSmtpSink({
      host: '127.0.0.6',
      port,
      onRcpt: () => ({ code: 451, message: '4.2.0 Mailbox temporarily unavailable' }),
    });
    sinks['reject'] = await startSmtpSink({
      host: '127.0.0.7',
      port,
      onRcpt: (r) => (r.startsWith('nobody@') ? { code: 550, message: '5.1.1 No such user here' } : 'accept'),
    });
    sinks['midata'] = await startSmtpSink({ host: '127.0.0.8', port, onData: () => 'disconnect' });
    dns = await startTestDns({
      mx: [
        { domain: 'example.test', exchange: 'mx1.example.test', priority: 10 },
        { domain: 'backup.test', exchange: 'mx1.backup.test', priority: 10 },
        { domain: 'backup.test', exchange: 'mx2.backup.test', priority: 20 },
        { domain: 'busy.test', exchange: 'mx1.busy.test', priority: 10 },
        { domain: 'busy.test', exchange: 'mx2.busy.test', priority: 20 },
        { domain: 'defer.test', exchange: 'mx.defer.test', priority: 10 },
        { domain: 'reject.test', exchange: 'mx.reject.test', priority: 10 },
        { domain: 'midata.test', exchange: 'mx.midata.test', priority: 10 },
      ],
      a: [
        { name: 'mx1.example.test', address: '127.0.0.2' },
        // Nothing listens on 127.0.0.3: connection refused.
        { name: 'mx1.backup.test', address: '127.0.0.3' },
        { name: 'mx2.backup.test', address: '127.0.0.4' },
        { name: 'mx1.busy.test', address: '127.0.0.5' },
        { name: 'mx2.busy.test', address: '127.0.0.4' },
        { name: 'mx.defer.test', address: '127.0.0.6' },
        { name: 'mx.reject.test', address: '127.0.0.7' },
        { name: 'mx.midata.test', address: '127.0.0.8' },
        // No MX: the implicit MX is the domain's own A record (RFC 5321 §5.1).
        { name: 'amx.test', address: '127.0.0.2' },
        // A smarthost configured by name: looked up at POSTERN_DNS_SERVERS, not by the system resolver.
        { name: 'relay.smarthost.test', address: '127.0.0.4' },
      ],
      nullMx: ['nomail.test'],
    });
    h = await startHarness();
    await h.startWorker({ dnsServers: [dns.server], mxPort: port, allowLoopbackMx: true, concurrency: 4 });
  });

  after(async () => {
    await h?.close();
    await dns?.close();
    for (const s of Object.values(sinks)) await s.close();
  });

  it('delivers to the MX host of the recipient domain over STARTTLS', async () => {
    const r = await h.deliver(makeJob(mx('example.test'), ['alice@example.test']));
    assert.equal(r.outcomes[0]?.status, 'delivered', JSON.stringify(r.outcomes));
    assert.equal(r.outcomes[0]?.remoteMta, 'mx1.example.test');
    const msgs = await sinks['primary']!.waitForMessages(1);
    const got = msgs.find((m) => m.to.includes('alice@example.test'));
    assert.ok(got, 'message arrived at the primary MX');
    assert.equal(got.from, 'sender@origin.test');
    assert.equal(got.secure, true);
    assert.match(got.raw.toString(), /Hello number/);
  });

  it('uses the backup MX when the primary refuses connections', async () => {
    const r = await h.deliver(makeJob(mx('backup.test'), ['bob@backup.test']));
    assert.equal(r.outcomes[0]?.status, 'delivered', JSON.stringify(r.outcomes));
    assert.equal(r.outcomes[0]?.remoteMta, 'mx2.backup.test');
  });

  it('uses the backup MX when the primary answers 421 at greeting', async () => {
    const r = await h.deliver(makeJob(mx('busy.test'), ['carol@busy.test']));
    assert.equal(r.outcomes[0]?.status, 'delivered', JSON.stringify(r.outcomes));
    assert.equal(r.outcomes[0]?.remoteMta, 'mx2.busy.test');
    assert.ok(sinks['busy']!.connections >= 1, 'the primary was tried first');
  });

  it('resolves a smarthost host name at the configured DNS servers', async () => {
    const backup = sinks['backup']!;
    const route = {
      kind: 'smarthost',
      host: 'relay.smarthost.test',
      port: backup.port,
      tls: 'none',
    } as const;
    const r = await h.deliver(makeJob(route, ['via-name@far.test']));
    assert.equal(r.outcomes[0]?.status, 'delivered', JSON.stringify(r.outcomes));
    const msgs = await backup.waitForMessages(1);
    assert.ok(msgs.some((m) => m.to.includes('via-name@far.test')));
  });

  it('defers (4.4.3, never bounces) when a configured smarthost name is not in DNS', async () => {
    const route = { kind: 'smarthost', host: 'missing.smarthost.test', port: 25, tls: 'none' } as const;
    const r = await h.deliver(makeJob(route, ['lost@far.test']));
    assert.equal(r.outcomes[0]?.status, 'deferred', JSON.stringify(r.outcomes));
    assert.equal(r.outcomes[0]?.enhanced, '4.4.3');
    assert.match(r.outcomes[0]!.response, /cannot resolve missing\.smarthost\.test/);
  });

  it('falls back to the A record when the domain has no MX', async () => {
    const r = await h.deliver(makeJob(mx('amx.test'), ['dave@amx.test']));
    assert.equal(r.outcomes[0]?.status, 'delivered', JSON.stringify(r.outcomes));
  });

  it('a null MX domain fails permanently with 5.1.10', async () => {
    const r = await h.deliver(makeJob(mx('nomail.test'), ['x@nomail.test']));
    assert.equal(r.outcomes[0]?.status, 'failed');
    assert.equal(r.outcomes[0]?.enhanced, '5.1.10');
  });

  it('a domain that does not exist (NXDOMAIN) fails permanently', async () => {
    const r = await h.deliver(makeJob(mx('nothere.test'), ['x@nothere.test']));
    assert.equal(r.outcomes[0]?.status, 'failed', JSON.stringify(r.outcomes));
  });

  it('a 4xx reply defers with the remote text', async () => {
    const r = await h.deliver(makeJob(mx('defer.test'), ['eve@defer.test']));
    assert.equal(r.outcomes[0]?.status, 'deferred');
    assert.match(r.outcomes[0]!.response, /451 4\.2\.0 Mailbox temporarily unavailable/);
    assert.equal(r.outcomes[0]?.enhanced, '4.2.0');
  });

  it('a 5xx RCPT reply fails that recipient only, with remote text and enhanced code', async () => {
    const r = await h.deliver(makeJob(mx('reject.test'), ['nobody@reject.test', 'frank@reject.test']));
    const by = Object.fromEntries(r.outcomes.map((o) => [o.recipient, o]));
    assert.equal(by['nobody@reject.test']?.status, 'failed');
    assert.equal(by['nobody@reject.test']?.enhanced, '5.1.1');
    assert.match(by['nobody@reject.test']!.response, /No such user here/);
    assert.equal(by['frank@reject.test']?.status, 'delivered');
    const [msg] = await sinks['reject']!.waitForMessages(1);
    assert.deepEqual(msg?.to, ['frank@reject.test']);
  });

  it('a disconnect in the middle of DATA defers', async () => {
    const r = await h.deliver(makeJob(mx('midata.test'), ['gina@midata.test']));
    assert.equal(r.outcomes[0]?.status, 'deferred', JSON.stringify(r.outcomes));
  });
});
