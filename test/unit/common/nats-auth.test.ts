import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { natsAuthFromEnv } from '../../../services/common/nats-auth.ts';

describe('NATS connection settings from the environment', () => {
  it('nothing set: no credentials, no TLS (local mode on loopback)', () => {
    assert.deepEqual(natsAuthFromEnv({}), {});
  });

  it('the chart’s settings: user and password, CA, own inbox prefix', () => {
    assert.deepEqual(
      natsAuthFromEnv({
        NATS_USER: 'ingress',
        NATS_PASSWORD: 'pw',
        NATS_TLS_CA_FILE: '/etc/postern/nats-ca/ca.crt',
        NATS_INBOX_PREFIX: '_INBOX_ingress',
      }),
      {
        user: 'ingress',
        pass: 'pw',
        tls: { caFile: '/etc/postern/nats-ca/ca.crt' },
        inboxPrefix: '_INBOX_ingress',
      },
    );
  });

  it('a password file, a creds file and a client certificate', () => {
    const dir = mkdtempSync(join(tmpdir(), 'postern-nats-auth-'));
    try {
      writeFileSync(join(dir, 'pw'), 'from-file\n');
      const opts = natsAuthFromEnv({
        NATS_USER: 'queue',
        NATS_PASSWORD_FILE: join(dir, 'pw'),
        NATS_TLS_CERT_FILE: '/c.crt',
        NATS_TLS_KEY_FILE: '/c.key',
      });
      assert.equal(opts.pass, 'from-file');
      assert.deepEqual(opts.tls, { certFile: '/c.crt', keyFile: '/c.key' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a user without a password is a configuration error, said at start', () => {
    assert.throws(() => natsAuthFromEnv({ NATS_USER: 'x' }), /NATS_PASSWORD/);
  });
});
