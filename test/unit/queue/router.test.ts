import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type ConfigSnapshot,
  DEFAULT_RETRY,
  type DomainConfig,
  type PolicyConfig,
} from '../../../services/common/config/resolved.ts';
import { destinationKey, planDelivery } from '../../../services/common/router.ts';
import type { Sealed } from '../../../services/common/secrets.ts';
import type { Envelope } from '../../../services/common/types.ts';

const retry = { scheduleMs: [500], maxLifetimeMs: 60_000 };

function snapshot(): ConfigSnapshot {
  const inbound: DomainConfig = {
    source: 'mail/local',
    domain: 'local.test',
    inbound: { enabled: true, deliverTo: { host: '127.0.0.5', port: 24, protocol: 'lmtp', tls: 'none' } },
  };
  const signer: DomainConfig = {
    source: 'mail/corp',
    domain: 'corp.test',
    inbound: null,
    dkim: { selector: 's1', privateKey: 'sealed:v1:test' as Sealed },
  };
  const policy = (over: Partial<PolicyConfig['delivery']>): PolicyConfig => ({
    source: 'mail/p',
    networks: ['127.0.0.0/8'],
    users: [],
    requireTLS: false,
    limits: {},
    delivery: { pool: 'bulk', destinations: [], retry, tls: 'opportunistic', ...over },
  });
  return {
    domains: new Map([
      ['local.test', inbound],
      ['corp.test', signer],
    ]),
    policies: new Map([
      ['mail.mx', policy({})],
      ['mail.smart', policy({ pool: 'default', smarthost: { host: '127.0.0.9', port: 2526, tls: 'none' } })],
    ]),
  };
}

function envelope(over: Partial<Envelope>): Envelope {
  return {
    id: 'm1',
    from: 'alice@corp.test',
    to: [],
    receivedAt: '2030-01-01T00:00:00.000Z',
    client: { address: '127.0.0.1', helo: 'client', tls: false },
    size: 10,
    body: { inline: 'eA==' },
    ...over,
  };
}

describe('routing recipients', () => {
  it('hands inbound-domain mail to the mailbox store named by the MailDomain', () => {
    const plan = planDelivery(envelope({ to: ['Bob@LOCAL.test'], policy: 'mail.smart' }), snapshot());
    assert.equal(plan.jobs.length, 1);
    assert.deepEqual(plan.jobs[0]!.route, {
      kind: 'mailbox',
      host: '127.0.0.5',
      port: 24,
      protocol: 'lmtp',
      tls: 'none',
    });
  });

  it('relays through the policy smarthost, in the policy pool, with the policy retry schedule', () => {
    const plan = planDelivery(
      envelope({ to: ['x@far.example', 'y@other.example'], policy: 'mail.smart' }),
      snapshot(),
    );
    assert.equal(plan.jobs.length, 1, 'one smarthost, one job');
    const job = plan.jobs[0]!;
    assert.equal(job.route.kind, 'smarthost');
    assert.equal(destinationKey(job.route), '127.0.0.9:2526');
    assert.deepEqual(job.recipients, ['x@far.example', 'y@other.example']);
    assert.equal(job.pool, 'default');
    assert.deepEqual(job.retry, retry);
    assert.equal(job.expiresAt, '2030-01-01T00:01:00.000Z');
  });

  it('relays to the MX of each domain without a smarthost, grouping recipients per domain', () => {
    const plan = planDelivery(
      envelope({ to: ['a@one.example', 'b@two.example', 'c@ONE.example'], policy: 'mail.mx' }),
      snapshot(),
    );
    assert.deepEqual(
      plan.jobs.map((j) => [j.jobId, j.route, j.recipients, j.pool, j.attempt]),
      [
        [
          'm1.0',
          { kind: 'mx', domain: 'one.example', tls: 'opportunistic' },
          ['a@one.example', 'c@ONE.example'],
          'bulk',
          1,
        ],
        ['m1.1', { kind: 'mx', domain: 'two.example', tls: 'opportunistic' }, ['b@two.example'], 'bulk', 1],
      ],
    );
  });

  it('attaches the DKIM key of the sender domain', () => {
    const plan = planDelivery(envelope({ to: ['a@one.example'], policy: 'mail.mx' }), snapshot());
    assert.deepEqual(plan.jobs[0]!.dkim, {
      domain: 'corp.test',
      selector: 's1',
      privateKey: 'sealed:v1:test',
    });
  });

  it('routes a DSN by MX (or mailbox) in the default pool with the default retry, never by a policy', () => {
    const plan = planDelivery(
      envelope({ from: '', kind: 'dsn', to: ['alice@far.example', 'bob@local.test'], policy: 'mail.smart' }),
      snapshot(),
    );
    assert.deepEqual(
      plan.jobs.map((j) => [j.route.kind, j.pool, j.kind, j.dkim]),
      [
        ['mx', 'default', 'dsn', undefined],
        ['mailbox', 'default', 'dsn', undefined],
      ],
    );
    assert.deepEqual(plan.jobs[0]!.retry, DEFAULT_RETRY);
  });

  it('leaves suppressed recipients out of every job', () => {
    const plan = planDelivery(
      envelope({ to: ['gone@one.example', 'ok@one.example'], policy: 'mail.mx' }),
      snapshot(),
      (r) => r === 'gone@one.example',
    );
    assert.deepEqual(plan.suppressed, ['gone@one.example']);
    assert.deepEqual(plan.jobs[0]!.recipients, ['ok@one.example']);
  });
});
