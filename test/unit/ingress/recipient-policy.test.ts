import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ConfigSnapshot, DomainConfig, PolicyConfig } from '../../../services/common/config/resolved.ts';
import { DEFAULT_RETRY } from '../../../services/common/config/resolved.ts';
import {
  type ClientIdentity,
  decideRecipient,
  messageRateLimit,
  type RecipientRequest,
  sizeLimitFor,
} from '../../../services/ingress/recipient-policy.ts';

function domain(name: string, recipients?: string[]): DomainConfig {
  return {
    source: `ns/${name}`,
    domain: name,
    inbound: { enabled: true, ...(recipients ? { recipients } : {}) },
  };
}

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

const snapshot: ConfigSnapshot = {
  domains: new Map([
    ['ours.example', domain('ours.example')],
    ['listed.example', domain('listed.example', ['alice', 'sales-*', 'bob@listed.example'])],
    ['off.example', { ...domain('off.example'), inbound: null }],
  ]),
  policies: new Map([
    ['prod.office', policy({ networks: ['10.1.0.0/16', '2001:db8::/32'], senderDomains: ['corp.example'] })],
    [
      'prod.apps',
      policy({ users: [{ name: 'app', hash: 'x' }], limits: { recipientsPerMessage: 2, messageSize: 1000 } }),
    ],
    ['prod.secure', policy({ networks: ['10.9.0.0/16'], requireTLS: true })],
    ['prod.limited', policy({ networks: ['10.7.0.0/16'], limits: { messagesPerMinute: 3 } })],
  ]),
};

const stranger: ClientIdentity = { address: '192.0.2.7', tls: false };
const office: ClientIdentity = { address: '10.1.2.3', tls: false };

function decide(recipient: string, over: Partial<RecipientRequest> = {}) {
  return decideRecipient({
    recipient,
    sender: 'someone@corp.example',
    client: stranger,
    snapshot,
    acceptedSoFar: 0,
    ...over,
  });
}

function refusal(d: ReturnType<typeof decide>): string {
  assert.equal(d.accept, false, `expected a refusal, got ${JSON.stringify(d)}`);
  return d.accept ? '' : `${d.reply.code} ${d.reply.enhanced}`;
}

describe('RCPT TO decision', () => {
  it('accepts any user of an inbound domain from anyone', () => {
    assert.deepEqual(decide('Anyone@OURS.example'), {
      accept: true,
      kind: 'inbound',
      domain: 'ours.example',
    });
  });

  it('answers 550 5.1.1 for users an inbound domain does not list, accepts listed ones and wildcards', () => {
    assert.equal(refusal(decide('mallory@listed.example')), '550 5.1.1');
    assert.equal(decide('alice@listed.example').accept, true);
    assert.equal(decide('ALICE@listed.example').accept, true);
    assert.equal(decide('sales-emea@listed.example').accept, true);
    assert.equal(decide('bob@listed.example').accept, true);
  });

  it('always accepts postmaster of an inbound domain, listed or not (RFC 5321 §4.5.1)', () => {
    assert.equal(decide('postmaster@listed.example').accept, true);
    assert.equal(decide('PostMaster@listed.example').accept, true);
  });

  it('treats a domain without inbound as foreign (relay rules apply)', () => {
    assert.equal(refusal(decide('x@off.example')), '554 5.7.1');
  });

  it('denies relaying to strangers with 554 5.7.1', () => {
    assert.equal(refusal(decide('victim@elsewhere.example')), '554 5.7.1');
  });

  it('relays for a client in a policy network (IPv4, IPv4-mapped and IPv6) and names the policy', () => {
    assert.deepEqual(decide('x@elsewhere.example', { client: office }), {
      accept: true,
      kind: 'relay',
      policy: 'prod.office',
    });
    assert.equal(
      decide('x@elsewhere.example', { client: { address: '::ffff:10.1.9.9', tls: false } }).accept,
      true,
    );
    assert.equal(
      decide('x@elsewhere.example', { client: { address: '2001:db8::5', tls: false } }).accept,
      true,
    );
    assert.equal(
      refusal(decide('x@elsewhere.example', { client: { address: '10.2.0.1', tls: false } })),
      '554 5.7.1',
    );
  });

  it('relays for a user authenticated against the policy, not for the same name verified elsewhere', () => {
    const app: ClientIdentity = { address: '192.0.2.7', user: 'app', authPolicies: ['prod.apps'], tls: true };
    assert.deepEqual(decide('x@elsewhere.example', { client: app }), {
      accept: true,
      kind: 'relay',
      policy: 'prod.apps',
    });
    const forged: ClientIdentity = { address: '192.0.2.7', user: 'app', authPolicies: [], tls: true };
    assert.equal(refusal(decide('x@elsewhere.example', { client: forged })), '554 5.7.1');
  });

  it('refuses a sender domain the policy does not allow, and the null sender under senderDomains', () => {
    assert.equal(
      refusal(decide('x@elsewhere.example', { client: office, sender: 'ceo@evil.example' })),
      '554 5.7.1',
    );
    assert.equal(refusal(decide('x@elsewhere.example', { client: office, sender: '' })), '554 5.7.1');
  });

  it('a forged allowed sender from a disallowed client does not help relaying', () => {
    assert.equal(refusal(decide('x@elsewhere.example', { sender: 'boss@corp.example' })), '554 5.7.1');
  });

  it('requires TLS when the policy says so', () => {
    const c = { address: '10.9.1.1', tls: false };
    assert.equal(refusal(decide('x@elsewhere.example', { client: c })), '554 5.7.1');
    assert.equal(decide('x@elsewhere.example', { client: { ...c, tls: true } }).accept, true);
  });

  for (const [trick, address] of [
    ['double @', 'user@ours.example@evil.example'],
    ['percent hack', 'user%evil.example@ours.example'],
    ['bang path', 'evil.example!user@ours.example'],
    ['quoted local part', '"user@evil.example"@ours.example'],
    ['quoted percent', '"user%evil"@ours.example'],
    ['address literal', 'user@[192.0.2.1]'],
    ['no domain', 'user'],
    ['empty', ''],
    ['bad domain', 'user@-evil.example'],
  ] as const) {
    it(`refuses ${trick} (${address}) with 501 5.1.3, even from a relay client`, () => {
      assert.equal(refusal(decide(address)), '501 5.1.3');
      assert.equal(refusal(decide(address, { client: office })), '501 5.1.3');
    });
  }

  it('limits recipients per message with 452 4.5.3', () => {
    const app: ClientIdentity = { address: '192.0.2.7', user: 'app', authPolicies: ['prod.apps'], tls: true };
    assert.equal(decide('a@ours.example', { client: app, acceptedSoFar: 1 }).accept, true);
    assert.equal(refusal(decide('a@ours.example', { client: app, acceptedSoFar: 2 })), '452 4.5.3');
  });

  it("takes the messages-per-minute limit from the client's own policy only", () => {
    assert.equal(messageRateLimit({ address: '10.7.0.1', tls: false }, snapshot), 3);
    assert.equal(messageRateLimit(office, snapshot), undefined);
    assert.equal(messageRateLimit(stranger, snapshot), undefined);
  });

  it("lowers the size limit for a policy's clients only", () => {
    const app: ClientIdentity = { address: '192.0.2.7', user: 'app', authPolicies: ['prod.apps'], tls: true };
    assert.equal(sizeLimitFor(app, snapshot, 5000), 1000);
    assert.equal(sizeLimitFor(stranger, snapshot, 5000), 5000);
    assert.equal(sizeLimitFor(app, snapshot, 500), 500);
  });

  it('picks the first matching policy by key', () => {
    const both: ConfigSnapshot = {
      domains: new Map(),
      policies: new Map([
        ['b.second', policy({ networks: ['10.0.0.0/8'] })],
        ['a.first', policy({ networks: ['10.1.0.0/16'] })],
      ]),
    };
    const d = decide('x@elsewhere.example', { client: office, snapshot: both });
    assert.deepEqual(d, { accept: true, kind: 'relay', policy: 'a.first' });
  });
});
