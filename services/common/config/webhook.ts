/**
 * The resolved form of a `Webhook` resource: what the operator (or local mode) writes to the KV bucket
 * `webhooks`, and what the webhook dispatcher (services/webhooks/) runs on. A bucket of its own, not `config`:
 * the documents carry the HMAC key, and every service watches `config`, while only the dispatcher needs these —
 * NATS permissions can then grant the bucket to the operator and the dispatcher alone.
 */
import { parseDuration } from '../durations.ts';
import { MissingSecretError, type SecretLookup } from './resolve.ts';
import type { Webhook } from './schema.ts';

export const WEBHOOK_BUCKET = 'webhooks';

/** KV key of a webhook's document (`<namespace>.<name>`). */
export const webhookKey = (namespace: string, name: string) => `${namespace}.${name}`;

export interface WebhookConfig {
  /** `<namespace>/<name>` of the Webhook it came from; also the metric label `endpoint`. */
  source: string;
  url: string;
  /** Event kinds (`delivered`, `site.suspended`…) sent to this endpoint. */
  events: string[];
  /** HMAC-SHA256 key (the Secret's value, UTF-8). */
  secret: string;
  /** Policy sources (`<namespace>/<name>`) whose mail events pass; undefined = every policy and none. */
  policies?: string[];
  timeoutMs: number;
  maxLifetimeMs: number;
  initialDelayMs: number;
  maxDelayMs: number;
}

export const WEBHOOK_DEFAULTS = {
  timeoutMs: 10_000,
  maxLifetimeMs: 86_400_000,
  initialDelayMs: 10_000,
  maxDelayMs: 3_600_000,
} as const;

/** Resolves a (validated) Webhook with its Secret; throws MissingSecretError when the key is not there. */
export function resolveWebhook(wh: Webhook, secrets: SecretLookup): WebhookConfig {
  const ns = wh.metadata.namespace ?? 'default';
  const { spec } = wh;
  const key = spec.secretRef.key ?? 'secret';
  const data = secrets(spec.secretRef.name);
  if (!data) throw new MissingSecretError(`Secret ${spec.secretRef.name} not found`);
  const secret = data[key];
  if (!secret) throw new MissingSecretError(`Secret ${spec.secretRef.name} has no key ${key}`);
  const ms = (d: string | undefined, fallback: number) => (d ? parseDuration(d) : fallback);
  return {
    source: `${ns}/${wh.metadata.name}`,
    url: spec.url,
    events: [...new Set(spec.events)],
    secret,
    ...(spec.policies ? { policies: spec.policies.map((p) => `${ns}/${p}`) } : {}),
    timeoutMs: ms(spec.timeout, WEBHOOK_DEFAULTS.timeoutMs),
    maxLifetimeMs: ms(spec.maxLifetime, WEBHOOK_DEFAULTS.maxLifetimeMs),
    initialDelayMs: ms(spec.retry?.initialDelay, WEBHOOK_DEFAULTS.initialDelayMs),
    maxDelayMs: ms(spec.retry?.maxDelay, WEBHOOK_DEFAULTS.maxDelayMs),
  };
}
