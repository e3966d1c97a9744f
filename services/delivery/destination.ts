/**
 * Opening an SMTP/LMTP session to a route's destination.
 * - `mx`: mx-connect resolves MX per RFC 5321 §5 (preference order, implicit A/AAAA, null MX per RFC 7505) and
 *   connects, trying the next MX when a TCP connect fails. A host that accepts TCP but then refuses the session
 *   (421 greeting, EHLO failure, drop) is also "a failure" in the §5.1 sense: we retry mx-connect with that IP in
 *   `ignoreMXHosts` so the next MX is used.
 * - `smarthost` / `mailbox`: connect to host:port directly (mailbox protocol 'lmtp' → LMTP).
 */
import { validateMx } from 'mailauth/lib/mta-sts.js';
import mxConnect from 'mx-connect';
import { hostAddress, type ResolveRecords } from '../common/dns-resolver.ts';
import { openSealed, SECRET_CONTEXT, type SecretBox } from '../common/secrets.ts';
import type { Route, TlsFacts, TlsMode } from '../common/types.ts';
import type { DnssecResolver, TlsaRecord } from './dnssec.ts';
import type { MtaStsResolver, StsLookup } from './mta-sts.ts';
import { openSession, type SessionError, type SmtpSession } from './smtp-session.ts';
import { requirementFor } from './tls-policy.ts';
import type { TlsSessionRecord } from './tlsrpt/sessions.ts';

/** Bound on MX hosts tried per attempt (mx-connect itself also caps the list). */
const MAX_MX_SESSIONS = 5;

export interface DestinationContext {
  name: string;
  /** Opens sealed smarthost passwords (services/common/secrets.ts); absent = a route with AUTH defers. */
  secrets?: SecretBox | undefined;
  timeoutMs: number;
  mxPort: number;
  allowLoopbackMx: boolean;
  resolveRecords?: ResolveRecords | undefined;
  /** MTA-STS policies (mta-sts and dane modes); absent = those modes find no policy. */
  mtaSts?: MtaStsResolver | undefined;
  /** A validating resolver's answers with their AD bit (dane mode); absent = no TLSA is ever authenticated. */
  dnssec?: DnssecResolver | undefined;
  /** Every MX session of a policy-discovering mode (mta-sts, dane), for TLS-RPT (RFC 8460). */
  onTlsSession?: ((record: TlsSessionRecord) => void) | undefined;
}

/** Pooling key: jobs with the same key may share a connection. */
export function destinationKey(route: Route, mxPort: number): string {
  switch (route.kind) {
    case 'mx':
      return `mx:${route.domain.toLowerCase()}:${mxPort}:${route.tls}`;
    case 'smarthost':
      return `smtp:${route.host}:${route.port}:${route.tls}:${route.auth?.user ?? ''}`;
    case 'mailbox':
      return `${route.protocol}:${route.host}:${route.port}:${route.tls}`;
  }
}

/**
 * The smarthost's clear-text credentials, opened just before AUTH and kept only in the session. A password that
 * does not open (no key, rotated-out key, sealed for another host) is our configuration problem: the error has no
 * SMTP reply, so classify.ts defers the job and the reason lands in the log and the job's outcome.
 */
function openAuth(route: Extract<Route, { kind: 'smarthost' }>, box: SecretBox | undefined) {
  const auth = route.auth!;
  const context = SECRET_CONTEXT.smarthostPassword(route.host, route.port, auth.user);
  try {
    return { user: auth.user, pass: openSealed(box, auth.pass, context) };
  } catch (err) {
    throw Object.assign(new Error(`cannot open the smarthost password: ${(err as Error).message}`), {
      code: 'ESECRET',
    });
  }
}

/** A human name for logs. */
export function destinationName(route: Route): string {
  return route.kind === 'mx' ? route.domain : `${route.host}:${route.port}`;
}

export async function openDestination(route: Route, ctx: DestinationContext): Promise<SmtpSession> {
  const opts = { name: ctx.name, timeoutMs: ctx.timeoutMs };
  if (route.kind !== 'mx') {
    return openSession(
      {
        // Looked up at POSTERN_DNS_SERVERS when configured (nodemailer would ask the system resolver).
        host: await hostAddress(ctx.resolveRecords, route.host),
        port: route.port,
        remoteMta: route.host,
        lmtp: route.kind === 'mailbox' && route.protocol === 'lmtp',
        // mta-sts/dane are MX-only (the schema refuses them here); anything else is judged for this host.
        tls: requirementFor(route.tls, route.host),
        ...(route.kind === 'smarthost' && route.auth ? { auth: openAuth(route, ctx.secrets) } : {}),
      },
      opts,
    );
  }
  const mode = route.tls;
  // RFC 8461 §5.1: the policy is looked up (or taken from the shared cache) before any MX is tried.
  const sts: StsLookup | undefined =
    (mode === 'mta-sts' || mode === 'dane') && ctx.mtaSts ? await ctx.mtaSts.lookup(route.domain) : undefined;
  const report = (r: Omit<TlsSessionRecord, 'at' | 'policyDomain'>) =>
    ctx.onTlsSession?.({ at: new Date().toISOString(), policyDomain: route.domain, ...r });
  const failed: string[] = [];
  let lastErr: SessionError | undefined;
  for (let i = 0; i < MAX_MX_SESSIONS; i++) {
    let conn: Awaited<ReturnType<typeof mxConnect>>;
    try {
      conn = await mxConnect({
        target: route.domain,
        port: ctx.mxPort,
        maxConnectTime: ctx.timeoutMs,
        localHostname: ctx.name,
        ignoreMXHosts: failed,
        dnsOptions: {
          // mx-connect's default allows loopback/private MX targets; production must not (see settings.ts).
          blockLocalAddresses: !ctx.allowLoopbackMx,
          ...(ctx.resolveRecords ? { resolveRecords: ctx.resolveRecords } : {}),
        },
        ...(mode === 'dane' && ctx.dnssec ? { dane: daneOptions(ctx.dnssec) } : {}),
      });
    } catch (err) {
      const e = err as SessionError;
      // A DNSSEC lookup that failed (bogus data: SERVFAIL from the validating resolver) must not be read as
      // "no TLSA": mx-connect refuses the host and the attempt defers (RFC 7672 §2.2).
      if (e.category === 'dane') {
        report({
          ...policyOf(mode, sts, undefined),
          receivingMxHostname: '',
          result: 'dnssec-invalid',
          detail: e.message,
        });
      }
      // Every remaining MX was skipped after a session failure: report the last remote answer, not "no MX".
      throw failed.length > 0 && lastErr ? lastErr : err;
    }
    const tlsa = conn.daneEnabled && conn.tlsaRecords?.length ? conn.tlsaRecords : undefined;
    const policy = policyOf(mode, sts, tlsa);
    const where = {
      receivingMxHostname: conn.hostname,
      receivingIp: conn.host,
      sendingMtaIp: conn.localAddress,
    };
    // RFC 8461 §4.1: under an enforce policy only MX hosts the policy lists may get mail (DANE hosts excepted,
    // §2); testing delivers and reports.
    const stsMismatch =
      !tlsa && sts?.policy && sts.policy.mode !== 'none' && !validateMx(conn.hostname, sts.policy).valid;
    if (stsMismatch && sts?.policy?.mode === 'enforce') {
      conn.socket.destroy();
      failed.push(conn.host);
      const detail = `MX host ${conn.hostname} is not listed in the MTA-STS policy of ${route.domain}`;
      const facts: TlsFacts = {
        policy: mode,
        applied: 'mta-sts-enforce',
        verified: false,
        failure: 'validation-failure',
        detail,
      };
      lastErr = Object.assign(new Error(detail), { code: 'ETLSVERIFY', category: 'tls', tls: facts });
      report({ ...policy, ...where, result: 'validation-failure', detail });
      continue;
    }
    try {
      const session = await openSession(
        {
          host: conn.host,
          port: conn.port,
          socket: conn.socket,
          remoteMta: conn.hostname,
          lmtp: false,
          tls: requirementFor(mode, conn.hostname, { sts: sts?.policy, tlsa }),
        },
        opts,
      );
      const failure = stsMismatch
        ? { result: 'validation-failure' as const, detail: `MX host ${conn.hostname} not in the policy` }
        : session.tls.failure
          ? { result: session.tls.failure, detail: session.tls.detail ?? '' }
          : sts?.failure
            ? { result: sts.failure.type, detail: sts.failure.detail }
            : { result: 'success' as const };
      report({ ...policy, ...where, ...failure });
      return session;
    } catch (err) {
      lastErr = err as SessionError;
      failed.push(conn.host);
      if (lastErr.tls?.failure) {
        report({ ...policy, ...where, result: lastErr.tls.failure, detail: lastErr.tls.detail ?? '' });
      }
    }
  }
  throw lastErr ?? new Error(`no usable MX for ${route.domain}`);
}

/** mx-connect's DANE hooks over the validating resolver: only authenticated TLSA records count. */
function daneOptions(dnssec: DnssecResolver) {
  return {
    enabled: true,
    // RFC 7672 §2.2.2: an unauthenticated answer is treated as no TLSA records (non-DANE behaviour).
    resolveTlsa: async (name: string) => {
      const a = await dnssec.tlsa(name);
      return a.authenticated ? a.records : [];
    },
    checkDnssecSecure: async (host: string) => ({ secure: (await dnssec.address(host)).authenticated }),
  };
}

/** The RFC 8460 policy block a session is reported under. */
function policyOf(
  mode: TlsMode,
  sts: StsLookup | undefined,
  tlsa: TlsaRecord[] | undefined,
): Pick<TlsSessionRecord, 'policyType' | 'policyString' | 'mxHost'> {
  if (mode === 'dane' && tlsa) {
    return {
      policyType: 'tlsa',
      policyString: tlsa.map((r) => `${r.usage} ${r.selector} ${r.mtype} ${r.cert.toString('hex')}`),
      mxHost: [],
    };
  }
  if (sts?.policy)
    return { policyType: 'sts', policyString: sts.policyString ?? [], mxHost: sts.policy.mx ?? [] };
  if (sts?.failure) return { policyType: 'sts', policyString: [], mxHost: [] };
  return { policyType: 'no-policy-found', policyString: [], mxHost: [] };
}
