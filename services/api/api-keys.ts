/**
 * Which RelayPolicy an API key is bound to. The config documents hold only SHA-256 hashes of the keys
 * (services/common/config/api-key.ts); a presented key is hashed and looked up. Comparing hashes in a Map leaks
 * at most timing about the hash, which says nothing usable about the key.
 */
import { hashApiKey } from '../common/config/api-key.ts';
import type { ConfigSnapshot } from '../common/config/resolved.ts';

export interface BoundKey {
  /** Snapshot key of the policy (`<namespace>.<name>`), as Envelope.policy carries it. */
  policy: string;
  /** The key's id in the policy's Secret: a log field, never the key. */
  id: string;
}

const indexes = new WeakMap<ConfigSnapshot, Map<string, BoundKey>>();

/** Hash → bound key for one snapshot; snapshots are replaced, never mutated, so caching per object is safe. */
function indexOf(snapshot: ConfigSnapshot): Map<string, BoundKey> {
  let index = indexes.get(snapshot);
  if (!index) {
    index = new Map();
    // Sorted, so a key listed by two policies binds to the same (first) one on every replica.
    for (const [policy, doc] of [...snapshot.policies.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
      for (const k of doc.apiKeys ?? []) if (!index.has(k.sha256)) index.set(k.sha256, { policy, id: k.id });
    }
    indexes.set(snapshot, index);
  }
  return index;
}

/** The key from `Authorization: Bearer <key>` (RFC 6750 §2.1), or undefined when absent or malformed. */
export function bearerKey(header: string | undefined): string | undefined {
  const m = /^Bearer +([\x21-\x7e]+) *$/i.exec(header ?? '');
  return m?.[1];
}

/** The policy a key is bound to, or undefined for an unknown key. */
export function findKey(snapshot: ConfigSnapshot, key: string): BoundKey | undefined {
  return indexOf(snapshot).get(hashApiKey(key));
}
