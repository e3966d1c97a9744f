import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { verifyPassword } from '../../../services/common/config/password.ts';
import type { DomainConfig, PolicyConfig } from '../../../services/common/config/resolved.ts';
import { ConfigFileError, loadConfigFile, resolveConfigText } from '../../../services/local/config-file.ts';
import { localIngressSettings } from '../../../services/local/ingress-settings.ts';

const policy = (spec: string) => `apiVersion: postern.dev/v1alpha1
kind: RelayPolicy
metadata: { name: p }
spec:
${spec}`;

describe('local-mode config files', () => {
  it('resolves the shipped example into the documents the services read', () => {
    const entries = loadConfigFile(new URL('../../../examples/local.yaml', import.meta.url).pathname);
    const domain = entries.get('domain.example.test') as DomainConfig;
    assert.deepEqual(domain.inbound?.deliverTo, {
      host: '127.0.0.1',
      port: 2424,
      protocol: 'lmtp',
      tls: 'opportunistic',
    });
    const relay = entries.get('policy.default.local-relay') as PolicyConfig;
    assert.deepEqual(relay.networks, ['127.0.0.0/8', '::1/128']);
    assert.deepEqual(relay.delivery.retry.scheduleMs, [60_000, 300_000, 900_000, 3_600_000]);
    assert.equal(relay.delivery.retry.maxLifetimeMs, 2 * 86_400_000);
    assert.equal(relay.users[0]?.name, 'alice');
    assert.ok(!JSON.stringify(relay).includes('change-me'), 'no clear-text password in the resolved policy');
    assert.ok(verifyPassword('change-me', relay.users[0]!.hash));
  });

  it('refuses a broken file with every problem named, not just the first', () => {
    const text = `${policy('  clients: { networks: [10.0.0.0/33] }')}
---
apiVersion: postern.dev/v1alpha1
kind: MailDomain
metadata: { name: d }
spec: { domain: example.test, colour: blue }`;
    assert.throws(
      () => resolveConfigText(text),
      (err: Error) =>
        err instanceof ConfigFileError &&
        /10\.0\.0\.0\/33" is not a CIDR/.test(err.message) &&
        /colour/.test(err.message),
    );
  });

  it('refuses unknown kinds, wrong apiVersions, bad durations and missing Secrets', () => {
    assert.throws(
      () => resolveConfigText('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n'),
      /apiVersion must be/,
    );
    assert.throws(
      () =>
        resolveConfigText(
          policy('  clients: { networks: [127.0.0.0/8] }\n  delivery: { retry: { schedule: [5 minutes] } }'),
        ),
      /schedule/,
    );
    assert.throws(
      () => resolveConfigText(policy('  clients: { authSecretRef: { name: nope } }')),
      /Secret nope not found/,
    );
  });

  it('resolves an arcSeal key from its Secret, and refuses a missing Secret or key', () => {
    const sealing = policy(
      '  clients: { networks: [127.0.0.0/8] }\n  arcSeal: { domain: seal.example, selector: arc, keySecretRef: { name: k } }',
    );
    const secret = (data: string) =>
      `\n---\napiVersion: v1\nkind: Secret\nmetadata: { name: k }\nstringData: { ${data} }\n`;
    const entries = resolveConfigText(sealing + secret('private.key: PEM'));
    assert.deepEqual((entries.get('policy.default.p') as PolicyConfig).arcSeal, {
      domain: 'seal.example',
      selector: 'arc',
      privateKey: 'PEM',
    });
    assert.throws(() => resolveConfigText(sealing), /Secret k not found/);
    assert.throws(() => resolveConfigText(sealing + secret('other: x')), /Secret k needs key private\.key/);
  });

  it('turns an IngressSettings document into ingress env and listener switches, never into KV', () => {
    const text = `kind: IngressSettings
dnsbl: { zones: [zen.example, { zone: b.example, codes: [127.0.0.2-127.0.0.11] }], allow: [10.0.0.0/8], timeoutMs: 900 }
contentFilter: { url: "http://127.0.0.1:11333", failMode: closed }
listeners: { submission: { contentFilter: false } }
`;
    assert.equal(resolveConfigText(text).size, 0);
    assert.deepEqual(localIngressSettings(text), {
      env: {
        POSTERN_DNSBL_ZONES: '["zen.example",{"zone":"b.example","codes":["127.0.0.2-127.0.0.11"]}]',
        POSTERN_DNSBL_ALLOW: '10.0.0.0/8',
        POSTERN_DNSBL_TIMEOUT_MS: '900',
        POSTERN_CONTENT_FILTER_URL: 'http://127.0.0.1:11333',
        POSTERN_CONTENT_FILTER_FAIL_MODE: 'closed',
      },
      listeners: { submission: { contentFilter: false } },
    });
    assert.deepEqual(localIngressSettings(''), { env: {}, listeners: {} });
  });

  it('refuses a bad IngressSettings document with what the ingress would say', () => {
    assert.throws(
      () =>
        resolveConfigText(
          'kind: IngressSettings\ncontentFilter: { url: "http://r:1", failMode: maybe }\ndnsbl: { zone: x }\n',
        ),
      (err: Error) =>
        err instanceof ConfigFileError &&
        /POSTERN_CONTENT_FILTER_FAIL_MODE must be open or closed/.test(err.message) &&
        /unknown field dnsbl\.zone/.test(err.message),
    );
  });

  it('refuses two MailDomains claiming one domain', () => {
    const md = (name: string) =>
      `apiVersion: postern.dev/v1alpha1\nkind: MailDomain\nmetadata: { name: ${name} }\nspec: { domain: example.test }\n`;
    assert.throws(() => resolveConfigText(`${md('a')}---\n${md('b')}`), /already declared/);
  });
});
