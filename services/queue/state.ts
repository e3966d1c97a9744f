/**
 * Per-message queue state in KV `messages` (one key per message): which jobs are still pending, at which
 * attempt, and what became of each recipient. Several results for one message arrive concurrently (one per
 * job, on different queue replicas), so every change is a compare-and-set on the KV revision.
 */
import type { KV } from '@nats-io/kv';
import { subjectToken } from '../common/nats.ts';
import type { BodyRef, DeliveryJob, TlsFacts } from '../common/types.ts';

export type FinalResult = 'delivered' | 'bounced' | 'expired' | 'suppressed' | 'dropped';

/** One job of a message: a destination and the recipients still pending there. */
export interface JobState {
  /**
   * active: on OUTBOUND or being attempted; deferred: waiting as a message schedule; held: put on hold by an
   * operator (no schedule; waits for release, like Postfix's hold queue); final: done.
   */
  status: 'active' | 'deferred' | 'held' | 'final';
  /** Hold requested while the job was active: its next deferral becomes 'held' instead of a schedule. */
  hold?: boolean;
  attempt: number;
  /** The job as published for this attempt, without its body (the message state holds that once). */
  job: Omit<DeliveryJob, 'body'>;
  nextAttemptAt?: string;
  lastResponse?: string;
  /** TLS of the last attempt: what was negotiated, or why the TLS policy refused the session. */
  lastTls?: TlsFacts;
}

export interface MessageState {
  id: string;
  from: string;
  receivedAt: string;
  kind: 'mail' | 'dsn';
  body: BodyRef;
  jobs: Record<string, JobState>;
  /** Recipients that reached a final state, with the last reply. */
  final: Record<string, { result: FinalResult; response: string; at: string; tls?: TlsFacts }>;
}

/** KV keys allow only [-/_=.a-zA-Z0-9]; message ids are mapped with the subject-token escape. */
export function stateKey(messageId: string): string {
  return subjectToken(messageId);
}

/** Reads a message's state with its KV revision; undefined when absent or deleted. */
export async function readState(
  kv: KV,
  key: string,
): Promise<{ state: MessageState; revision: number } | undefined> {
  const e = await kv.get(key);
  if (e?.operation !== 'PUT' || e.length === 0) return undefined;
  return { state: e.json<MessageState>(), revision: e.revision };
}

/**
 * Whether the key's latest entry is a deletion or purge marker: the message completed recently (markers expire
 * after POSTERN_STATE_MARKER_TTL, well beyond any redelivery of the results that completed it).
 */
export async function wasDeleted(kv: KV, key: string): Promise<boolean> {
  const e = await kv.get(key);
  return e !== null && e.operation !== 'PUT';
}

/** A compare-and-set lost to a concurrent writer (update/delete at a stale revision, create of an existing key). */
export function isCasConflict(err: unknown): boolean {
  return /wrong last sequence|key exists/i.test(String((err as Error)?.message ?? err));
}
