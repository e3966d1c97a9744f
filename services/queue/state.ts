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

/**
 * A state entry's bytes: the state as JSON, then — when its body is attached — a NUL byte and the body's raw bytes
 * (no base64). JSON text never holds a raw NUL (JSON.stringify escapes control characters), so the first NUL ends
 * it. Entries written before 2026-11-27 are JSON alone, their small bodies inline base64.
 */
export function encodeState(state: MessageState, attached: Buffer | undefined): Uint8Array {
  const json = Buffer.from(JSON.stringify(state));
  if (!('attached' in state.body)) return json;
  if (attached?.length !== state.body.attached)
    throw new Error(
      `message ${state.id}: state with ${state.body.attached} attached body bytes, ${attached?.length ?? 'none'} given`,
    );
  return Buffer.concat([json, NUL, attached]);
}

const NUL = Buffer.from([0]);

/** Reads a state entry's bytes (encodeState). */
export function decodeState(data: Uint8Array): { state: MessageState; attached?: Buffer } {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const end = bytes.indexOf(0);
  if (end < 0) return { state: JSON.parse(bytes.toString('utf8')) as MessageState };
  const state = JSON.parse(bytes.toString('utf8', 0, end)) as MessageState;
  return { state, attached: bytes.subarray(end + 1) };
}

/** Reads a message's state (and its attached body) with its KV revision; undefined when absent or deleted. */
export async function readState(
  kv: KV,
  key: string,
): Promise<{ state: MessageState; revision: number; attached?: Buffer } | undefined> {
  const e = await kv.get(key);
  if (e?.operation !== 'PUT' || e.length === 0) return undefined;
  return { ...decodeState(e.value), revision: e.revision };
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
