/** Which TLS policy an MX route gets (services/common/router.ts mxTlsFor) and which TLS settings are refused. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PolicyConfig } from '../../../services/common/config/resolved.ts';
import { validateResource } from '../../../services/common/config/validate.ts';
import { mxTlsFor } from '../../../services/common/router.ts';

const policy = (delivery: Partial<PolicyConfig['delivery']>) =>
  ({
    delivery: {
      pool: 'default',
      destinations: [],
      retry: { scheduleMs: [1], maxLifetimeMs: 1 },
      tls: 'opportunistic',
      ...delivery,
    },
  }) as PolicyConfig;

describe('TLS policy of an MX route', () => {
  it('is delivery.tls by default, opportunistic without a policy (DSNs, TLS reports)', () => {
    assert.equal(mxTlsFor('a.test', policy({ tls: 'dane' })), 'dane');
    assert.equal(mxTlsFor('a.test', undefined), 'opportunistic');
  });
  it('a destinations entry for the recipient domain overrides it, then a "*" entry', () => {
    const p = policy({
      tls: 'opportunistic',
      destinations: [
        { match: '*', tls: 'required' },
        { match: 'bank.test', tls: 'verify' },
        { match: 'limits-only.test', maxConnections: 2 },
      ],
    });
    assert.equal(mxTlsFor('bank.test', p), 'verify');
    assert.equal(mxTlsFor('other.test', p), 'required');
    assert.equal(mxTlsFor('limits-only.test', p), 'required');
  });
});

describe('TLS settings the code cannot keep are refused (postern validate, mirrored by CEL in the CRD)', () => {
  const rp = (delivery: unknown) => ({
    apiVersion: 'postern.dev/v1alpha1',
    kind: 'RelayPolicy',
    metadata: { name: 'p' },
    spec: { clients: { networks: ['127.0.0.1/32'] }, delivery },
  });
  it('mta-sts / dane for a smarthost without its own tls', () => {
    assert.deepEqual(validateResource(rp({ smarthost: { host: 'relay.test' }, tls: 'dane' })), [
      'spec.delivery.tls: dane applies to MX delivery; with a smarthost set smarthost.tls (none, opportunistic, required or verify)',
    ]);
    assert.deepEqual(validateResource(rp({ smarthost: { host: 'relay.test' }, tls: 'required' })), []);
  });
  it('mta-sts / dane as a smarthost tls are not in the schema', () => {
    assert.notDeepEqual(validateResource(rp({ smarthost: { host: 'relay.test', tls: 'mta-sts' } })), []);
  });
  it('destinations[].tls on an MX host suffix, or with a smarthost', () => {
    assert.match(
      validateResource(rp({ destinations: [{ match: '.google.com', tls: 'verify' }] }))[0] ?? '',
      /not to an MX host suffix/,
    );
    assert.match(
      validateResource(
        rp({ smarthost: { host: 'relay.test' }, destinations: [{ match: 'a.test', tls: 'verify' }] }),
      )[0] ?? '',
      /with a smarthost every message goes to it/,
    );
  });
});
