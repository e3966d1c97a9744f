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

/** True when no job of the message can change any more. */
export function isComplete(state: MessageState): boolean {
  return Object.values(state.jobs).every((j) => j.status === 'final');
}

/** Re-attaches the message body to a stored job. */
export function jobWithBody(state: MessageState, js: JobState): DeliveryJob {
  return { ...js.job, body: state.body };
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

const MAX_CAS_ATTEMPTS = 100;

function isCasConflict(err: unknown): boolean {
  return /wrong last sequence|key exists/i.test(String((err as Error)?.message ?? err));
}

/**
 * Applies `change` to the current state with compare-and-set, retrying on concurrent writers.
 * `change` gets a fresh copy each time and returns the new state, or undefined to leave it unchanged.
 * Returns the state written (or undefined when nothing was written). `known` (a state the caller just read)
 * saves the first read; a stale one simply loses the compare-and-set and the loop reads afresh.
 */
export async function updateState(
  kv: KV,
  key: string,
  change: (state: MessageState) => MessageState | undefined,
  known?: { state: MessageState; revision: number },
): Promise<MessageState | undefined> {
  for (let i = 0; i < MAX_CAS_ATTEMPTS; i++) {
    const current =
      i === 0 && known
        ? { state: structuredClone(known.state), revision: known.revision }
        : await readState(kv, key);
    if (!current) return undefined;
    const next = change(current.state);
    if (!next) return undefined;
    try {
      await kv.update(key, JSON.stringify(next), current.revision);
      return next;
    } catch (err) {
      if (!isCasConflict(err)) throw err;
    }
  }
  throw new Error(`message ${key}: state update lost ${MAX_CAS_ATTEMPTS} compare-and-set races in a row`);
}

/** Deletes the state only if it is still at `revision`; false when someone changed it in between. */
export async function deleteStateIf(kv: KV, key: string, revision: number): Promise<boolean> {
  try {
    await kv.delete(key, { previousSeq: revision });
    return true;
  } catch (err) {
    if (isCasConflict(err)) return false;
    throw err;
  }
}

/** Creates the state, or returns the existing one (a redelivered submission keeps what was planned first). */
export async function createOrKeepState(kv: KV, key: string, state: MessageState): Promise<MessageState> {
  try {
    await kv.create(key, JSON.stringify(state));
    return state;
  } catch (err) {
    if (!isCasConflict(err)) throw err;
    const existing = await readState(kv, key);
    if (!existing) throw new Error(`message ${state.id}: state exists but cannot be read`);
    return existing.state;
  }
}
