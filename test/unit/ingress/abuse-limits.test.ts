import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { REPLIES } from '../../../services/ingress/replies.ts';
import { ConnectionTable } from '../../../services/ingress/session-limits.ts';
import { DEFAULT_LIMITS, LIMIT_ENV, readAbuseLimits } from '../../../services/ingress/settings.ts';

describe('abuse limit settings', () => {
  it('default to the documented Postfix-like values', () => {
    assert.deepEqual(readAbuseLimits({}), DEFAULT_LIMITS);
    assert.equal(DEFAULT_LIMITS.maxConnectionsPerIp, 50);
    assert.equal(DEFAULT_LIMITS.hardErrorLimit, 20);
    assert.equal(DEFAULT_LIMITS.junkCommandLimit, 100);
    assert.equal(DEFAULT_LIMITS.idleTimeoutMs, 300_000);
  });

  it('read every limit from its variable and name the variable when a value is bad', () => {
    assert.equal(readAbuseLimits({ [LIMIT_ENV.hardErrorLimit]: '3' }).hardErrorLimit, 3);
    for (const bad of ['0', '-1', '1.5', 'many']) {
      assert.throws(
        () => readAbuseLimits({ POSTERN_SMTP_MAX_CONNECTIONS_PER_IP: bad }),
        /POSTERN_SMTP_MAX_CONNECTIONS_PER_IP must be a positive integer/,
      );
    }
    // The connection rate is off at 0, like Postfix's smtpd_client_connection_rate_limit.
    assert.equal(DEFAULT_LIMITS.connectionRateLimit, 0);
    assert.equal(readAbuseLimits({ POSTERN_SMTP_CONNECTION_RATE_LIMIT: '0' }).connectionRateLimit, 0);
    assert.equal(readAbuseLimits({ POSTERN_SMTP_CONNECTION_RATE_LIMIT: '60' }).connectionRateLimit, 60);
    for (const bad of ['-1', '1.5']) {
      assert.throws(
        () => readAbuseLimits({ POSTERN_SMTP_CONNECTION_RATE_LIMIT: bad }),
        /POSTERN_SMTP_CONNECTION_RATE_LIMIT must be a non-negative integer/,
      );
    }
    assert.throws(
      () => readAbuseLimits({ POSTERN_AUTH_LOCKOUT_SECONDS: '86400' }),
      /POSTERN_AUTH_LOCKOUT_SECONDS must be at most 43200/,
    );
  });
});

describe('the connection table', () => {
  it('refuses per address with 421 4.7.0 and over the total with 421 4.3.2, and frees on release', () => {
    const t = new ConnectionTable({ maxConnections: 3, maxConnectionsPerIp: 2 });
    assert.equal(t.admit('192.0.2.1'), undefined);
    assert.equal(t.admit('192.0.2.1'), undefined);
    assert.equal(t.admit('192.0.2.1'), REPLIES.tooManyConnectionsFromIp);
    assert.equal(t.admit('192.0.2.2'), undefined);
    assert.equal(t.admit('192.0.2.3'), REPLIES.tooManyConnections);
    t.release('192.0.2.1');
    assert.equal(t.total, 2);
    assert.equal(t.admit('192.0.2.3'), undefined);
    assert.equal(t.admit('192.0.2.1'), REPLIES.tooManyConnections);
  });

  it('counts an IPv4 client seen through a dual-stack listener as the same address', () => {
    const t = new ConnectionTable({ maxConnections: 10, maxConnectionsPerIp: 1 });
    assert.equal(t.admit('::ffff:192.0.2.7'), undefined);
    assert.equal(t.admit('192.0.2.7'), REPLIES.tooManyConnectionsFromIp);
    t.release('192.0.2.7');
    assert.equal(t.admit('::ffff:192.0.2.7'), undefined);
  });
});
