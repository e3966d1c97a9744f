import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WebhookConfig } from '../../../services/common/config/webhook.ts';
import { ConfigFileError, resolveConfigText } from '../../../services/local/config-file.ts';

const webhook = (spec: string, ns = '') => `apiVersion: postern.dev/v1alpha1
kind: Webhook
metadata: { name: app${ns ? `, namespace: ${ns}` : ''} }
spec:
${spec}
---
apiVersion: v1
kind: Secret
metadata: { name: hook${ns ? `, namespace: ${ns}` : ''} }
stringData: { secret: k3y, other: 0th3r }
`;

describe('Webhook documents in a local-mode config file', () => {
  it('resolve with their Secret key, defaults and policies qualified by namespace', () => {
    const entries = resolveConfigText(
      webhook(
        `  url: https://app.example/hooks\n  events: [delivered, bounced, delivered]\n  secretRef: { name: hook }\n  policies: [relay]\n  timeout: 5s`,
        'tenants',
      ),
    );
    assert.deepEqual(entries.get('webhook.tenants.app') as WebhookConfig, {
      source: 'tenants/app',
      url: 'https://app.example/hooks',
      events: ['delivered', 'bounced'],
      secret: 'k3y',
      policies: ['tenants/relay'],
      timeoutMs: 5_000,
      maxLifetimeMs: 86_400_000,
      initialDelayMs: 10_000,
      maxDelayMs: 3_600_000,
    });
  });

  it('read another Secret key when secretRef.key says so', () => {
    const entries = resolveConfigText(
      webhook(
        '  url: http://127.0.0.1:9/h\n  events: [site.suspended]\n  secretRef: { name: hook, key: other }',
      ),
    );
    assert.equal((entries.get('webhook.default.app') as WebhookConfig).secret, '0th3r');
  });

  const refused: [string, string, RegExp][] = [
    ['an unknown event', '  url: http://h/\n  events: [opened]\n  secretRef: { name: hook }', /events/],
    ['no events', '  url: http://h/\n  events: []\n  secretRef: { name: hook }', /events/],
    [
      'a URL that is not http(s)',
      '  url: ftp://h/\n  events: [delivered]\n  secretRef: { name: hook }',
      /url/,
    ],
    [
      'a zero timeout',
      '  url: http://h/\n  events: [delivered]\n  secretRef: { name: hook }\n  timeout: 0s',
      /timeout: must be longer than 0/,
    ],
    [
      'backoff bounds in the wrong order',
      '  url: http://h/\n  events: [delivered]\n  secretRef: { name: hook }\n  retry: { initialDelay: 1h, maxDelay: 1m }',
      /initialDelay must not be longer than maxDelay/,
    ],
    [
      'a missing Secret key',
      '  url: http://h/\n  events: [delivered]\n  secretRef: { name: hook, key: nope }',
      /has no key nope/,
    ],
    [
      'a missing Secret',
      '  url: http://h/\n  events: [delivered]\n  secretRef: { name: gone }',
      /Secret gone not found/,
    ],
  ];
  for (const [what, spec, message] of refused)
    it(`refuse ${what}`, () =>
      assert.throws(
        () => resolveConfigText(webhook(spec)),
        (e: Error) => e instanceof ConfigFileError && message.test(e.message),
      ));
});
