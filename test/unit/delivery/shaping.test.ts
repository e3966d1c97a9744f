/**
 * Traffic shaping decisions (pure): which limits hold for a job at its site, the token bucket's arithmetic,
 * slowdown, and site naming (MX rollup).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type SiteRecord, siteKey, siteName } from '../../../services/common/sites.ts';
import { busyBackoffMs, slowdown } from '../../../services/delivery/shaping/gate.ts';
import { burstOf, type Destination, limitsFor } from '../../../services/delivery/shaping/limits.ts';
import { loadProviderRules, providerRuleFor } from '../../../services/delivery/shaping/rules.ts';
import { RESERVE_HORIZON_MS, refill, take } from '../../../services/delivery/shaping/token-bucket.ts';

const mx = (domain: string) => ({ kind: 'mx' as const, domain, tls: 'opportunistic' as const });
const gmailMx = ['gmail-smtp-in.l.google.com', 'alt1.gmail-smtp-in.l.google.com'];
const gmail = providerRuleFor(loadProviderRules(), gmailMx);

describe('sites', () => {
  it('domains with the same MX host set share one site, whatever the order or case of the answers', () => {
    const a = siteName(mx('a.test'), ['MX2.example.net.', 'mx1.example.net']);
    const b = siteName(mx('b.test'), ['mx1.example.net', 'mx2.example.net']);
    assert.equal(a, b);
    assert.equal(a, 'mx:mx1.example.net,mx2.example.net');
    assert.equal(siteKey(a), siteKey(b));
    assert.match(siteKey(a), /^s[0-9a-f]{24}$/);
  });

  it('a domain without MX records (implicit MX) is its own site; a smarthost is host:port', () => {
    assert.equal(siteName(mx('c.test'), []), 'mx:c.test');
    assert.equal(
      siteName({ kind: 'smarthost', host: 'Relay.Example', port: 587, tls: 'verify' }),
      'smtp:relay.example:587',
    );
    assert.equal(siteName(mx('a.test'), ['mx.a.test'], 2525), 'mx:mx.a.test:2525');
  });
});

describe('limits in force (matching order)', () => {
  const dests: Destination[] = [
    { match: '*', maxConnections: 50, ratePerMinute: 100_000 },
    { match: '.google.com', ratePerMinute: 1200 },
    { match: '.l.google.com', messagesPerConnection: 20 },
    { match: 'gmail.com', maxConnections: 3 },
  ];

  it('recipient domain, then MX suffixes (longest first), then the provider rule, then "*", field by field', () => {
    const { limits, source } = limitsFor(mx('gmail.com'), gmailMx, dests, gmail, undefined);
    assert.deepEqual(limits, {
      maxConnections: 3,
      messagesPerConnection: 20,
      ratePerMinute: 1200,
      connectionsPerMinute: gmail!.limits.connectionsPerMinute,
    });
    assert.deepEqual(source, [
      'policy:gmail.com',
      'policy:.l.google.com',
      'policy:.google.com',
      'provider:gmail',
    ]);
  });

  it('the provider rule wins over "*" (a generous default does not loosen a provider)', () => {
    const { limits } = limitsFor(
      mx('googlemail.com'),
      gmailMx,
      [{ match: '*', maxConnections: 50 }],
      gmail,
      undefined,
    );
    assert.equal(limits.maxConnections, gmail!.limits.maxConnections);
  });

  it('"*" applies to sites nothing else names; no entries and no provider = no limits', () => {
    assert.deepEqual(limitsFor(mx('example.org'), ['mx.example.org'], dests, undefined, undefined).limits, {
      maxConnections: 50,
      ratePerMinute: 100_000,
    });
    assert.deepEqual(limitsFor(mx('example.org'), ['mx.example.org'], [], undefined, undefined).limits, {});
  });

  it('a smarthost matches by host or host:port', () => {
    const route = { kind: 'smarthost' as const, host: 'relay.test', port: 2525, tls: 'none' as const };
    assert.equal(
      limitsFor(route, [], [{ match: 'relay.test:2525', maxConnections: 2 }], undefined, undefined).limits
        .maxConnections,
      2,
    );
    assert.equal(
      limitsFor(route, [], [{ match: 'relay.test', ratePerMinute: 60 }], undefined, undefined).limits
        .ratePerMinute,
      60,
    );
    assert.deepEqual(
      limitsFor(route, [], [{ match: 'other.test', ratePerMinute: 60 }], undefined, undefined).limits,
      {},
    );
  });

  it('a throttle in force caps the limits (never raises them) until it ends', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    const record: SiteRecord = {
      site: 'x',
      domains: [],
      updatedAt: '',
      throttle: { ratePerMinute: 60, maxConnections: 10, until: '2026-01-01T00:10:00Z', by: 'rule:x' },
    };
    const l = limitsFor(mx('gmail.com'), gmailMx, dests, gmail, record, now).limits;
    assert.equal(l.ratePerMinute, 60);
    assert.equal(l.maxConnections, 3);
    const later = limitsFor(mx('gmail.com'), gmailMx, dests, gmail, record, now + 11 * 60_000).limits;
    assert.equal(later.ratePerMinute, 1200);
  });

  it("slowdown halves the limits in force; a site without a rate starts from the rule's fromRatePerMinute", () => {
    assert.deepEqual(slowdown({ ratePerMinute: 600, maxConnections: 5 }, { factor: 0.5 }), {
      ratePerMinute: 300,
      maxConnections: 2,
    });
    assert.deepEqual(slowdown({}, { factor: 0.5, fromRatePerMinute: 300 }), { ratePerMinute: 150 });
    assert.deepEqual(slowdown({ ratePerMinute: 1, maxConnections: 1 }, {}), {
      ratePerMinute: 1,
      maxConnections: 1,
    });
  });
});

describe('token bucket', () => {
  it('burst is one second of the rate, at least one token', () => {
    assert.equal(burstOf(60), 1);
    assert.equal(burstOf(30), 1);
    assert.equal(burstOf(600), 10);
  });

  it('starts full, refills at the rate, never above the burst', () => {
    const t0 = 1_000_000_000_000;
    let s = refill(undefined, 600, t0);
    assert.equal(s.tokens, 10);
    const r = take(s, 600, 4);
    assert.equal(r.granted, 4);
    s = refill(r.state, 600, t0 + 300); // 0.3 s at 10/s = 3 tokens
    assert.equal(Math.round(s.tokens * 1000) / 1000, 9);
    s = refill(s, 600, t0 + 60_000);
    assert.equal(s.tokens, 10);
  });

  it('an empty bucket says how long until the next token', () => {
    const t0 = 1_000_000_000_000;
    const empty = { tokens: 0, at: t0, win: t0, n: 0, prev: 0 };
    const r = take(refill(empty, 60, t0 + 250), 60, 1);
    assert.equal(r.granted, 0);
    assert.equal(r.waitMs, 750);
  });

  it('counts grants per minute for the observed rate', () => {
    const t0 = Math.floor(1_000_000_000_000 / 60_000) * 60_000;
    let s = refill(undefined, 6000, t0);
    s = take(s, 6000, 5).state;
    assert.equal(s.n, 5);
    s = refill(s, 6000, t0 + 60_000);
    assert.deepEqual([s.n, s.prev], [0, 5]);
    s = refill(s, 6000, t0 + 3 * 60_000);
    assert.deepEqual([s.n, s.prev], [0, 0]);
  });
});

describe('token reservations (a backlog gets spread-out times, not one shared next token)', () => {
  it('an empty bucket reserves the next tokens at one interval apart', () => {
    const t0 = 1_000_000_000_000;
    let s = refill({ tokens: 0, at: t0, win: t0, n: 0, prev: 0 }, 60, t0);
    const waits: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = take(s, 60, 1);
      assert.equal(r.reserved, true);
      waits.push(r.waitMs);
      s = r.state;
    }
    assert.deepEqual(waits, [1000, 2000, 3000]);
  });

  it('reservations stop at the horizon', () => {
    const t0 = 1_000_000_000_000;
    const deep = { tokens: -(RESERVE_HORIZON_MS / 1000), at: t0, win: t0, n: 0, prev: 0 };
    const r = take(deep, 60, 1);
    assert.equal(r.reserved, false);
    assert.equal(r.waitMs, RESERVE_HORIZON_MS);
  });

  it('a job that waited for a busy site backs off, up to 8 s plus jitter', () => {
    assert.ok(busyBackoffMs({}) >= 1000 && busyBackoffMs({}) < 2000);
    const b = busyBackoffMs({ siteWait: { waits: 3 } });
    assert.ok(b >= 8000 && b < 16_000);
    assert.ok(busyBackoffMs({ siteWait: { waits: 50 } }) < 16_000);
  });
});
