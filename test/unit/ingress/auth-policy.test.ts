import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type AuthenticationPolicy,
  DEFAULT_AUTHENTICATION,
} from '../../../services/common/config/resolved.ts';
import { validateResource } from '../../../services/common/config/validate.ts';
import { type AuthFacts, decideAuthentication } from '../../../services/ingress/auth-policy.ts';
import {
  authResultsHeader,
  authservIdOf,
  removeForgedResults,
} from '../../../services/ingress/auth-results.ts';
import { iprevInfo } from '../../../services/ingress/iprev.ts';
import { factsOf } from '../../../services/ingress/sender-auth.ts';

const policy = (p: Partial<AuthenticationPolicy> = {}): AuthenticationPolicy => ({
  ...DEFAULT_AUTHENTICATION,
  ...p,
});

const facts = (f: {
  spf?: AuthFacts['spf']['result'];
  dmarc?: AuthFacts['spf']['result'];
  p?: 'none' | 'quarantine' | 'reject';
  arc?: AuthFacts['arc'];
}): AuthFacts => ({
  ip: '192.0.2.10',
  spf: { result: f.spf ?? 'pass', domain: 'sender.example' },
  ...(f.dmarc ? { dmarc: { result: f.dmarc, domain: 'sender.example', policy: f.p ?? 'none' } } : {}),
  arc: f.arc ?? { result: 'none' },
});

const trusted = { result: 'pass' as const, sealer: 'lists.example', sealedDmarc: 'pass' };

describe('sender authentication policy (results + domain policies → verdict)', () => {
  const table: { name: string; facts: AuthFacts; policies: AuthenticationPolicy[]; want: string }[] = [
    {
      name: 'everything passes',
      facts: facts({ dmarc: 'pass', p: 'reject' }),
      policies: [policy({ dmarc: 'enforce' })],
      want: 'accept',
    },
    {
      name: 'enforce + DMARC fail + p=reject → 550 5.7.1',
      facts: facts({ spf: 'fail', dmarc: 'fail', p: 'reject' }),
      policies: [policy({ dmarc: 'enforce' })],
      want: 'reject 550 5.7.1',
    },
    {
      name: 'tag + DMARC fail + p=reject → accept',
      facts: facts({ spf: 'fail', dmarc: 'fail', p: 'reject' }),
      policies: [policy({ dmarc: 'tag' })],
      want: 'accept',
    },
    {
      name: 'off + DMARC fail → accept',
      facts: facts({ dmarc: 'fail', p: 'reject' }),
      policies: [policy({ dmarc: 'off' })],
      want: 'accept',
    },
    {
      name: 'enforce + p=quarantine + quarantine: hold → hold',
      facts: facts({ dmarc: 'fail', p: 'quarantine' }),
      policies: [policy({ dmarc: 'enforce', quarantine: 'hold' })],
      want: 'hold',
    },
    {
      name: 'enforce + p=quarantine + quarantine: tag → accept',
      facts: facts({ dmarc: 'fail', p: 'quarantine' }),
      policies: [policy({ dmarc: 'enforce', quarantine: 'tag' })],
      want: 'accept',
    },
    {
      name: 'enforce + p=none → accept',
      facts: facts({ dmarc: 'fail', p: 'none' }),
      policies: [policy({ dmarc: 'enforce', quarantine: 'hold' })],
      want: 'accept',
    },
    {
      name: 'enforce + DMARC temperror → accept (a DNS outage never refuses)',
      facts: facts({ dmarc: 'temperror', p: 'reject' }),
      policies: [policy({ dmarc: 'enforce' })],
      want: 'accept',
    },
    {
      name: 'enforce + DMARC permerror → accept',
      facts: facts({ dmarc: 'permerror', p: 'reject' }),
      policies: [policy({ dmarc: 'enforce' })],
      want: 'accept',
    },
    {
      name: 'spfFail: reject + SPF fail → 550 5.7.23',
      facts: facts({ spf: 'fail' }),
      policies: [policy({ spfFail: 'reject' })],
      want: 'reject 550 5.7.23',
    },
    {
      name: 'spfFail: reject + SPF softfail → accept',
      facts: facts({ spf: 'softfail' }),
      policies: [policy({ spfFail: 'reject' })],
      want: 'accept',
    },
    {
      name: 'spfFail: tag + SPF fail → accept',
      facts: facts({ spf: 'fail' }),
      policies: [policy({ spfFail: 'tag' })],
      want: 'accept',
    },
    {
      name: 'DMARC reject wins over SPF reject (5.7.1 names the policy)',
      facts: facts({ spf: 'fail', dmarc: 'fail', p: 'reject' }),
      policies: [policy({ dmarc: 'enforce', spfFail: 'reject' })],
      want: 'reject 550 5.7.1',
    },
    {
      name: 'trusted ARC sealer with dmarc=pass excuses DMARC reject',
      facts: facts({ spf: 'fail', dmarc: 'fail', p: 'reject', arc: trusted }),
      policies: [policy({ dmarc: 'enforce', spfFail: 'reject', trustedArcSealers: ['lists.example'] })],
      want: 'accept',
    },
    {
      name: 'ARC sealer not trusted → 550',
      facts: facts({ dmarc: 'fail', p: 'reject', arc: trusted }),
      policies: [policy({ dmarc: 'enforce', trustedArcSealers: ['other.example'] })],
      want: 'reject 550 5.7.1',
    },
    {
      name: 'trusted sealer but failing chain → 550',
      facts: facts({ dmarc: 'fail', p: 'reject', arc: { ...trusted, result: 'fail' } }),
      policies: [policy({ dmarc: 'enforce', trustedArcSealers: ['lists.example'] })],
      want: 'reject 550 5.7.1',
    },
    {
      name: 'trusted sealer that saw dmarc=fail → 550',
      facts: facts({ dmarc: 'fail', p: 'reject', arc: { ...trusted, sealedDmarc: 'fail' } }),
      policies: [policy({ dmarc: 'enforce', trustedArcSealers: ['lists.example'] })],
      want: 'reject 550 5.7.1',
    },
    {
      name: 'two domains: the strictest wins (tag + enforce → reject)',
      facts: facts({ dmarc: 'fail', p: 'reject' }),
      policies: [policy(), policy({ dmarc: 'enforce' })],
      want: 'reject 550 5.7.1',
    },
    {
      name: 'two domains: hold beats accept',
      facts: facts({ dmarc: 'fail', p: 'quarantine' }),
      policies: [policy({ dmarc: 'enforce', quarantine: 'hold' }), policy()],
      want: 'hold',
    },
    {
      name: 'no inbound domain → accept',
      facts: facts({ spf: 'fail', dmarc: 'fail', p: 'reject' }),
      policies: [],
      want: 'accept',
    },
  ];
  for (const row of table) {
    it(row.name, () => {
      const v = decideAuthentication(row.facts, row.policies);
      const got = v.action === 'reject' ? `reject ${v.reply.code} ${v.reply.enhanced}` : v.action;
      assert.equal(got, row.want);
    });
  }

  it('the reject replies name the domain and the client', () => {
    const dmarc = decideAuthentication(facts({ dmarc: 'fail', p: 'reject' }), [policy({ dmarc: 'enforce' })]);
    assert.equal(dmarc.action, 'reject');
    assert.match(
      dmarc.action === 'reject' ? dmarc.reply.text : '',
      /DMARC policy of sender\.example \(p=reject\)/,
    );
    const spf = decideAuthentication(facts({ spf: 'fail' }), [policy({ spfFail: 'reject' })]);
    assert.match(
      spf.action === 'reject' ? spf.reply.text : '',
      /SPF record of sender\.example does not permit 192\.0\.2\.10/,
    );
  });
});

describe('mailauth results → facts', () => {
  it('reads SPF, the effective DMARC policy, and the newest ARC sealer with what it saw', () => {
    const arc = {
      status: { result: 'pass' },
      authenticationResults: { dmarc: { result: 'pass' } },
    };
    Object.defineProperty(arc, 'chain', {
      value: [
        { 'arc-seal': { parsed: { d: { value: 'first.example' } } } },
        { 'arc-seal': { parsed: { d: { value: 'Lists.Example' } } } },
      ],
    });
    const f = factsOf(
      {
        spf: { domain: 'a.example', status: { result: 'softfail' } },
        dmarc: {
          domain: 'a.example',
          policy: 'quarantine',
          status: { result: 'fail', header: { from: 'a.example' } },
        },
        arc,
      },
      '192.0.2.1',
    );
    assert.deepEqual(f, {
      ip: '192.0.2.1',
      spf: { result: 'softfail', domain: 'a.example' },
      dmarc: { result: 'fail', domain: 'a.example', policy: 'quarantine' },
      arc: { result: 'pass', sealer: 'lists.example', sealedDmarc: 'pass' },
    });
  });
  it('no DMARC evaluated and no ARC chain', () => {
    const f = factsOf({ spf: false, dmarc: false, arc: false }, '192.0.2.1');
    assert.deepEqual(f, { ip: '192.0.2.1', spf: { result: 'none', domain: '' }, arc: { result: 'none' } });
  });
});

describe('Authentication-Results (RFC 8601)', () => {
  it('reads the authserv-id of token, quoted and commented forms', () => {
    assert.equal(authservIdOf(' mx.example.org; spf=pass'), 'mx.example.org');
    assert.equal(authservIdOf(' (forged) MX.Example.Org 1; none'), 'MX.Example.Org');
    assert.equal(authservIdOf(' "mx example"; none'), 'mx example');
    assert.equal(authservIdOf('mx.example.org;'), 'mx.example.org');
  });
  it('removes only the fields claiming our authserv-id, folded lines included', () => {
    const msg = Buffer.from(
      [
        'Authentication-Results: mx.example.org;',
        '  dmarc=pass header.from=bank.example',
        'Received: from a by b',
        'authentication-results:MX.EXAMPLE.ORG; spf=pass',
        'Authentication-Results: other.example; spf=fail',
        'Subject: hi',
        '',
        'Authentication-Results: mx.example.org; body text stays',
        '',
      ].join('\r\n'),
    );
    const { message, removed } = removeForgedResults(msg, 'mx.example.org');
    assert.equal(removed, 2);
    assert.equal(
      message.toString(),
      [
        'Received: from a by b',
        'Authentication-Results: other.example; spf=fail',
        'Subject: hi',
        '',
        'Authentication-Results: mx.example.org; body text stays',
        '',
      ].join('\r\n'),
    );
  });
  it('leaves a message without our fields byte for byte', () => {
    const msg = Buffer.from('Subject: x\r\n\r\nbody\r\n');
    assert.equal(removeForgedResults(msg, 'mx.example.org').message, msg);
  });
  it('composes one field with a resinfo per line, or "none"', () => {
    assert.equal(
      authResultsHeader('mx.example.org', [
        'iprev=pass policy.iprev=192.0.2.1',
        'spf=pass smtp.mailfrom=a.example',
      ]),
      'Authentication-Results: mx.example.org;\r\n iprev=pass policy.iprev=192.0.2.1;\r\n spf=pass smtp.mailfrom=a.example\r\n',
    );
    assert.equal(authResultsHeader('mx.example.org', []), 'Authentication-Results: mx.example.org; none\r\n');
    assert.match(authResultsHeader('mx example', []), /^Authentication-Results: "mx example"; none/);
  });
  it('iprev quotes an IPv6 address', () => {
    assert.equal(
      iprevInfo({ result: 'pass', name: 'h.example' }, '192.0.2.1'),
      'iprev=pass (h.example) policy.iprev=192.0.2.1',
    );
    assert.equal(iprevInfo({ result: 'fail' }, '2001:db8::1'), 'iprev=fail policy.iprev="2001:db8::1"');
  });
});

describe('MailDomain spec.inbound.authentication validation', () => {
  const doc = (authentication: unknown) => ({
    apiVersion: 'postern.dev/v1alpha1',
    kind: 'MailDomain',
    metadata: { name: 'd' },
    spec: {
      domain: 'example.org',
      inbound: { enabled: true, deliverTo: { host: 'store', port: 24 }, authentication },
    },
  });
  it('accepts every documented setting', () => {
    assert.deepEqual(
      validateResource(
        doc({
          dmarc: 'enforce',
          quarantine: 'hold',
          spfFail: 'reject',
          trustedArcSealers: ['lists.example'],
        }),
      ),
      [],
    );
    assert.deepEqual(validateResource(doc({})), []);
    assert.deepEqual(validateResource(doc({ dmarc: 'off' })), []);
  });
  it('refuses settings that would change nothing, and unknown values', () => {
    assert.match(
      validateResource(doc({ dmarc: 'tag', quarantine: 'hold' })).join('\n'),
      /quarantine: applies only with dmarc: enforce/,
    );
    assert.match(
      validateResource(doc({ dmarc: 'off', trustedArcSealers: ['l.example'] })).join('\n'),
      /trustedArcSealers/,
    );
    assert.notDeepEqual(validateResource(doc({ dmarc: 'strict' })), []);
    assert.notDeepEqual(validateResource(doc({ spf: 'reject' })), []);
  });
});
