/**
 * Run-time validation of MailDomain / RelayPolicy documents with the same schemas the CRDs are generated
 * from, plus the checks the CRDs express as CEL rules. Returns readable errors, never throws.
 */
import { isIP } from 'node:net';
import { Value } from '@sinclair/typebox/value';
import { parseDuration } from '../durations.ts';
import { API, MailDomainSpec, RelayPolicySpec, type Resource, WebhookSpec } from './schema.ts';

export function isCidr(text: string): boolean {
  const [addr, bits, extra] = text.split('/');
  if (extra !== undefined || !addr || !bits || !/^[0-9]{1,3}$/.test(bits)) return false;
  const family = isIP(addr);
  return family !== 0 && Number(bits) <= (family === 4 ? 32 : 128);
}

/** Validates one document; returns a list of "path: problem" strings (empty when valid). */
export function validateResource(doc: unknown): string[] {
  const d = doc as Partial<Resource<unknown>> | null;
  if (!d || typeof d !== 'object') return ['document is not an object'];
  if (d.apiVersion !== API) return [`apiVersion must be ${API} (got ${String(d.apiVersion)})`];
  if (!d.metadata?.name) return ['metadata.name is required'];
  const schema =
    d.kind === 'MailDomain'
      ? MailDomainSpec
      : d.kind === 'RelayPolicy'
        ? RelayPolicySpec
        : d.kind === 'Webhook'
          ? WebhookSpec
          : undefined;
  if (!schema) return [`unknown kind ${String(d.kind)}`];
  const spec = Value.Default(schema, structuredClone(d.spec ?? {}));
  const errors = [...Value.Errors(schema, spec)].map(
    (e) => `spec${e.path.replaceAll('/', '.')}: ${e.message}`,
  );
  if (errors.length) return errors;
  if (d.kind === 'Webhook') {
    errors.push(...webhookErrors(spec as WebhookSpec));
  } else if (d.kind === 'MailDomain') {
    const s = spec as MailDomainSpec;
    if (s.inbound?.enabled !== false && s.inbound && !s.inbound.deliverTo) {
      errors.push('spec.inbound.deliverTo: required when inbound is enabled');
    }
    errors.push(...authenticationErrors(s));
  } else {
    const s = spec as RelayPolicySpec;
    for (const n of s.clients.networks ?? [])
      if (!isCidr(n)) errors.push(`spec.clients.networks: "${n}" is not a CIDR`);
    if (!s.clients.networks?.length && !s.clients.authSecretRef && !s.api) {
      errors.push(
        'spec.clients: needs networks or authSecretRef (or api.keysSecretRef for a policy used only by the HTTP API)',
      );
    }
    errors.push(...deliveryTlsErrors(s), ...destinationErrors(s));
  }
  return errors;
}

/** The CEL rules on destinations[] limits (schema.ts): an entry delivery could not apply is refused. */
function destinationErrors(s: RelayPolicySpec): string[] {
  const d = s.delivery;
  if (!d?.destinations) return [];
  const errors: string[] = [];
  const sh = d.smarthost;
  for (const [i, dest] of d.destinations.entries()) {
    const at = `spec.delivery.destinations[${i}]`;
    if (
      dest.tls === undefined &&
      dest.maxConnections === undefined &&
      dest.messagesPerConnection === undefined &&
      dest.ratePerMinute === undefined &&
      dest.connectionsPerMinute === undefined
    ) {
      errors.push(
        `${at}: needs tls or a limit (maxConnections, messagesPerConnection, ratePerMinute, connectionsPerMinute)`,
      );
    }
    if (sh && dest.match !== '*' && dest.match !== sh.host && dest.match !== `${sh.host}:${sh.port ?? 25}`) {
      errors.push(
        `${at}.match: with a smarthost every message goes to it: match must be "*" or the smarthost host (${sh.host} or ${sh.host}:${sh.port ?? 25}), got "${dest.match}"`,
      );
    }
    if (!sh && dest.match.includes(':')) {
      errors.push(
        `${at}.match: host:port names a smarthost; without one match a recipient domain, an MX host suffix or "*" (got "${dest.match}")`,
      );
    }
  }
  return errors;
}

/** The CEL rules on TLS fields (schema.ts), for local mode: a TLS setting that could not be kept is refused. */
function deliveryTlsErrors(s: RelayPolicySpec): string[] {
  const d = s.delivery;
  if (!d) return [];
  const errors: string[] = [];
  for (const [i, dest] of (d.destinations ?? []).entries()) {
    if (dest.tls && dest.match !== '*' && dest.match.startsWith('.')) {
      errors.push(
        `spec.delivery.destinations[${i}].tls: applies to a recipient domain (example.com) or "*", not to an MX host suffix ("${dest.match}")`,
      );
    }
    if (dest.tls && d.smarthost) {
      errors.push(
        `spec.delivery.destinations[${i}].tls: applies to MX delivery; with a smarthost every message goes to it: set smarthost.tls`,
      );
    }
  }
  if (d.smarthost && !d.smarthost.tls && (d.tls === 'mta-sts' || d.tls === 'dane')) {
    errors.push(
      `spec.delivery.tls: ${d.tls} applies to MX delivery; with a smarthost set smarthost.tls (none, opportunistic, required or verify)`,
    );
  }
  return errors;
}

/** What a Webhook's schema cannot say: a URL that parses, durations that are not zero, backoff bounds in order. */
function webhookErrors(s: WebhookSpec): string[] {
  const errors: string[] = [];
  if (!URL.canParse(s.url)) errors.push(`spec.url: "${s.url}" is not a URL`);
  const positive: [string, string | undefined][] = [
    ['timeout', s.timeout],
    ['maxLifetime', s.maxLifetime],
    ['retry.initialDelay', s.retry?.initialDelay],
    ['retry.maxDelay', s.retry?.maxDelay],
  ];
  for (const [name, value] of positive)
    if (value !== undefined && parseDuration(value) === 0) errors.push(`spec.${name}: must be longer than 0`);
  const { initialDelay, maxDelay } = s.retry ?? {};
  if (initialDelay && maxDelay && parseDuration(initialDelay) > parseDuration(maxDelay))
    errors.push('spec.retry: initialDelay must not be longer than maxDelay');
  return errors;
}

/** The CEL rules on inbound.authentication (schema.ts): a setting that would change nothing is refused. */
function authenticationErrors(s: MailDomainSpec): string[] {
  const a = s.inbound?.authentication;
  if (!a) return [];
  const errors: string[] = [];
  if (a.quarantine !== undefined && a.dmarc !== 'enforce') {
    errors.push('spec.inbound.authentication.quarantine: applies only with dmarc: enforce');
  }
  if (a.trustedArcSealers && a.dmarc === 'off' && a.spfFail !== 'reject') {
    errors.push(
      'spec.inbound.authentication.trustedArcSealers: excuses DMARC or SPF failures: it needs dmarc enforce/tag or spfFail: reject',
    );
  }
  return errors;
}
