/** What each TLS mode demands of a session, and how a session's TLS is judged (services/delivery/tls-policy.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { certFailureType, judgeSession, requirementFor } from '../../../services/delivery/tls-policy.ts';

const tlsa = [{ usage: 3, selector: 1, mtype: 1, cert: Buffer.alloc(32) }];

describe('TLS requirement per mode', () => {
  const table: [string, Parameters<typeof requirementFor>[2], string, boolean, string, boolean][] = [
    // mode, found, applied, mustEncrypt, check, reportOnly
    ['none', {}, 'none', false, 'none', false],
    ['opportunistic', {}, 'opportunistic', false, 'none', false],
    ['required', {}, 'required', true, 'none', false],
    ['verify', {}, 'verify', true, 'pkix', false],
    ['mta-sts', {}, 'opportunistic', false, 'none', false],
    ['mta-sts', { sts: { mode: 'enforce', mx: ['mx.a.test'] } }, 'mta-sts-enforce', true, 'pkix', false],
    ['mta-sts', { sts: { mode: 'testing', mx: ['mx.a.test'] } }, 'mta-sts-testing', false, 'pkix', true],
    ['mta-sts', { sts: { mode: 'none' } }, 'opportunistic', false, 'none', false],
    // RFC 8461 §2: DANE wins where the host has authenticated TLSA records; else the MTA-STS behaviour.
    ['dane', { tlsa, sts: { mode: 'enforce', mx: ['x'] } }, 'dane', true, 'dane', false],
    ['dane', { sts: { mode: 'enforce', mx: ['x'] } }, 'mta-sts-enforce', true, 'pkix', false],
    ['dane', {}, 'opportunistic', false, 'none', false],
    // mta-sts never uses TLSA records.
    ['mta-sts', { tlsa }, 'opportunistic', false, 'none', false],
  ];
  for (const [mode, found, applied, mustEncrypt, check, reportOnly] of table) {
    it(`${mode} with ${JSON.stringify(found, (k, v) => (k === 'cert' ? '…' : v))} → ${applied}`, () => {
      const r = requirementFor(mode as never, 'mx.a.test', found);
      assert.deepEqual(
        [r.applied, r.mustEncrypt, r.check, r.reportOnly],
        [applied, mustEncrypt, check, reportOnly],
      );
    });
  }
});

describe('judging a session', () => {
  it('a mode that must encrypt refuses a clear-text session, naming host:port', () => {
    const v = judgeSession(requirementFor('required', 'mx.a.test'), { encrypted: false }, 'mx.a.test:25');
    assert.equal(v.refuse, 'TLS required (required) but not offered by mx.a.test:25');
    assert.equal(v.facts.failure, 'starttls-not-supported');
  });
  it('opportunistic accepts clear text and reports no failure', () => {
    const v = judgeSession(
      requirementFor('opportunistic', 'mx.a.test'),
      { encrypted: false },
      'mx.a.test:25',
    );
    assert.equal(v.refuse, undefined);
    assert.deepEqual(v.facts, { policy: 'opportunistic', applied: 'opportunistic', verified: false });
  });
  it('MTA-STS testing accepts clear text but reports what enforce would refuse', () => {
    const req = requirementFor('mta-sts', 'mx.a.test', { sts: { mode: 'testing', mx: ['mx.a.test'] } });
    const v = judgeSession(req, { encrypted: false }, 'mx.a.test:25');
    assert.equal(v.refuse, undefined);
    assert.equal(v.facts.failure, 'starttls-not-supported');
  });
  it('verify refuses an untrusted chain with the RFC 8460 failure type', () => {
    const v = judgeSession(
      requirementFor('verify', 'mx.a.test'),
      {
        encrypted: true,
        version: 'TLSv1.3',
        authorized: false,
        authorizationError: 'DEPTH_ZERO_SELF_SIGNED_CERT',
      },
      'mx.a.test:25',
    );
    assert.match(v.refuse ?? '', /not valid for mx\.a\.test \(verify\): certificate-not-trusted/);
    assert.deepEqual(
      [v.facts.version, v.facts.verified, v.facts.failure],
      ['TLSv1.3', false, 'certificate-not-trusted'],
    );
  });
  it('required accepts an untrusted chain (encryption without authentication)', () => {
    const v = judgeSession(
      requirementFor('required', 'mx.a.test'),
      {
        encrypted: true,
        version: 'TLSv1.3',
        authorized: false,
        authorizationError: 'DEPTH_ZERO_SELF_SIGNED_CERT',
      },
      'mx.a.test:25',
    );
    assert.equal(v.refuse, undefined);
    assert.equal(v.facts.verified, false);
  });
});

describe('certificate errors → RFC 8460 result types', () => {
  for (const [code, type] of [
    ['CERT_HAS_EXPIRED', 'certificate-expired'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'certificate-host-mismatch'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'certificate-not-trusted'],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'certificate-not-trusted'],
    ['SOMETHING_ELSE', 'validation-failure'],
  ] as const) {
    it(`${code} → ${type}`, () => assert.equal(certFailureType(code), type));
  }
});
