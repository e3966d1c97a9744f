/**
 * The DNSBL checker's bookkeeping with a scripted look-up function (the real DNS path is covered against dnsmasq
 * in test/integration/ingress/dnsbl.test.ts): shared queries, what is cached, and not waiting for slow zones.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { ConfigSnapshot } from '../../../services/common/config/resolved.ts';
import type { ARecord } from '../../../services/common/dns-resolver.ts';
import { Dnsbl } from '../../../services/ingress/dnsbl.ts';
import type { DnsblSettings } from '../../../services/ingress/filter-settings.ts';

const empty: ConfigSnapshot = { domains: new Map(), policies: new Map() };
const settings = (zones: string[]): DnsblSettings => ({
  zones: zones.map((zone) => ({ zone })),
  allow: [],
  cacheTtlSeconds: 300,
  cacheSize: 2,
  timeoutMs: 1000,
  dnsServers: [],
});

/** A look-up that answers from `records`, counting questions; `hold` names stay unanswered until released. */
function scripted(records: Record<string, string>, fail: string[] = [], hold: string[] = []) {
  const asked: string[] = [];
  const held: (() => void)[] = [];
  const lookup = async (name: string): Promise<ARecord[] | undefined> => {
    asked.push(name);
    if (hold.some((h) => name.endsWith(h))) await new Promise<void>((r) => held.push(r));
    if (fail.some((f) => name.endsWith(f)))
      throw Object.assign(new Error('queryA ESERVFAIL'), { code: 'ESERVFAIL' });
    const address = records[name];
    return address ? [{ address, ttl: 600 }] : undefined;
  };
  return {
    lookup,
    asked,
    release: () => {
      for (const r of held.splice(0)) r();
    },
  };
}

const dnsbl = (zones: string[], dns: ReturnType<typeof scripted>) =>
  new Dnsbl(settings(zones), {
    registry: new Registry(),
    logger: pino({ level: 'silent' }),
    lookup: dns.lookup,
  });

describe('DNSBL checker', () => {
  it('asks once for concurrent connections from one address, then answers from the cache', async () => {
    const dns = scripted({ '2.0.0.192.bl.example': '127.0.0.2' });
    const check = dnsbl(['bl.example'], dns);
    const hits = await Promise.all([1, 2, 3].map(() => check.listed('mx', '192.0.0.2', empty)));
    assert.deepEqual(
      hits.map((h) => h?.zone),
      ['bl.example', 'bl.example', 'bl.example'],
    );
    await check.listed('mx', '192.0.0.2', empty);
    assert.equal(dns.asked.length, 1);
  });

  it('caches "not listed" too, but not a failure', async () => {
    const dns = scripted({}, ['broken.example']);
    const check = dnsbl(['bl.example', 'broken.example'], dns);
    assert.equal(await check.listed('mx', '192.0.0.3', empty), undefined);
    assert.equal(await check.listed('mx', '192.0.0.3', empty), undefined);
    assert.deepEqual(dns.asked, [
      '3.0.0.192.bl.example',
      '3.0.0.192.broken.example',
      '3.0.0.192.broken.example',
    ]);
  });

  it('keeps at most cacheSize answers, dropping the least recently used', async () => {
    const dns = scripted({});
    const check = dnsbl(['bl.example'], dns);
    for (const ip of ['192.0.0.4', '192.0.0.5', '192.0.0.6', '192.0.0.4'])
      await check.listed('mx', ip, empty);
    assert.equal(dns.asked.length, 4, 'the first address was evicted by the third');
  });

  it('refuses on the first listing without waiting for a zone that has not answered', async () => {
    const dns = scripted({ '7.0.0.192.fast.example': '127.0.0.2' }, [], ['slow.example']);
    const check = dnsbl(['slow.example', 'fast.example'], dns);
    const hit = await check.listed('mx', '192.0.0.7', empty);
    assert.equal(hit?.zone, 'fast.example');
    assert.equal(
      `${hit?.reply.code} ${hit?.reply.enhanced} ${hit?.reply.text}`,
      '554 5.7.1 Service unavailable; client [192.0.0.7] blocked using fast.example',
    );
    dns.release();
  });

  it('never asks about allowed clients or RelayPolicy networks', async () => {
    const dns = scripted({});
    const check = new Dnsbl(
      { ...settings(['bl.example']), allow: ['198.51.100.0/24', '2001:db8::/32'] },
      { registry: new Registry(), logger: pino({ level: 'silent' }), lookup: dns.lookup },
    );
    const withPolicy: ConfigSnapshot = {
      domains: new Map(),
      policies: new Map([
        [
          'policy.prod.office',
          {
            source: 'prod/office',
            networks: ['203.0.113.0/24'],
            users: [],
            requireTLS: false,
            limits: {},
            delivery: {
              pool: 'default',
              destinations: [],
              retry: { schedule: ['5m'], maxLifetime: '5d' },
              tls: 'opportunistic',
            },
          },
        ],
      ]),
    } as unknown as ConfigSnapshot;
    for (const ip of ['198.51.100.9', '::ffff:198.51.100.9', '2001:db8::5', '203.0.113.7']) {
      assert.equal(await check.listed('mx', ip, withPolicy), undefined);
    }
    assert.deepEqual(dns.asked, []);
  });
});
