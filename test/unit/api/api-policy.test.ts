import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bearerKey, findKey } from '../../../services/api/api-keys.ts';
import { apiClient, judgeEnvelope, rateLimit, sizeLimit } from '../../../services/api/policy.ts';
import { hashApiKey } from '../../../services/common/config/api-key.ts';
import { resolveRelayPolicy } from '../../../services/common/config/resolve.ts';
import type { ConfigSnapshot, PolicyConfig } from '../../../services/common/config/resolved.ts';
import { DEFAULT_RETRY } from '../../../services/common/config/resolved.ts';
import { validateResource } from '../../../services/common/config/validate.ts';

function policy(p: Partial<PolicyConfig>): PolicyConfig {
  return {
    source: 'ns/p',
    networks: [],
    users: [],
    requireTLS: false,
    limits: {},
    delivery: { pool: 'default', destinations: [], retry: DEFAULT_RETRY, tls: 'opportunistic' },
    ...p,
  };
}

const KEY = 'k'.repeat(32);
const snapshot: ConfigSnapshot = {
  domains: new Map([
    [
      'ours.example',
      { source: 'ns/o', domain: 'ours.example', inbound: { enabled: true, recipients: ['alice'] } },
    ],
  ]),
  policies: new Map([
    // A wide-open network policy: an API key bound elsewhere must never gain it, whatever its address.
    ['prod.anything', policy({ networks: ['0.0.0.0/0', '::/0'] })],
    [
      'prod.app',
      policy({
        senderDomains: ['app.example'],
        limits: { recipientsPerMessage: 2, messageSize: 2048, messagesPerMinute: 10 },
        apiKeys: [{ id: 'ci', sha256: hashApiKey(KEY) }],
      }),
    ],
    [
      'prod.tls',
      policy({ requireTLS: true, apiKeys: [{ id: 'secure', sha256: hashApiKey('t'.repeat(32)) }] }),
    ],
  ]),
};
const fields = { from: 'envelope.from', to: (i: number) => `envelope.to[${i}]` };
const app = apiClient('127.0.0.1', 'prod.app', false);
const judge = (from: string, to: string[], client = app) =>
  judgeEnvelope({ from, to }, client, snapshot, fields);

describe('API keys and what they may send', () => {
  it('finds a key by its hash and binds it to its one policy; unknown and malformed keys find nothing', () => {
    assert.deepEqual(findKey(snapshot, KEY), { policy: 'prod.app', id: 'ci' });
    assert.equal(findKey(snapshot, `${KEY}x`), undefined);
    assert.equal(bearerKey(`Bearer ${KEY}`), KEY);
    assert.equal(bearerKey(`bearer   ${KEY}`), KEY);
    assert.equal(bearerKey(`Basic ${KEY}`), undefined);
    assert.equal(bearerKey(undefined), undefined);
  });

  it("relays what the policy's SMTP clients may relay, and names the refused field otherwise", () => {
    assert.deepEqual(judge('me@app.example', ['you@far.example']), { policy: 'prod.app' });
    const cases: [string, string[], number, string, string][] = [
      ['me@other.example', ['you@far.example'], 403, 'sender-not-allowed', 'envelope.from'],
      [
        'me@app.example',
        ['a@far.example', 'b@far.example', 'c@far.example'],
        403,
        'too-many-recipients',
        'envelope.to[2]',
      ],
      ['me@app.example', ['bob@ours.example'], 403, 'unknown-recipient', 'envelope.to[0]'],
      ['me@app.example', ['you%x@far.example'], 400, 'invalid-recipient', 'envelope.to[0]'],
      ['not an address', ['you@far.example'], 400, 'invalid-sender', 'envelope.from'],
    ];
    for (const [from, to, status, error, field] of cases) {
      const v = judge(from, to);
      assert.equal(v.refusal?.status, status, `${from} → ${to.join(',')}: ${JSON.stringify(v)}`);
      assert.equal(v.refusal?.error, error);
      assert.equal(v.refusal?.field, field);
    }
  });

  it("never gains another policy's networks: a key bound to P is judged by P alone, whatever its address", () => {
    // From 127.0.0.1, prod.anything's 0.0.0.0/0 would let any sender relay; prod.app refuses this sender.
    assert.equal(judge('me@other.example', ['you@far.example']).refusal?.error, 'sender-not-allowed');
  });

  it('inbound mail for a domain we serve is accepted like over SMTP (no relay policy needed)', () => {
    assert.deepEqual(judge('me@app.example', ['alice@ours.example']), {});
  });

  it('requireTLS holds for the API too: a plain HTTP request is refused, an HTTPS one relayed', () => {
    const plain = apiClient('127.0.0.1', 'prod.tls', false);
    assert.equal(judge('me@x.example', ['you@far.example'], plain).refusal?.error, 'relay-denied');
    const tls = apiClient('127.0.0.1', 'prod.tls', true);
    assert.deepEqual(judge('me@x.example', ['you@far.example'], tls), { policy: 'prod.tls' });
  });

  it("the policy's messageSize lowers the listener's limit and messagesPerMinute applies per key", () => {
    assert.equal(sizeLimit(app, snapshot, 1_000_000), 2048);
    assert.equal(sizeLimit(apiClient('::1', 'prod.tls', true), snapshot, 1_000_000), 1_000_000);
    assert.equal(rateLimit(app, snapshot), 10);
  });

  it('postern validate (like the CRD) accepts a policy used only by the API and refuses one with no clients at all', () => {
    const doc = (spec: unknown) => ({
      apiVersion: 'postern.dev/v1alpha1',
      kind: 'RelayPolicy',
      metadata: { name: 'p' },
      spec,
    });
    assert.deepEqual(validateResource(doc({ clients: {}, api: { keysSecretRef: { name: 'keys' } } })), []);
    assert.match(
      validateResource(doc({ clients: {} })).join('\n'),
      /needs networks or authSecretRef \(or api\.keysSecretRef/,
    );
    assert.match(
      validateResource(doc({ clients: {}, api: { keysSecretRef: { name: 'k', key: 'x' } } })).join('\n'),
      /key/,
    );
  });

  it('resolving a policy stores SHA-256 hashes of its keys, never a key, and refuses short keys', () => {
    const rp = {
      apiVersion: 'postern.dev/v1alpha1',
      kind: 'RelayPolicy',
      metadata: { name: 'app', namespace: 'prod' },
      spec: { clients: {}, api: { keysSecretRef: { name: 'app-keys' } } },
    };
    const doc = resolveRelayPolicy(rp, (name) => (name === 'app-keys' ? { ci: KEY } : undefined));
    assert.deepEqual(doc.apiKeys, [{ id: 'ci', sha256: hashApiKey(KEY) }]);
    assert.ok(!JSON.stringify(doc).includes(KEY));
    assert.throws(() => resolveRelayPolicy(rp, () => ({ ci: 'short' })), /shorter than 24/);
    assert.throws(() => resolveRelayPolicy(rp, () => undefined), /Secret app-keys not found/);
  });
});
