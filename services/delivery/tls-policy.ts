/**
 * What a route's TLS mode demands of one SMTP session, and whether the session kept it. Pure: the caller
 * supplies the MTA-STS policy, the authenticated TLSA records and, after STARTTLS, the peer certificate.
 *
 * Never a silent downgrade: a mode that must encrypt or verify turns every shortfall into an error the attempt
 * defers on (4.7.x); only `opportunistic` (RFC 7435) and MTA-STS `testing` (RFC 8461 §5) go on, and testing
 * still reports what it would have refused (TLS-RPT, RFC 8460).
 */

import { createRequire } from 'node:module';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import type { TlsFacts, TlsFailureType, TlsMode } from '../common/types.ts';
import type { TlsaRecord } from './dnssec.ts';

// mx-connect's RFC 6698 matcher (selector, matching type, DANE-TA path building); see mx-connect.d.ts.
const { verifyCertAgainstTlsa } = createRequire(import.meta.url)('mx-connect/lib/dane.js') as {
  verifyCertAgainstTlsa(
    cert: unknown,
    records: TlsaRecord[],
    chain?: unknown[],
  ): { valid: boolean; error: string | null; usage?: string };
};

/** An MTA-STS policy as mailauth returns it (RFC 8461 §3.2). */
export interface StsPolicy {
  id?: string | false;
  mode: 'enforce' | 'testing' | 'none';
  mx?: string[];
  maxAge?: number;
}

export interface TlsRequirement {
  policy: TlsMode;
  /** See TlsFacts.applied. */
  applied: string;
  /** STARTTLS must succeed, else no mail is sent. */
  mustEncrypt: boolean;
  /** How the certificate is judged after the handshake. */
  check: 'none' | 'pkix' | 'dane';
  /** A failed check is only recorded (MTA-STS testing). */
  reportOnly: boolean;
  /** The name the certificate must be valid for: the MX host name or the configured host. */
  hostname: string;
  tlsa?: TlsaRecord[];
}

/**
 * @param sts the recipient domain's MTA-STS policy (mta-sts and dane modes), when one was found.
 * @param tlsa DNSSEC-authenticated TLSA records of the MX host (dane mode), when there are any.
 */
export function requirementFor(
  mode: TlsMode,
  hostname: string,
  found: { sts?: StsPolicy | undefined; tlsa?: TlsaRecord[] | undefined } = {},
): TlsRequirement {
  const base = { policy: mode, hostname, reportOnly: false };
  switch (mode) {
    case 'none':
      return { ...base, applied: 'none', mustEncrypt: false, check: 'none' };
    case 'opportunistic':
      return { ...base, applied: 'opportunistic', mustEncrypt: false, check: 'none' };
    case 'required':
      return { ...base, applied: 'required', mustEncrypt: true, check: 'none' };
    case 'verify':
      return { ...base, applied: 'verify', mustEncrypt: true, check: 'pkix' };
    case 'dane':
    case 'mta-sts': {
      // RFC 8461 §2: a sender that does DANE applies DANE where the host has authenticated TLSA records.
      if (mode === 'dane' && found.tlsa && found.tlsa.length > 0) {
        return { ...base, applied: 'dane', mustEncrypt: true, check: 'dane', tlsa: found.tlsa };
      }
      if (found.sts?.mode === 'enforce') {
        return { ...base, applied: 'mta-sts-enforce', mustEncrypt: true, check: 'pkix' };
      }
      if (found.sts?.mode === 'testing') {
        return { ...base, applied: 'mta-sts-testing', mustEncrypt: false, check: 'pkix', reportOnly: true };
      }
      // RFC 7672 §2.2 / RFC 8461 §5: no authenticated TLSA and no policy → pre-DANE opportunistic TLS.
      return { ...base, applied: 'opportunistic', mustEncrypt: false, check: 'none' };
    }
  }
}

/** Node's certificate verification error codes → RFC 8460 §4.3 result types. */
export function certFailureType(code: string | undefined): TlsFailureType {
  switch (code) {
    case 'CERT_HAS_EXPIRED':
    case 'CERT_NOT_YET_VALID':
      return 'certificate-expired';
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
    case 'HOSTNAME_MISMATCH':
      return 'certificate-host-mismatch';
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'CERT_UNTRUSTED':
    case 'CERT_REVOKED':
      return 'certificate-not-trusted';
    default:
      return 'validation-failure';
  }
}

/** The TLS state of a session after EHLO (and STARTTLS when it happened). */
export interface TlsState {
  encrypted: boolean;
  version?: string | undefined;
  cipher?: string | undefined;
  /** Node's PKIX verdict against the trusted CAs. */
  authorized?: boolean;
  authorizationError?: string | undefined;
  /** getPeerCertificate(true): the leaf with its issuer chain. */
  peer?: PeerCertificate | undefined;
}

export interface TlsVerdict {
  facts: TlsFacts;
  /** Set when the session must not carry mail. */
  refuse?: string;
}

function issuerChain(peer: PeerCertificate): PeerCertificate[] {
  const chain: PeerCertificate[] = [];
  let c = (peer as PeerCertificate & { issuerCertificate?: PeerCertificate }).issuerCertificate;
  // A self-signed root points at itself; bounded by the seen set.
  const seen = new Set<string>([peer.fingerprint256]);
  while (c && !seen.has(c.fingerprint256)) {
    seen.add(c.fingerprint256);
    chain.push(c);
    c = (c as PeerCertificate & { issuerCertificate?: PeerCertificate }).issuerCertificate;
  }
  return chain;
}

/** PKIX: a trusted chain (Node checked it against the CA store) and a name match for the host. */
function pkix(req: TlsRequirement, s: TlsState): { ok: boolean; failure?: TlsFailureType; detail?: string } {
  if (!s.authorized) {
    return {
      ok: false,
      failure: certFailureType(s.authorizationError),
      detail: `certificate not trusted: ${s.authorizationError ?? 'unknown reason'}`,
    };
  }
  const nameErr = s.peer ? checkServerIdentity(req.hostname, s.peer) : new Error('no peer certificate');
  if (nameErr) {
    return { ok: false, failure: 'certificate-host-mismatch', detail: nameErr.message };
  }
  return { ok: true };
}

/** RFC 7672 §3: DANE-EE ignores names and dates; DANE-TA needs the chain and the MX host name. */
function dane(req: TlsRequirement, s: TlsState): { ok: boolean; failure?: TlsFailureType; detail?: string } {
  if (!s.peer) return { ok: false, failure: 'tlsa-invalid', detail: 'no peer certificate' };
  const result = verifyCertAgainstTlsa(s.peer, req.tlsa ?? [], issuerChain(s.peer));
  if (!result.valid) {
    return { ok: false, failure: 'tlsa-invalid', detail: result.error ?? 'no TLSA record matched' };
  }
  if (result.usage === 'DANE-TA') {
    const nameErr = checkServerIdentity(req.hostname, s.peer);
    if (nameErr) return { ok: false, failure: 'certificate-host-mismatch', detail: nameErr.message };
  }
  return { ok: true };
}

/**
 * Judges a session against its requirement.
 * @param where `host:port` for messages ("TLS required but not offered by mx.example:25").
 */
export function judgeSession(req: TlsRequirement, s: TlsState, where: string): TlsVerdict {
  const facts: TlsFacts = { policy: req.policy, applied: req.applied, verified: false };
  if (!s.encrypted) {
    if (req.mustEncrypt) {
      return {
        facts: { ...facts, failure: 'starttls-not-supported', detail: `STARTTLS not offered by ${where}` },
        refuse: `TLS required (${req.applied}) but not offered by ${where}`,
      };
    }
    // Testing policies report what enforce would have refused (RFC 8461 §5, RFC 8460).
    return req.reportOnly
      ? { facts: { ...facts, failure: 'starttls-not-supported', detail: `STARTTLS not offered by ${where}` } }
      : { facts };
  }
  const negotiated: TlsFacts = {
    ...facts,
    ...(s.version ? { version: s.version } : {}),
    ...(s.cipher ? { cipher: s.cipher } : {}),
  };
  const result = req.check === 'dane' ? dane(req, s) : pkix(req, s);
  if (result.ok) return { facts: { ...negotiated, verified: true } };
  const failed: TlsFacts = {
    ...negotiated,
    ...(result.failure ? { failure: result.failure } : {}),
    ...(result.detail ? { detail: result.detail } : {}),
  };
  // In opportunistic/required modes the verdict is information only: nothing was promised about the peer.
  if (req.check === 'none' || req.reportOnly) {
    return { facts: req.check === 'none' ? negotiated : failed };
  }
  return {
    facts: failed,
    refuse: `TLS certificate of ${where} not valid for ${req.hostname} (${req.applied}): ${result.failure}: ${result.detail}`,
  };
}
