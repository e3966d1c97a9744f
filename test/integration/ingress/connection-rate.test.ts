/**
 * Connections per client per minute (`POSTERN_SMTP_CONNECTION_RATE_LIMIT`, chart `ingress.limits.connectionRateLimit`)
 * held across ingress replicas: two real ingress processes against one real nats-server, swaks as the client.
 *
 * Counts, not timings: when the run straddles a minute boundary the sliding estimate can admit one more, so the
 * assertions allow limit + 1; counting per process would admit twice the limit.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Kvm } from '@nats-io/kv';
import {
  CONFIG_BUCKET,
  DEFAULT_RETRY,
  domainKey,
  type PolicyConfig,
  policyKey,
} from '../../../services/common/config/resolved.ts';
import { connectNats, ensureTopology } from '../../../services/common/nats.ts';
import { startTestNats, type TestNats } from '../../helpers/nats.ts';
import { swaks } from '../../helpers/swaks.ts';
import { type IngressProcess, startIngressProcess, stopIngressProcesses } from './ingress-process.ts';

const LIMIT = 3;

/** One session from `client` through `port`: a message for the inbound domain; the reply that decided it. */
async function session(port: number, client: string) {
  const r = await swaks([
    '--server',
    `127.0.0.1:${port}`,
    '--local-interface',
    client,
    '--helo',
    'client.test',
    '--to',
    'user@example.test',
  ]);
  const decisive = r.replies.find((l) => /^(250 2\.0\.0 Ok: queued|4\d\d |5\d\d )/.test(l)) ?? '';
  return { accepted: r.code === 0 && decisive.startsWith('250 2.0.0'), reply: decisive };
}

describe('connection rate per client across two ingress processes (real nats-server, swaks)', () => {
  let nats: TestNats;
  let a: IngressProcess;
  let b: IngressProcess;
  before(async () => {
    nats = await startTestNats();
    const nc = await connectNats(nats.url, 'connection-rate-test');
    await ensureTopology(nc);
    const kv = await new Kvm(nc).open(CONFIG_BUCKET);
    await kv.put(
      domainKey('example.test'),
      JSON.stringify({ source: 'mail/example.test', domain: 'example.test', inbound: { enabled: true } }),
    );
    await kv.put(
      policyKey('prod', 'office'),
      JSON.stringify({
        source: 'prod/office',
        networks: ['127.0.0.52/32'],
        users: [],
        requireTLS: false,
        limits: {},
        delivery: { pool: 'default', destinations: [], retry: DEFAULT_RETRY, tls: 'opportunistic' },
      } satisfies PolicyConfig),
    );
    await nc.close();
    const env = { POSTERN_SMTP_CONNECTION_RATE_LIMIT: String(LIMIT) };
    [a, b] = await Promise.all([startIngressProcess(nats.url, env), startIngressProcess(nats.url, env)]);
  });
  after(async () => {
    await stopIngressProcesses(a, b);
    await nats?.cleanup();
  });

  it('refuses a client connecting through both processes over its total with 421 4.7.0 from each', async () => {
    const results: { via: string; accepted: boolean; reply: string }[] = [];
    for (let i = 0; i < 8; i++) {
      results.push({ via: i % 2 ? 'b' : 'a', ...(await session(i % 2 ? b.mx : a.mx, '127.0.0.51')) });
    }
    const accepted = results.filter((r) => r.accepted);
    assert.ok(accepted.length >= LIMIT && accepted.length <= LIMIT + 1, JSON.stringify(results));
    for (const via of ['a', 'b']) {
      const refused = results.filter((r) => !r.accepted && r.via === via);
      assert.ok(refused.length >= 1, `process ${via} refused nothing: ${JSON.stringify(results)}`);
      for (const r of refused) {
        assert.equal(r.reply, '421 4.7.0 Too many connections from your address per minute, try again later');
      }
    }
    const text = await (await fetch(`http://127.0.0.1:${a.proc.metricsPort}/metrics`)).text();
    assert.match(text, /postern_smtp_rejections_total\{listener="mx",reason="connection-rate"[^}]*\} [1-9]/);
  });

  it('leaves another client unaffected', async () => {
    for (let i = 0; i < LIMIT; i++) {
      const r = await session(i % 2 ? b.mx : a.mx, '127.0.0.53');
      assert.equal(r.accepted, true, r.reply);
    }
  });

  it('exempts a client in a RelayPolicy network (Postfix: smtpd_client_event_limit_exceptions = $mynetworks)', async () => {
    for (let i = 0; i < 2 * LIMIT + 2; i++) {
      const r = await session(i % 2 ? b.mx : a.mx, '127.0.0.52');
      assert.equal(r.accepted, true, `session ${i}: ${r.reply}`);
    }
  });
});
