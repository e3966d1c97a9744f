/**
 * Turns user resources (+ the Secrets they reference) into the resolved documents services run on.
 * Used by the operator and by local mode, so both sources produce identical config.
 */
import { parseDuration } from '../durations.ts';
import { SECRET_CONTEXT, type SecretBox } from '../secrets.ts';
import type { SmarthostAuth, TlsMode } from '../types.ts';
import { API_KEY_ID_PATTERN, hashApiKey, MIN_API_KEY_LENGTH } from './api-key.ts';
import { hashPassword } from './password.ts';
import {
  DEFAULT_AUTHENTICATION,
  DEFAULT_POOL,
  DEFAULT_RETRY,
  type DomainConfig,
  type MxTlsMode,
  type PolicyConfig,
} from './resolved.ts';
import type { MailDomain, RelayPolicy } from './schema.ts';

/** Secret data by Secret name (values already decoded to text). */
export type SecretLookup = (name: string) => Record<string, string> | undefined;

export class MissingSecretError extends Error {}

/** What to say when a secret has to be sealed and the writer holds no key: never write it in clear text. */
const NO_KEY = 'no secrets key to seal it with (POSTERN_SECRETS_KEY_FILE; docs/secrets.md)';

const sourceOf = (r: { metadata: { name: string; namespace?: string } }) =>
  `${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;

/**
 * @param dkimKey PEM private key for the domain's DKIM selector (the operator reads or generates it).
 * @param box seals the key (services/common/secrets.ts); required when there is a key.
 */
export function resolveMailDomain(md: MailDomain, dkimKey?: string, box?: SecretBox): DomainConfig {
  const inbound = md.spec.inbound;
  const dkim = md.spec.outbound?.dkim;
  const domain = md.spec.domain.toLowerCase();
  if (dkim && dkimKey && !box) throw new MissingSecretError(`DKIM key of ${domain}: ${NO_KEY}`);
  return {
    source: sourceOf(md),
    domain,
    inbound:
      inbound && inbound.enabled !== false
        ? {
            enabled: true,
            ...(inbound.recipients ? { recipients: inbound.recipients.map((r) => r.toLowerCase()) } : {}),
            ...(inbound.deliverTo
              ? {
                  deliverTo: {
                    host: inbound.deliverTo.host,
                    port: inbound.deliverTo.port,
                    protocol: inbound.deliverTo.protocol ?? 'lmtp',
                    tls: inbound.deliverTo.tls ?? 'opportunistic',
                  },
                }
              : {}),
            authentication: {
              dmarc: inbound.authentication?.dmarc ?? DEFAULT_AUTHENTICATION.dmarc,
              quarantine: inbound.authentication?.quarantine ?? DEFAULT_AUTHENTICATION.quarantine,
              spfFail: inbound.authentication?.spfFail ?? DEFAULT_AUTHENTICATION.spfFail,
              trustedArcSealers: (inbound.authentication?.trustedArcSealers ?? []).map((d) =>
                d.toLowerCase(),
              ),
            },
          }
        : null,
    ...(dkim && dkimKey && box
      ? {
          dkim: {
            selector: dkim.selector,
            privateKey: box.seal(dkimKey, SECRET_CONTEXT.dkimKey(domain, dkim.selector)),
          },
        }
      : {}),
  };
}

/** delivery.tls as a smarthost's TLS: mta-sts/dane are refused by validation; opportunistic if one slips by. */
function hostTls(tls: MxTlsMode | undefined): TlsMode {
  return tls === 'required' || tls === 'verify' ? tls : 'opportunistic';
}

/** @param box seals the smarthost password (services/common/secrets.ts); required when there is one. */
export function resolveRelayPolicy(rp: RelayPolicy, secrets: SecretLookup, box?: SecretBox): PolicyConfig {
  const { clients, senders, limits, delivery } = rp.spec;
  const need = (name: string) => {
    const data = secrets(name);
    if (!data) throw new MissingSecretError(`Secret ${name} not found`);
    return data;
  };
  const users = clients.authSecretRef
    ? Object.entries(need(clients.authSecretRef.name)).map(([name, pass]) => ({
        name,
        hash: hashPassword(pass),
      }))
    : [];
  const sh = delivery?.smarthost;
  let auth: SmarthostAuth | undefined;
  if (sh?.authSecretRef) {
    const data = need(sh.authSecretRef.name);
    const user = data['username'];
    const pass = data['password'];
    if (!user || !pass) {
      throw new MissingSecretError(`Secret ${sh.authSecretRef.name} needs keys username and password`);
    }
    if (!box)
      throw new MissingSecretError(`smarthost password of Secret ${sh.authSecretRef.name}: ${NO_KEY}`);
    auth = { user, pass: box.seal(pass, SECRET_CONTEXT.smarthostPassword(sh.host, sh.port ?? 25, user)) };
  }
  const seal = rp.spec.arcSeal;
  let arcSeal: PolicyConfig['arcSeal'];
  if (seal) {
    const keyName = seal.keySecretRef.key || 'private.key';
    const privateKey = need(seal.keySecretRef.name)[keyName];
    if (!privateKey) throw new MissingSecretError(`Secret ${seal.keySecretRef.name} needs key ${keyName}`);
    arcSeal = { domain: seal.domain.toLowerCase(), selector: seal.selector, privateKey };
  }
  const apiKeys = rp.spec.api ? resolveApiKeys(rp.spec.api.keysSecretRef.name, need) : undefined;
  const retry = delivery?.retry;
  return {
    source: sourceOf(rp),
    networks: clients.networks ?? [],
    users,
    requireTLS: clients.requireTLS ?? false,
    ...(senders?.domains ? { senderDomains: senders.domains.map((d) => d.toLowerCase()) } : {}),
    ...(arcSeal ? { arcSeal } : {}),
    limits: { ...limits },
    ...(apiKeys ? { apiKeys } : {}),
    delivery: {
      pool: delivery?.pool ?? DEFAULT_POOL,
      ...(sh
        ? {
            smarthost: {
              host: sh.host,
              port: sh.port ?? 25,
              // Without its own setting a smarthost keeps the policy's (validation refuses mta-sts/dane there).
              tls: sh.tls ?? hostTls(delivery?.tls),
              ...(auth ? { auth } : {}),
            },
          }
        : {}),
      destinations: delivery?.destinations ?? [],
      retry: {
        scheduleMs: retry?.schedule?.map(parseDuration) ?? DEFAULT_RETRY.scheduleMs,
        maxLifetimeMs: retry?.maxLifetime ? parseDuration(retry.maxLifetime) : DEFAULT_RETRY.maxLifetimeMs,
        delayWarningMs: retry?.delayWarning
          ? parseDuration(retry.delayWarning)
          : DEFAULT_RETRY.delayWarningMs!,
      },
      tls: delivery?.tls ?? 'opportunistic',
    },
  };
}

/** The API keys Secret as (id, SHA-256) pairs; a short key or an odd id refuses the whole policy. */
function resolveApiKeys(
  secret: string,
  need: (name: string) => Record<string, string>,
): { id: string; sha256: string }[] {
  return Object.entries(need(secret))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([id, key]) => {
      if (!API_KEY_ID_PATTERN.test(id)) {
        throw new MissingSecretError(
          `Secret ${secret}: key id "${id}" must match ${API_KEY_ID_PATTERN.source}`,
        );
      }
      if (key.length < MIN_API_KEY_LENGTH) {
        throw new MissingSecretError(
          `Secret ${secret}: API key "${id}" is shorter than ${MIN_API_KEY_LENGTH} characters (use a random key)`,
        );
      }
      return { id, sha256: hashApiKey(key) };
    });
}
