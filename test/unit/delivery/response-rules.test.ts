/**
 * The shipped shaping data files: every response rule matches the real reply it was written for (and that reply
 * matches no earlier rule), ordinary replies trigger nothing, and every provider rule names its source.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  loadProviderRules,
  loadResponseRules,
  PROVIDER_RULES_FILE,
  providerRuleFor,
  RESPONSE_RULES_FILE,
  responseRuleFor,
} from '../../../services/delivery/shaping/rules.ts';

const responses = loadResponseRules();
const providers = loadProviderRules();

describe('response rules (response-rules.yaml)', () => {
  const expected: Record<string, string> = {
    'yahoo-tss04': 'suspend',
    'gmail-4.7.28': 'slowdown',
    'gmail-4.7.0-rate': 'throttle',
    'outlook-s3150': 'suspend',
    'outlook-s775': 'throttle',
    'comcast-rl0000': 'throttle',
    'icloud-cs01': 'suspend',
    'too-many-connections': 'slowdown',
    'rate-limit-exceeded': 'slowdown',
  };
  for (const rule of responses) {
    it(`${rule.id}: its real reply → ${rule.action} for ${rule.durationMs / 60_000} min`, () => {
      assert.equal(responseRuleFor(responses, rule.example)?.id, rule.id, rule.example);
      assert.equal(rule.action, expected[rule.id], `unexpected rule ${rule.id} or action`);
    });
  }

  it('covers every provider text the issue names (Yahoo TSS04, Gmail 4.7.28, Outlook S3150, Comcast RL0000, too many connections)', () => {
    for (const id of [
      'yahoo-tss04',
      'gmail-4.7.28',
      'outlook-s3150',
      'comcast-rl0000',
      'too-many-connections',
    ])
      assert.ok(
        responses.some((r) => r.id === id),
        id,
      );
  });

  it('ordinary replies trigger nothing', () => {
    for (const reply of [
      '250 2.0.0 OK 1700000000 a1si123 - gsmtp',
      '550 5.1.1 The email account that you tried to reach does not exist.',
      '452 4.2.2 The email account that you tried to reach is over quota.',
      '451 4.3.0 Temporary local problem',
      'connect ECONNREFUSED 192.0.2.1:25',
    ])
      assert.equal(responseRuleFor(responses, reply), undefined, reply);
  });

  it('Yahoo TSS09 (the same deferral for a different reason) suspends too', () => {
    const r = responseRuleFor(
      responses,
      '421 4.7.0 [TSS09] All messages from 192.0.2.1 will be permanently deferred; Retrying will NOT succeed. See https://postmaster.yahooinc.com/error-codes',
    );
    assert.equal(r?.id, 'yahoo-tss04');
  });
});

describe('provider rules (provider-rules.yaml)', () => {
  it('cover the providers the issue names', () => {
    const ids = providers.map((p) => p.id);
    for (const id of ['gmail', 'outlook', 'yahoo', 'icloud', 'gmx-webde', 'mailru', 'yandex', 'comcast'])
      assert.ok(ids.includes(id), id);
  });

  it('every rule carries a comment with its source', () => {
    const text = readFileSync(PROVIDER_RULES_FILE, 'utf8');
    for (const p of providers) {
      const after = text.slice(text.indexOf(`- id: ${p.id}\n`));
      const comment = after.split('\n').slice(1, 3).join('\n');
      assert.match(comment, /^\s+# .*https?:\/\//m, `${p.id} has no source comment`);
    }
    const rtext = readFileSync(RESPONSE_RULES_FILE, 'utf8');
    for (const r of responses) {
      const after = rtext.slice(rtext.indexOf(`- id: ${r.id}\n`));
      assert.match(after.split('\n')[1] ?? '', /^\s+# /, `${r.id} has no comment`);
    }
  });

  it('a site matches by any of its MX hosts, on a suffix boundary', () => {
    assert.equal(providerRuleFor(providers, ['alt1.gmail-smtp-in.l.google.com'])?.id, 'gmail');
    assert.equal(providerRuleFor(providers, ['example-com.mail.protection.outlook.com'])?.id, 'outlook');
    assert.equal(providerRuleFor(providers, ['mta5.am0.yahoodns.net'])?.id, 'yahoo');
    assert.equal(providerRuleFor(providers, ['mx01.mail.icloud.com'])?.id, 'icloud');
    assert.equal(providerRuleFor(providers, ['mx-ext.web.de'])?.id, 'gmx-webde');
    assert.equal(providerRuleFor(providers, ['mxs.mail.ru'])?.id, 'mailru');
    assert.equal(providerRuleFor(providers, ['mx.yandex.net'])?.id, 'yandex');
    assert.equal(providerRuleFor(providers, ['mx1a1.comcast.net'])?.id, 'comcast');
    assert.equal(providerRuleFor(providers, ['mx.notgoogle.com']), undefined);
    assert.equal(providerRuleFor(providers, ['mx.example.org']), undefined);
  });
});
