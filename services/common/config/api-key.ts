/**
 * HTTP API keys (docs/api.md): the operator and local mode store only a SHA-256 hash of each key in the config
 * bucket, and the API hashes the presented key to find it. An unsalted fast hash is enough because a key is a
 * long random secret (at least MIN_API_KEY_LENGTH characters, refused otherwise), not a password a person chose:
 * there is no dictionary to try. Unsalted also keeps the document stable across reconciles (no config churn).
 */
import { createHash } from 'node:crypto';

/** 24 base64 characters ≈ 144 bits; shorter keys are refused when the policy is resolved. */
export const MIN_API_KEY_LENGTH = 24;

/** Key ids become log fields and Secret data keys: the Secret key syntax, kept short. */
export const API_KEY_ID_PATTERN = /^[A-Za-z0-9._-]{1,63}$/;

/** Hex SHA-256 of the key as sent (no trimming: a key is compared byte for byte). */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}
