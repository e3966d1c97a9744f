/**
 * DNS block lists at connect against a real DNS server (dnsmasq) serving a test zone: clients connect from
 * different 127.0.0.x loopback addresses (and ::1), so one is listed and another not.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Registry } from 'prom-client';
import { startTestDns, type TestDns } from '../../helpers/dns.ts';
import { type Harness, oursAndOffice, serverReplies, startHarness, swaks } from './ingress-harness.ts';

/** The reversed-nibble name of ::1 (RFC 5782 §2.4). */
const IPV6_LOOPBACK = `1.${'0.'.repeat(31)}bl.test`;

async function metricValue(
  registry: Registry,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  const metric = await registry.getSingleMetric(name)?.get();
  const value = (metric?.values ?? []).find((v) =>
    Object.entries(labels).every(([k, x]) => v.labels[k] === x),
  );
  return value?.value ?? 0;
}

/** swaks from `local` to the mx listener: the whole transaction's server replies. */
async function sendFrom(
  h: Harness,
  local: string,
): Promise<{ code: number; replies: string[]; output: string }> {
  const r = await swaks(h.port('mx'), [
    '--local-interface',
    local,
    '--from',
    'someone@far.example',
    '--to',
    'alice@ours.example',
  ]);
  return { code: r.code, replies: serverReplies(r.output), output: r.output };
}

/** The first reply line on a raw connection to host:port (IPv6 clients, which swaks cannot bind to ::1 here). */
function greeting(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port }, () => undefined);
    let text = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      text += d;
      const line = /^(.*)\r\n/.exec(text);
      if (line?.[1]) {
        s.destroy();
        resolve(line[1]);
      }
    });
    s.once('error', reject);
    s.setTimeout(10_000, () => {
      s.destroy();
      reject(new Error(`no greeting; got ${JSON.stringify(text)}`));
    });
  });
}

describe('DNS block lists at connect (real dnsmasq, real nats-server, swaks)', () => {
  let dns: TestDns;
  let h: Harness;
  before(async () => {
    dns = await startTestDns({
      a: [
        { name: '2.0.0.127.bl.test', address: '127.0.0.2' }, // listed
        { name: '3.0.0.127.bl.test', address: '127.0.0.20' }, // answer outside the return codes we act on
        { name: '4.0.0.127.bl.test', address: '127.0.0.4' }, // listed, but in the allow list
        { name: '5.0.0.127.bl.test', address: '127.0.0.5' }, // listed, but a RelayPolicy client
        { name: IPV6_LOOPBACK, address: '127.0.0.2' }, // ::1 listed
      ],
      // Every query for this zone fails with SERVFAIL: a broken list must not refuse anyone.
      servfail: ['broken.test'],
      // Listings are cached for their TTL at most (dnsmasq's default 0 would mean "do not cache").
      ttl: 600,
    });
    h = await startHarness({
      listeners: [
        { name: 'mx', host: '127.0.0.1', port: 0, mode: 'relay' },
        { name: 'mx6', host: '::1', port: 0, mode: 'relay' },
        { name: 'proxied', host: '127.0.0.1', port: 0, mode: 'relay', proxyProtocol: true },
        // Submission is not checked by default (clients there authenticate; the check runs before AUTH).
        { name: 'submission', host: '127.0.0.1', port: 0, mode: 'submission' },
      ],
      settings: {
        // The test's own connections play the balancer for the PROXY listener.
        proxyProtocol: { trustedNetworks: ['127.0.0.1/32'], headerTimeoutMs: 2000 },
        dnsbl: {
          zones: [{ zone: 'broken.test' }, { zone: 'bl.test', codes: ['127.0.0.2-127.0.0.11'] }],
          allow: ['127.0.0.4/32'],
          cacheTtlSeconds: 300,
          cacheSize: 100,
          timeoutMs: 2000,
          dnsServers: [dns.server],
        },
      },
      documents: oursAndOffice('127.0.0.5/32'),
    });
  });
  after(async () => {
    await h?.stop();
    await dns?.close();
  });

  it('refuses a listed client at connect with 554 5.7.1 naming the list, before any command', async () => {
    const r = await sendFrom(h, '127.0.0.2');
    assert.notEqual(r.code, 0);
    assert.deepEqual(r.replies, ['554 5.7.1 Service unavailable; client [127.0.0.2] blocked using bl.test']);
    assert.equal(await h.nextEnvelope(1000), undefined);
  });

  it('accepts an unlisted client, even though another list fails (fail open)', async () => {
    const r = await sendFrom(h, '127.0.0.6');
    assert.equal(r.code, 0, r.output);
    assert.deepEqual((await h.nextEnvelope())?.to, ['alice@ours.example']);
    assert.ok(
      (await metricValue(h.registry, 'postern_dnsbl_lookups_total', {
        zone: 'broken.test',
        result: 'error',
      })) >= 1,
    );
  });

  it('acts only on the configured return codes', async () => {
    const r = await sendFrom(h, '127.0.0.3');
    assert.equal(r.code, 0, r.output);
    assert.ok(await h.nextEnvelope());
  });

  it('never checks clients in the allow list or a RelayPolicy network', async () => {
    for (const client of ['127.0.0.4', '127.0.0.5']) {
      const r = await sendFrom(h, client);
      assert.equal(r.code, 0, `${client}: ${r.output}`);
      assert.ok(await h.nextEnvelope());
    }
    assert.equal(await metricValue(h.registry, 'postern_dnsbl_skipped_total', { reason: 'allow' }), 1);
    assert.equal(await metricValue(h.registry, 'postern_dnsbl_skipped_total', { reason: 'relay-policy' }), 1);
  });

  it('looks up IPv6 clients by reversed nibbles', async () => {
    assert.equal(
      await greeting('::1', h.port('mx6')),
      '554 5.7.1 Service unavailable; client [::1] blocked using bl.test',
    );
  });

  it('checks the client a PROXY header names, not the load balancer', async () => {
    const ask = (client: string) =>
      new Promise<string>((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port: h.port('proxied') }, () =>
          s.write(`PROXY TCP4 ${client} 127.0.0.1 40000 25\r\n`),
        );
        s.setEncoding('latin1');
        s.once('data', (d: string) => {
          s.destroy();
          resolve(d.split('\r\n')[0] ?? '');
        });
        s.once('error', reject);
      });
    // The balancer (127.0.0.1) is not listed; the client behind it is.
    assert.equal(
      await ask('127.0.0.2'),
      '554 5.7.1 Service unavailable; client [127.0.0.2] blocked using bl.test',
    );
    assert.match(await ask('127.0.0.6'), /^220 /);
  });

  it('does not check listeners that do not ask for it (submission by default)', async () => {
    const line = await new Promise<string>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: h.port('submission'), localAddress: '127.0.0.2' });
      s.setEncoding('latin1');
      s.once('data', (d: string) => {
        s.destroy();
        resolve(d.split('\r\n')[0] ?? '');
      });
      s.once('error', reject);
    });
    assert.match(line, /^220 /);
  });

  it('answers a repeated client from the cache and counts hits per zone', async () => {
    const before = await metricValue(h.registry, 'postern_dnsbl_lookups_total', {
      zone: 'bl.test',
      result: 'listed',
    });
    const r = await sendFrom(h, '127.0.0.2');
    assert.deepEqual(r.replies, ['554 5.7.1 Service unavailable; client [127.0.0.2] blocked using bl.test']);
    assert.equal(
      await metricValue(h.registry, 'postern_dnsbl_lookups_total', { zone: 'bl.test', result: 'listed' }),
      before,
    );
    assert.ok((await metricValue(h.registry, 'postern_dnsbl_cache_hits_total', { zone: 'bl.test' })) >= 1);
    assert.equal(
      await metricValue(h.registry, 'postern_dnsbl_hits_total', { listener: 'mx', zone: 'bl.test' }),
      2,
    );
    assert.equal(
      await metricValue(h.registry, 'postern_smtp_rejections_total', { listener: 'mx', reason: 'dnsbl' }),
      2,
    );
  });
});
