/**
 * AUTH failures per client IP and per user, held across ingress replicas: two real ingress processes
 * (`node services/ingress/main.ts`) against one real nats-server, swaks as the client on 127.0.0.N.
 * Limits are small and the lockout window long (10 min), so a window boundary inside the run changes nothing:
 * a key stays locked for the rest of its window and the whole next one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { hashPassword } from '../../../services/common/config/password.ts';
import { CONFIG_BUCKET, DEFAULT_RETRY, policyKey } from '../../../services/common/config/resolved.ts';
import { connectNats, ensureTopology, STREAMS } from '../../../services/common/nats.ts';
import { startTestNats, type TestNats } from '../../helpers/nats.ts';
import { swaks } from '../../helpers/swaks.ts';
import { type IngressProcess, startIngressProcess, stopIngressProcesses } from './ingress-process.ts';

const LOCKOUT_ENV = {
  POSTERN_AUTH_FAILURES_PER_IP: '3',
  POSTERN_AUTH_FAILURES_PER_USER: '2',
  POSTERN_AUTH_LOCKOUT_SECONDS: '600',
};

/** One AUTH PLAIN from `client`; the AUTH reply. */
async function auth(port: number, client: string, user: string, password: string): Promise<string> {
  const r = await swaks([
    '--server',
    `127.0.0.1:${port}`,
    '--local-interface',
    client,
    '--helo',
    'client.test',
    '--auth',
    'PLAIN',
    '--auth-user',
    user,
    '--auth-password',
    password,
    '--quit-after',
    'AUTH',
  ]);
  const reply = r.replies.find((l) => /^(235|454|535) /.test(l));
  assert.ok(reply, r.transcript);
  return reply;
}

describe('AUTH lockout across two ingress processes (real nats-server, swaks)', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let a: IngressProcess;
  let b: IngressProcess;
  before(async () => {
    nats = await startTestNats();
    nc = await connectNats(nats.url, 'auth-lockout-test');
    await ensureTopology(nc);
    const kv = await new Kvm(nc).open(CONFIG_BUCKET);
    await kv.put(
      policyKey('prod', 'apps'),
      JSON.stringify({
        source: 'prod/apps',
        networks: [],
        users: [
          { name: 'app', hash: hashPassword('s3cret') },
          { name: 'other', hash: hashPassword('pa55') },
        ],
        requireTLS: false,
        limits: {},
        delivery: { pool: 'default', destinations: [], retry: DEFAULT_RETRY, tls: 'opportunistic' },
      }),
    );
    [a, b] = await Promise.all([
      startIngressProcess(nats.url, LOCKOUT_ENV),
      startIngressProcess(nats.url, LOCKOUT_ENV),
    ]);
  });
  after(async () => {
    await stopIngressProcesses(a, b);
    await nc?.close();
    await nats?.cleanup();
  });

  it('locks out an address after its failures on both processes with 454 4.7.0, even with a right password', async () => {
    // Three different user names: no user reaches its own limit, the address does.
    assert.match(await auth(a.submission, '127.0.0.40', 'guess1', 'x'), /^535 5\.7\.8/);
    assert.match(await auth(b.submission, '127.0.0.40', 'guess2', 'x'), /^535 5\.7\.8/);
    assert.match(await auth(a.submission, '127.0.0.40', 'guess3', 'x'), /^535 5\.7\.8/);
    for (const port of [a.submission, b.submission]) {
      assert.match(
        await auth(port, '127.0.0.40', 'other', 'pa55'),
        /^454 4\.7\.0 Too many failed authentications/,
      );
    }
    // Another address is not affected.
    assert.match(await auth(b.submission, '127.0.0.41', 'other', 'pa55'), /^235 /);
  });

  it('locks out a user name guessed from several addresses, on both processes, and only that user', async () => {
    assert.match(await auth(a.submission, '127.0.0.42', 'app', 'wrong'), /^535 5\.7\.8/);
    assert.match(await auth(b.submission, '127.0.0.43', 'app', 'wrong'), /^535 5\.7\.8/);
    for (const port of [a.submission, b.submission]) {
      assert.match(
        await auth(port, '127.0.0.44', 'app', 's3cret'),
        /^454 4\.7\.0 Too many failed authentications/,
      );
    }
    assert.match(await auth(a.submission, '127.0.0.44', 'other', 'pa55'), /^235 /);
  });

  it('counts per process, neither open nor closed, when the counters are gone', async () => {
    // The counter stream alone disappears: each process locks out on its own counts.
    await (await jetstreamManager(nc)).streams.delete(STREAMS.authFailures);
    for (const user of ['g1', 'g2', 'g3']) {
      assert.match(await auth(a.submission, '127.0.0.45', user, 'x'), /^535 5\.7\.8/);
    }
    assert.match(await auth(a.submission, '127.0.0.45', 'other', 'pa55'), /^454 4\.7\.0/);
    // The other process has not seen these failures: per-replica precision, the documented degradation.
    assert.match(await auth(b.submission, '127.0.0.45', 'other', 'pa55'), /^235 /);
    const text = await (await fetch(`http://127.0.0.1:${a.proc.metricsPort}/metrics`)).text();
    // e.g. postern_auth_lockout_fallbacks_total{service="ingress"} 20
    const line = text.split('\n').find((l) => /^postern_auth_lockout_fallbacks_total[{ ]/.test(l));
    assert.ok(Number(line?.split(' ').pop()) > 0, line);
  });
});
