/**
 * MTA-STS (RFC 8461) policy discovery with a cache shared by every delivery process: mailauth's `getPolicy`
 * does the protocol (`_mta-sts.<domain>` TXT id, HTTPS fetch of `https://mta-sts.<domain>/.well-known/
 * mta-sts.txt` with a PKIX-valid certificate, parsing, max_age expiry, reuse of a valid cached policy when
 * discovery fails, RFC 8461 §3.3/§5.1); the cache is the NATS KV bucket `mta-sts`, so N pods fetch a policy once
 * per max_age (or when its TXT id changes), not N times.
 *
 * mx-connect has an MTA-STS switch too, but it calls the mailauth 5 bundled with it, whose getPolicy refetches a
 * policy that is still fresh (the cache check is inverted) — so policy lookup lives here and mx-connect only
 * connects (destination.ts checks the MX host against the policy).
 */
import { createRequire } from 'node:module';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { getPolicy } from 'mailauth/lib/mta-sts.js';
import type { ResolveRecords } from '../common/dns-resolver.ts';
import { subjectToken } from '../common/nats.ts';
import type { Logger } from '../common/telemetry.ts';
import type { TlsFailureType } from '../common/types.ts';
import type { StsPolicy } from './tls-policy.ts';

export const MTA_STS_BUCKET = 'mta-sts';

// mx-connect's address rules (loopback/private blocked unless allowed), so the policy fetch cannot be pointed at
// internal hosts any more than an MX can.
const { isInvalid } = createRequire(import.meta.url)('mx-connect/lib/tools.js') as {
  isInvalid(delivery: { dnsOptions: { blockLocalAddresses: boolean } }, ip: string): string | false;
};

/** The addresses among `ips` delivery may connect to (loopback/private only when allowed). */
export function usableAddresses(ips: string[], allowLocalAddresses: boolean): string[] {
  return ips.filter((ip) => !isInvalid({ dnsOptions: { blockLocalAddresses: !allowLocalAddresses } }, ip));
}

export interface StsLookup {
  /** The policy in force (enforce/testing), undefined when the domain has none (or mode none). */
  policy?: StsPolicy | undefined;
  /** The policy as its text lines, for TLS-RPT `policy-string`. */
  policyString?: string[];
  /** Discovery or fetch failed and no valid cached policy exists (RFC 8460 result type). */
  failure?: { type: TlsFailureType; detail: string };
}

export interface MtaStsResolver {
  lookup(domain: string): Promise<StsLookup>;
}

/** mailauth error codes → RFC 8460 §4.3.2 policy failure types. */
export function stsFailureType(err: { code?: string } | undefined): TlsFailureType {
  const code = err?.code ?? '';
  if (/^(invalid_sts|multi_sts|policy_too_large|invalid_content_type)/.test(code))
    return 'sts-policy-invalid';
  if (/CERT|SELF_SIGNED|UNABLE_TO|ALTNAME/.test(code)) return 'sts-webpki-invalid';
  return 'sts-policy-fetch-error';
}

export function policyLines(p: StsPolicy): string[] {
  return [
    'version: STSv1',
    `mode: ${p.mode}`,
    ...(p.mx ?? []).map((m) => `mx: ${m}`),
    `max_age: ${p.maxAge ?? 0}`,
  ];
}

interface CachedPolicy extends StsPolicy {
  expires?: string;
  /** Why the placeholder (mode none, refetch after an hour) was stored: keeps reporting the failure. */
  fetchError?: { code?: string; message?: string };
}

/** Opens (creating when missing) the shared policy cache. Idempotent. */
export async function openStsCache(nc: NatsConnection, replicas = 1): Promise<KV> {
  // max_age of a policy is at most a year (RFC 8461 §3.2); mailauth checks `expires` itself.
  return new Kvm(nc).create(MTA_STS_BUCKET, { history: 1, replicas, ttl: 366 * 86_400_000 });
}

export function createMtaStsResolver(opts: {
  kv?: KV | undefined;
  resolveRecords?: ResolveRecords | undefined;
  allowLocalAddresses: boolean;
  log: Logger;
}): MtaStsResolver {
  const { kv, log } = opts;
  const resolver = async (name: string, type: string): Promise<string[] | string[][]> => {
    const list = opts.resolveRecords
      ? await opts.resolveRecords(name, type as 'A')
      : await (await import('node:dns/promises')).resolve(name, type);
    if (type !== 'A' && type !== 'AAAA') return list as string[][];
    return usableAddresses(list as string[], opts.allowLocalAddresses);
  };
  const read = async (domain: string): Promise<CachedPolicy | undefined> => {
    if (!kv) return undefined;
    try {
      const e = await kv.get(subjectToken(domain));
      return e?.operation === 'PUT' && e.length > 0 ? (e.json() as CachedPolicy) : undefined;
    } catch (err) {
      log.warn({ domain, err: (err as Error).message }, 'MTA-STS cache read failed; fetching');
      return undefined;
    }
  };
  return {
    async lookup(domain) {
      const known = await read(domain);
      const { policy, status } = (await getPolicy(domain, known ?? null, { resolver })) as {
        policy: CachedPolicy & { error?: { code?: string; message?: string } };
        status: string;
      };
      if (kv && (status === 'found' || status === 'errored') && !(status === 'errored' && known)) {
        // The error object does not survive JSON; the placeholder (mode none, retry in an hour) does.
        const { error, ...rest } = policy;
        const storable: CachedPolicy = {
          ...rest,
          ...(error ? { fetchError: { code: error.code, message: error.message } } : {}),
        };
        await kv
          .put(subjectToken(domain), JSON.stringify(storable))
          .catch((err: Error) =>
            log.warn({ domain, err: err.message }, 'MTA-STS cache write failed; next lookup fetches again'),
          );
      }
      const inForce = policy.mode === 'enforce' || policy.mode === 'testing' ? policy : undefined;
      const error = policy.error ?? policy.fetchError;
      const failure =
        error && !inForce
          ? {
              type: stsFailureType(error),
              detail: `MTA-STS policy of ${domain}: ${error.message ?? 'fetch failed'}`,
            }
          : undefined;
      if (failure) log.info({ domain, failure }, 'MTA-STS policy unavailable; treating as no policy');
      return {
        ...(inForce ? { policy: inForce, policyString: policyLines(inForce) } : {}),
        ...(failure ? { failure } : {}),
      };
    },
  };
}
