/**
 * Sender authentication of inbound mail at end of DATA (docs/ingress.md "Sender authentication"): SPF, DKIM, ARC
 * and DMARC with mailauth's authenticate(), iprev (iprev.ts), all through the shared resolver
 * (POSTERN_DNS_SERVERS); forged Authentication-Results claiming our authserv-id removed (RFC 8601 §5); our own
 * header composed; the recipient domains' policies applied (auth-policy.ts). One call from smtp-listener.ts.
 *
 * Applies to a transaction with at least one recipient in an inbound MailDomain. Clients a RelayPolicy knows
 * (listed network or authenticated user) are our own senders and are not verified — their mail gets no header,
 * forged ones are still removed. A transaction mixing inbound and relayed recipients can only come from such a
 * client (everyone else is refused relaying at RCPT), so it is never verified either. Mail a RelayPolicy with an
 * `arcSeal` key relays is ARC-sealed instead (arc-seal.ts).
 */
import { authenticate } from 'mailauth';
import type { AuthenticationPolicy, ConfigSnapshot } from '../common/config/resolved.ts';
import { DEFAULT_AUTHENTICATION } from '../common/config/resolved.ts';
import type { DnsResolver } from '../common/dns-resolver.ts';
import type { Logger } from '../common/telemetry.ts';
import { domainOf } from './address-syntax.ts';
import { arcSealHeaders } from './arc-seal.ts';
import { type AuthFacts, type AuthResult, type AuthVerdict, decideAuthentication } from './auth-policy.ts';
import { authResultsHeader, removeForgedResults } from './auth-results.ts';
import { iprev, iprevInfo } from './iprev.ts';
import { type ClientIdentity, clientPolicy } from './recipient-policy.ts';

export interface SenderAuthRequest {
  client: ClientIdentity;
  /** EHLO/HELO argument. */
  helo: string;
  /** MAIL FROM, '' for `<>`. */
  sender: string;
  recipients: string[];
  /** The message as received (header section and body, no trace header of ours yet). */
  message: Buffer;
  snapshot: ConfigSnapshot;
  /** The RelayPolicy that allowed relaying (Envelope.policy): its `arcSeal` key seals the message. */
  policy?: string;
}

export interface SenderAuthOutcome {
  /** Header field(s) to put on top of the message ('' when nothing was verified). */
  header: string;
  /** The message without forged Authentication-Results. */
  message: Buffer;
  verdict: AuthVerdict;
  /** Whether verification ran (false: no inbound recipient, or a RelayPolicy client). */
  checked: boolean;
}

export interface SenderAuth {
  check(req: SenderAuthRequest): Promise<SenderAuthOutcome>;
}

export interface SenderAuthOptions {
  /** RFC 8601 §2.5 authserv-id: names this ingress (POSTERN_AUTHSERV_ID, default the hostname). */
  authservId: string;
  resolver: DnsResolver;
  /** Bound on all lookups of one message; past it the message is accepted with `none` (never a refusal). */
  timeoutMs: number;
  log: Logger;
  /** Counts each verified message: verdict and DMARC result (unverified = timeout or error, dmarc "none"). */
  count?: (action: string, dmarc: string) => void;
}

/** mailauth's results, as far as this module reads them. */
interface MailauthResult {
  dkim?: { results?: { info?: string }[] };
  spf?: { domain?: string; status: { result: string }; info?: string } | false;
  arc?:
    | {
        status: { result: string };
        info?: string;
        authenticationResults?: { dmarc?: { result?: string } };
        chain?: { 'arc-seal'?: { parsed?: { d?: { value?: string } } } }[];
      }
    | false;
  dmarc?:
    | {
        domain?: string;
        policy?: string;
        status: { result: string; header?: { from?: string } };
        info?: string;
      }
    | false;
}

/** The authentication policies of the inbound domains among the recipients (one per domain). */
export function inboundPolicies(recipients: string[], snapshot: ConfigSnapshot): AuthenticationPolicy[] {
  const seen = new Map<string, AuthenticationPolicy>();
  for (const r of recipients) {
    const domain = domainOf(r);
    const d = snapshot.domains.get(domain);
    if (d?.inbound?.enabled && !seen.has(domain)) {
      seen.set(domain, d.inbound.authentication ?? DEFAULT_AUTHENTICATION);
    }
  }
  return [...seen.values()];
}

const asResult = (r: string | undefined): AuthResult => (r ?? 'none').toLowerCase() as AuthResult;

function effectivePolicy(p: string | undefined): 'none' | 'quarantine' | 'reject' {
  const v = (p ?? 'none').toLowerCase();
  return v === 'reject' || v === 'quarantine' ? v : 'none';
}

/** What auth-policy.ts needs, from mailauth's results. */
export function factsOf(res: MailauthResult, ip: string): AuthFacts {
  const spf = res.spf || undefined;
  const dmarc = res.dmarc || undefined;
  const arc = res.arc || undefined;
  // The newest ARC set is the last of the chain (getARChain sorts by instance); its seal's d= is the sealer.
  const newest = arc?.chain?.[arc.chain.length - 1];
  const sealer = newest?.['arc-seal']?.parsed?.d?.value;
  const sealedDmarc = arc?.authenticationResults?.dmarc?.result;
  return {
    ip,
    spf: { result: asResult(spf?.status.result), domain: spf?.domain ?? '' },
    ...(dmarc
      ? {
          dmarc: {
            result: asResult(dmarc.status.result),
            domain: dmarc.status.header?.from ?? dmarc.domain ?? '',
            policy: effectivePolicy(dmarc.policy),
          },
        }
      : {}),
    arc: {
      result: asResult(arc?.status.result),
      ...(sealer ? { sealer: String(sealer).toLowerCase() } : {}),
      ...(sealedDmarc ? { sealedDmarc: String(sealedDmarc).toLowerCase() } : {}),
    },
  };
}

/** A comment on the dmarc resinfo saying what local policy did (RFC 8601 §2.2 allows CFWS anywhere). */
function verdictComment(v: AuthVerdict): string {
  if (v.action === 'accept' && v.trustedArc) return ` (accepted: trusted ARC sealer ${v.trustedArc})`;
  if (v.action === 'hold') return ' (held for review by local policy)';
  return '';
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`sender authentication took over ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export function createSenderAuth(opts: SenderAuthOptions): SenderAuth {
  const { authservId, resolver, timeoutMs, log } = opts;
  const count = opts.count ?? (() => {});
  /** ARC set for mail a sealing RelayPolicy relays ('' when none asked, or when sealing fails: sent unsealed). */
  async function sealRelayed(req: SenderAuthRequest, message: Buffer, ip: string): Promise<string> {
    const seal = req.policy ? req.snapshot.policies.get(req.policy)?.arcSeal : undefined;
    if (!seal) return '';
    try {
      return await withTimeout(
        arcSealHeaders({
          message,
          seal,
          authservId,
          ...(req.client.user !== undefined ? { user: req.client.user } : {}),
          ip,
          helo: req.helo,
          sender: req.sender,
          resolver,
        }),
        timeoutMs,
      );
    } catch (err) {
      log.warn(
        { client: req.client.address, policy: req.policy, err: (err as Error).message },
        'ARC sealing failed',
      );
      return '';
    }
  }

  async function run(req: SenderAuthRequest): Promise<SenderAuthOutcome> {
    const policies = inboundPolicies(req.recipients, req.snapshot);
    const skip = (message: Buffer, reason: string): SenderAuthOutcome => ({
      header: '',
      message,
      verdict: { action: 'accept', reason },
      checked: false,
    });
    const ip = req.client.address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
    let message = req.message;
    if (policies.length > 0) {
      const stripped = removeForgedResults(req.message, authservId);
      message = stripped.message;
      if (stripped.removed > 0) {
        log.info(
          { client: req.client.address, removed: stripped.removed },
          'removed forged Authentication-Results',
        );
      }
    }
    if (policies.length === 0 || clientPolicy(req.client, req.snapshot)) {
      const why = policies.length === 0 ? 'no inbound recipient' : 'RelayPolicy client';
      return { ...skip(message, why), header: await sealRelayed(req, message, ip) };
    }

    try {
      const [res, rev] = await withTimeout(
        Promise.all([
          authenticate(req.message, {
            ip,
            helo: req.helo,
            sender: req.sender,
            mta: authservId,
            resolver: resolver.resolve,
            disableBimi: true,
            disableDmarc: policies.every((p) => p.dmarc === 'off'),
          }) as Promise<MailauthResult>,
          iprev(resolver, ip),
        ]),
        timeoutMs,
      );
      const facts = factsOf(res, ip);
      const verdict = decideAuthentication(facts, policies);
      count(verdict.action, facts.dmarc?.result ?? 'none');
      const dmarc = res.dmarc ? res.dmarc.info : undefined;
      const resinfo = [
        iprevInfo(rev, ip),
        res.spf ? res.spf.info : undefined,
        ...(res.dkim?.results ?? []).map((r) => r.info),
        res.arc ? res.arc.info : undefined,
        dmarc ? `${dmarc}${verdictComment(verdict)}` : undefined,
      ].filter((x): x is string => Boolean(x));
      return { header: authResultsHeader(authservId, resinfo), message, verdict, checked: true };
    } catch (err) {
      // A verification that cannot finish must not lose or refuse mail: accept, and say nothing was verified.
      log.warn({ client: req.client.address, err: (err as Error).message }, 'sender authentication failed');
      count('unverified', 'none');
      return {
        header: authResultsHeader(authservId, []),
        message,
        verdict: { action: 'accept', reason: 'verification failed' },
        checked: true,
      };
    }
  }
  return {
    check: (req) =>
      run(req).catch((err: Error) => {
        // A bug here must not crash the process or refuse mail: the message goes on unverified and unchanged.
        log.error({ client: req.client.address, err: err.message }, 'sender authentication crashed');
        return {
          header: '',
          message: req.message,
          verdict: { action: 'accept', reason: 'error' },
          checked: false,
        };
      }),
  };
}
