/**
 * RelayPolicy `limits.messagesPerMinute` held across ingress replicas: two real ingress processes
 * (`node services/ingress/main.ts`) against one real nats-server, swaks as the client on 127.0.0.N.
 *
 * Counts, not timings: a client's accepted messages across both processes stay at the limit. When the run
 * straddles a minute boundary, the sliding estimate (rate-limit.ts) can admit one more (its rounding down), so
 * the assertions allow limit + 1; counting per process would admit twice the limit.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { hashPassword } from '../../../services/common/config/password.ts';
import {
  CONFIG_BUCKET,
  DEFAULT_RETRY,
  type PolicyConfig,
  policyKey,
} from '../../../services/common/config/resolved.ts';
import { connectNats, ensureTopology, STREAMS, SUBJECTS } from '../../../services/common/nats.ts';
import { windowOf } from '../../../services/ingress/rate-limit.ts';
import { startTestNats, type TestNats } from '../../helpers/nats.ts';
import { eventually } from '../../helpers/postern.ts';
import { swaks } from '../../helpers/swaks.ts';
import type { ServiceProcess } from '../services/process.ts';
import { type IngressProcess, startIngressProcess, stopIngressProcesses } from './ingress-process.ts';

const policy = (p: Partial<PolicyConfig>): PolicyConfig => ({
  source: 'prod/p',
  networks: [],
  users: [],
  requireTLS: false,
  limits: {},
  delivery: { pool: 'default', destinations: [], retry: DEFAULT_RETRY, tls: 'opportunistic' },
  ...p,
});

/** One message from `client` through `port`; the reply that decided it (250 … or the refusal). */
async function send(
  port: number,
  client: string,
  auth?: { user: string; password: string },
  extra: string[] = [],
) {
  const r = await swaks([
    ...extra,
    '--server',
    `127.0.0.1:${port}`,
    '--local-interface',
    client,
    '--helo',
    'client.test',
    '--from',
    'someone@corp.example',
    '--to',
    'friend@elsewhere.example',
    ...(auth ? ['--auth', 'PLAIN', '--auth-user', auth.user, '--auth-password', auth.password] : []),
  ]);
  const decisive = r.replies.find((l) => /^(250 2\.0\.0 Ok: queued|4\d\d |5\d\d )/.test(l));
  return { accepted: r.code === 0 && /^250 2\.0\.0 Ok: queued/.test(decisive ?? ''), reply: decisive ?? '' };
}

/** The client's counter values in the current and previous minute, summed. */
async function counted(client: string): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const hash = createHash('sha256').update(client).digest('hex').slice(0, 32);
  const { index } = windowOf(Date.now());
  let total = 0;
  for (const w of [index, index - 1]) {
    const m = await jsm.direct.getMessage(STREAMS.clientRate, { last_by_subj: SUBJECTS.clientRate(w, hash) });
    total += m ? Number(m.json<{ val: string }>().val) : 0;
  }
  return total;
}

async function metric(proc: ServiceProcess, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${proc.metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.split(' ').pop()) : 0;
}

let nc: NatsConnection;

describe('client message rate across two ingress processes (real nats-server, swaks)', () => {
  let nats: TestNats;
  let a: IngressProcess;
  let b: IngressProcess;
  before(async () => {
    nats = await startTestNats();
    nc = await connectNats(nats.url, 'client-rate-test');
    await ensureTopology(nc);
    const kv = await new Kvm(nc).open(CONFIG_BUCKET);
    await kv.put(
      policyKey('prod', 'limited'),
      JSON.stringify(
        policy({
          networks: ['127.0.0.2/32', '127.0.0.3/32', '127.0.0.6/32', '127.0.0.7/32'],
          limits: { messagesPerMinute: 4 },
        }),
      ),
    );
    await kv.put(
      policyKey('prod', 'apps'),
      JSON.stringify(
        policy({ users: [{ name: 'app', hash: hashPassword('s3cret') }], limits: { messagesPerMinute: 3 } }),
      ),
    );
    [a, b] = await Promise.all([startIngressProcess(nats.url), startIngressProcess(nats.url)]);
  });
  after(async () => {
    await stopIngressProcesses(a, b);
    await nc?.close();
    await nats?.cleanup();
  });

  it('limits a client sending through both processes by its total, with 450 4.7.1 from each', async () => {
    const results = [];
    for (let i = 0; i < 8; i++)
      results.push({ via: i % 2 ? 'b' : 'a', ...(await send(i % 2 ? b.mx : a.mx, '127.0.0.2')) });
    const accepted = results.filter((r) => r.accepted);
    assert.ok(accepted.length >= 4 && accepted.length <= 5, JSON.stringify(results));
    // Both processes accepted some of the first four and refused some of the rest: the count was shared.
    assert.ok(accepted.some((r) => r.via === 'a') && accepted.some((r) => r.via === 'b'));
    for (const via of ['a', 'b']) {
      const refused = results.filter((r) => !r.accepted && r.via === via);
      assert.ok(refused.length >= 1, `process ${via} refused nothing: ${JSON.stringify(results)}`);
      for (const r of refused) assert.match(r.reply, /^450 4\.7\.1 Too many messages from this client/);
    }
  });

  it('leaves a second client of the same policy unaffected', async () => {
    for (let i = 0; i < 4; i++) {
      const r = await send(i % 2 ? b.mx : a.mx, '127.0.0.3');
      assert.equal(r.accepted, true, r.reply);
    }
  });

  it('does not count transactions that end without a message (QUIT after RCPT)', async () => {
    for (let i = 0; i < 6; i++) {
      const r = await swaks([
        '--server',
        `127.0.0.1:${i % 2 ? b.mx : a.mx}`,
        '--local-interface',
        '127.0.0.7',
        '--from',
        'someone@corp.example',
        '--to',
        'friend@elsewhere.example',
        '--quit-after',
        'RCPT',
      ]);
      assert.equal(r.code, 0, r.transcript);
    }
    // The give-back happens when each session closes; wait for the counters to show it (a condition, not a time).
    await eventually('reservations given back', async () => (await counted('ip:127.0.0.7')) === 0);
    for (let i = 0; i < 4; i++) {
      const r = await send(i % 2 ? b.mx : a.mx, '127.0.0.7');
      assert.equal(r.accepted, true, r.reply);
    }
  });

  it('counts an authenticated user by user name, whatever address it connects from', async () => {
    const auth = { user: 'app', password: 's3cret' };
    const results = [];
    // Three from 127.0.0.4 and two from 127.0.0.5: per address nothing would be refused.
    for (const [port, client] of [
      [a.submission, '127.0.0.4'],
      [b.submission, '127.0.0.5'],
      [a.submission, '127.0.0.4'],
      [b.submission, '127.0.0.5'],
      [a.submission, '127.0.0.4'],
    ] as const) {
      results.push(await send(port, client, auth));
    }
    const accepted = results.filter((r) => r.accepted).length;
    assert.ok(accepted >= 3 && accepted <= 4, JSON.stringify(results));
    for (const r of results.filter((x) => !x.accepted)) assert.match(r.reply, /^450 4\.7\.1/);
  });

  it('falls back to per-process counting, neither open nor closed, when the counters are gone', async () => {
    // The counter stream alone disappears (SUBMIT still works): each process limits on its own window.
    await (await jetstreamManager(nc)).streams.delete(STREAMS.clientRate);
    const viaA = [];
    for (let i = 0; i < 5; i++) viaA.push(await send(a.mx, '127.0.0.6'));
    assert.deepEqual(
      viaA.map((r) => r.accepted),
      [true, true, true, true, false],
      JSON.stringify(viaA),
    );
    assert.match(viaA[4]?.reply ?? '', /^450 4\.7\.1/);
    // The other process has not seen this client: per-replica precision, the documented degradation.
    assert.equal((await send(b.mx, '127.0.0.6')).accepted, true);
    const fallbacks = await metric(a.proc, 'postern_client_rate_fallbacks_total');
    assert.ok(fallbacks >= 5, `fallbacks ${fallbacks}`);
  });
});
