/**
 * ARC sealing (RFC 8617 §5.1) of mail a RelayPolicy relays, when the policy names a sealing key (`arcSeal`): Postern
 * becomes a hop of the message's ARC chain and records what it knew of the sender — the AUTH identity (RFC 8601
 * §2.7.4 `auth`), or nothing for a client trusted by network.
 *
 * A message without an ARC chain is sealed as instance 1 (cv=none) with mailauth's sealMessage: no DNS at all.
 * A message that already carries a chain must have it validated first (the new seal's cv= is the chain's result),
 * which mailauth's authenticate() does (DNS through the shared resolver) before sealing.
 */
import { authenticate, sealMessage } from 'mailauth';
import type { PolicyConfig } from '../common/config/resolved.ts';
import type { DnsResolver } from '../common/dns-resolver.ts';
import { fields, formatAuthservId, headerEnd } from './auth-results.ts';

export interface SealRequest {
  message: Buffer;
  seal: NonNullable<PolicyConfig['arcSeal']>;
  authservId: string;
  /** The AUTH identity the client proved, if any. */
  user?: string;
  ip: string;
  helo: string;
  sender: string;
  resolver: DnsResolver;
}

function hasArcChain(message: Buffer): boolean {
  const end = headerEnd(message);
  if (end <= 0) return false;
  return fields(message.subarray(0, end + 2).toString('latin1')).some((f) => /^arc-seal[ \t]*:/i.test(f));
}

/** RFC 8601 §2.7.4: `auth=pass smtp.auth=<identity>`; an identity that is no plain token is quoted. */
function authResults(authservId: string, user: string | undefined): string {
  const id = formatAuthservId(authservId);
  if (user === undefined) return `${id}; none`;
  const value = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.@]+$/.test(user)
    ? user
    : `"${user.replace(/["\\]/g, '\\$&')}"`;
  return `${id}; auth=pass smtp.auth=${value}`;
}

/** The ARC header fields (ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results) to put on top. */
export async function arcSealHeaders(req: SealRequest): Promise<string> {
  const seal = {
    signingDomain: req.seal.domain,
    selector: req.seal.selector,
    privateKey: req.seal.privateKey,
  };
  if (!hasArcChain(req.message)) {
    const headers = await sealMessage(req.message, {
      ...seal,
      cv: 'none',
      authResults: authResults(req.authservId, req.user),
    });
    return headers.toString('latin1');
  }
  const res = await authenticate(req.message, {
    ip: req.ip,
    helo: req.helo,
    sender: req.sender,
    mta: req.authservId,
    resolver: req.resolver.resolve,
    seal,
    disableBimi: true,
  });
  // authenticate() returns the new ARC set with its own Authentication-Results and Received-SPF: keep the ARC set.
  return fields(res.headers)
    .filter((f) => /^arc-/i.test(f))
    .join('');
}
