/**
 * Routing: decides, per recipient, where mail goes (DESIGN §1.4) and groups recipients that share a route into
 * one delivery job. Pure: it reads a config snapshot and the set of suppressed recipients, it does no I/O, so
 * the same inputs always give the same jobs (a redelivered submission republishes identical jobs, which the
 * Nats-Msg-Id dedupe then drops).
 */

import type { ConfigSnapshot, DomainConfig, PolicyConfig } from './config/resolved.ts';
import { DEFAULT_POOL, DEFAULT_RETRY, type MxTlsMode } from './config/resolved.ts';
import type { DeliveryJob, DsnParams, Envelope, Route } from './types.ts';

/** What routing decided for one envelope. */
export interface DeliveryPlan {
  /** One job per (pool, route), in order of the first recipient that needed it; attempt 1. */
  jobs: DeliveryJob[];
  /** Recipients on the suppression list: final at once, never attempted. */
  suppressed: string[];
  /** The RelayPolicy (`<namespace>/<name>`) that relayed the message, for its events (webhooks filter on it). */
  policy?: string;
}

/** Lower-cased domain part of an address (the part after the last '@'). */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return (at < 0 ? '' : address.slice(at + 1)).toLowerCase();
}

/**
 * Looks up the RelayPolicy named on an envelope. Snapshot keys are `<namespace>.<name>`; a policy name written
 * as its source (`<namespace>/<name>`) is accepted too.
 */
export function policyFor(env: Envelope, snapshot: ConfigSnapshot): PolicyConfig | undefined {
  if (!env.policy || env.kind === 'dsn') return undefined;
  return snapshot.policies.get(env.policy) ?? snapshot.policies.get(env.policy.replace('/', '.'));
}

/** The route of one recipient: inbound mailbox, else the policy's smarthost, else the domain's MX. */
export function routeRecipient(
  recipient: string,
  snapshot: ConfigSnapshot,
  policy: PolicyConfig | undefined,
): Route {
  const domain = domainOf(recipient);
  const deliverTo = snapshot.domains.get(domain)?.inbound?.deliverTo;
  if (deliverTo) {
    return {
      kind: 'mailbox',
      host: deliverTo.host,
      port: deliverTo.port,
      protocol: deliverTo.protocol,
      tls: deliverTo.tls,
    };
  }
  const sh = policy?.delivery.smarthost;
  if (sh) {
    return {
      kind: 'smarthost',
      host: sh.host,
      port: sh.port,
      tls: sh.tls,
      ...(sh.auth ? { auth: sh.auth } : {}),
    };
  }
  return { kind: 'mx', domain, tls: mxTlsFor(domain, policy) };
}

/**
 * The TLS policy for MX delivery to a recipient domain: the first `destinations[]` entry with a `tls` whose
 * `match` is the domain itself, else a `*` entry with a `tls`, else `delivery.tls`. Mail without a policy
 * (inbound-only, DSNs, TLS reports — RFC 8460 §5.3 wants reports delivered despite TLS failures) is
 * opportunistic.
 */
export function mxTlsFor(domain: string, policy: PolicyConfig | undefined): MxTlsMode {
  if (!policy) return 'opportunistic';
  const withTls = policy.delivery.destinations.filter((d) => d.tls);
  const exact = withTls.find((d) => d.match.toLowerCase() === domain);
  const star = withTls.find((d) => d.match === '*');
  return exact?.tls ?? star?.tls ?? policy.delivery.tls;
}

/** The destination key of a route: the OUTBOUND subject token delivery groups connections by. */
export function destinationKey(route: Route): string {
  return route.kind === 'mx' ? route.domain : `${route.host}:${route.port}`;
}

function dkimFor(from: string, snapshot: ConfigSnapshot): DeliveryJob['dkim'] {
  const domain = domainOf(from);
  const cfg: DomainConfig | undefined = domain ? snapshot.domains.get(domain) : undefined;
  return cfg?.dkim ? { domain, selector: cfg.dkim.selector, privateKey: cfg.dkim.privateKey } : undefined;
}

/**
 * Plans the delivery of an accepted envelope.
 * @param isSuppressed whether a recipient is on the suppression list (looked up by the caller).
 */
export function planDelivery(
  env: Envelope,
  snapshot: ConfigSnapshot,
  isSuppressed: (recipient: string) => boolean = () => false,
): DeliveryPlan {
  const policy = policyFor(env, snapshot);
  const pool = policy?.delivery.pool ?? DEFAULT_POOL;
  const retry = policy?.delivery.retry ?? DEFAULT_RETRY;
  const expiresAt = new Date(Date.parse(env.receivedAt) + retry.maxLifetimeMs).toISOString();
  const dkim = env.kind === 'dsn' ? undefined : dkimFor(env.from, snapshot);
  const groups = new Map<string, DeliveryJob>();
  const suppressed: string[] = [];
  for (const recipient of env.to) {
    if (isSuppressed(recipient)) {
      suppressed.push(recipient);
      continue;
    }
    const route = routeRecipient(recipient, snapshot, policy);
    const key = JSON.stringify([pool, route]);
    const existing = groups.get(key);
    if (existing) {
      if (!existing.recipients.includes(recipient)) existing.recipients.push(recipient);
      continue;
    }
    groups.set(key, {
      jobId: `${env.id}.${groups.size}`,
      messageId: env.id,
      attempt: 1,
      from: env.from,
      recipients: [recipient],
      route,
      pool,
      body: env.body,
      receivedAt: env.receivedAt,
      expiresAt,
      retry,
      kind: env.kind ?? 'mail',
      ...(policy ? { policy: policy.source } : {}),
      ...(dkim ? { dkim } : {}),
    });
  }
  const jobs = [...groups.values()].map((job) => {
    const dsn = env.dsn && narrowDsn(env.dsn, job.recipients);
    return dsn ? { ...job, dsn } : job;
  });
  return { jobs, suppressed, ...(policy ? { policy: policy.source } : {}) };
}

/** A message's RFC 3461 parameters as far as some of its recipients need them (undefined when none apply). */
export function narrowDsn(dsn: DsnParams, recipients: string[]): DsnParams | undefined {
  const mine = Object.entries(dsn.recipients ?? {}).filter(([r]) => recipients.includes(r));
  const out: DsnParams = {
    ...(dsn.ret ? { ret: dsn.ret } : {}),
    ...(dsn.envid !== undefined ? { envid: dsn.envid } : {}),
    ...(mine.length > 0 ? { recipients: Object.fromEntries(mine) } : {}),
  };
  return Object.keys(out).length > 0 ? out : undefined;
}
