/**
 * What to do with a message once its sender was authenticated (pure: results + the recipient domains' policies in,
 * verdict out). sender-auth.ts gathers the results with mailauth; this decides, so every rule has a table test.
 *
 * Rules (docs/ingress.md "Sender authentication"):
 * - DMARC `fail` under `dmarc: enforce` applies the author domain's effective policy (RFC 9989 / RFC 7489 §6.3:
 *   p, or sp/np for a subdomain, one level lower with t=y — mailauth computes it): reject → 550 5.7.1,
 *   quarantine → the domain's `quarantine` action (tag or hold), none → tag.
 * - SPF `fail` (hard fail) under `spfFail: reject` → 550 5.7.23 (RFC 7372 §3.2), after DMARC.
 * - A passing ARC chain whose newest seal is from a trusted sealer and whose ARC-Authentication-Results say
 *   dmarc=pass excuses both (RFC 8617 §7.2: the receiver may honour a trusted intermediary's results).
 * - temperror/permerror/none never refuse: a DNS outage must not bounce mail (the header records it).
 * - Several inbound domains in one transaction: each domain's policy is applied and the strictest verdict wins
 *   (reject > hold > accept), since one DATA reply answers for every recipient.
 */
import type { AuthenticationPolicy } from '../common/config/resolved.ts';
import { REPLIES, type SmtpReply } from './replies.ts';

export type AuthResult =
  | 'pass'
  | 'fail'
  | 'softfail'
  | 'neutral'
  | 'none'
  | 'temperror'
  | 'permerror'
  | 'policy';

/** The facts of one message the decision needs, taken from mailauth's results. */
export interface AuthFacts {
  /** Client address as the SMTP session saw it. */
  ip: string;
  spf: { result: AuthResult; domain: string };
  /** Absent when DMARC was not evaluated (no From domain, or every domain has `dmarc: off`). */
  dmarc?: { result: AuthResult; domain: string; policy: 'none' | 'quarantine' | 'reject' };
  arc: { result: AuthResult; sealer?: string; sealedDmarc?: string };
}

export type AuthVerdict =
  | { action: 'accept'; reason: string; trustedArc?: string }
  | { action: 'hold'; reason: string }
  | { action: 'reject'; reply: SmtpReply; reason: string };

const RANK = { accept: 0, hold: 1, reject: 2 } as const;

/** The trusted sealer vouching for this message under `policy`, if any. */
export function trustedSealer(facts: AuthFacts, policy: AuthenticationPolicy): string | undefined {
  const { arc } = facts;
  if (arc.result !== 'pass' || !arc.sealer || arc.sealedDmarc !== 'pass') return undefined;
  const sealer = arc.sealer.toLowerCase();
  return policy.trustedArcSealers.includes(sealer) ? sealer : undefined;
}

/** One domain's verdict. */
export function decideForDomain(facts: AuthFacts, policy: AuthenticationPolicy): AuthVerdict {
  const sealer = trustedSealer(facts, policy);
  const dmarc = facts.dmarc;
  const dmarcFails = policy.dmarc === 'enforce' && dmarc?.result === 'fail';
  const spfFails = policy.spfFail === 'reject' && facts.spf.result === 'fail';
  if ((dmarcFails || spfFails) && sealer) {
    return {
      action: 'accept',
      reason: `failure excused by trusted ARC sealer ${sealer}`,
      trustedArc: sealer,
    };
  }
  if (dmarcFails && dmarc) {
    if (dmarc.policy === 'reject') {
      return { action: 'reject', reply: REPLIES.dmarcReject(dmarc.domain), reason: 'dmarc-reject' };
    }
    if (dmarc.policy === 'quarantine' && policy.quarantine === 'hold') {
      return { action: 'hold', reason: `dmarc-quarantine ${dmarc.domain}` };
    }
  }
  if (spfFails) {
    return { action: 'reject', reply: REPLIES.spfFail(facts.spf.domain, facts.ip), reason: 'spf-fail' };
  }
  return { action: 'accept', reason: 'policy allows' };
}

/** The strictest verdict over the recipient domains' policies (accept when there is none). */
export function decideAuthentication(facts: AuthFacts, policies: AuthenticationPolicy[]): AuthVerdict {
  let verdict: AuthVerdict = { action: 'accept', reason: 'no policy' };
  for (const p of policies) {
    const v = decideForDomain(facts, p);
    if (RANK[v.action] > RANK[verdict.action] || verdict.reason === 'no policy') verdict = v;
  }
  return verdict;
}
