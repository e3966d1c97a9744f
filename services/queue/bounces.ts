/**
 * Sending one DSN for one job attempt: failures (failed, expired or suppressed recipients), a delay warning or
 * a success notice. Reads the original's headers (or, for a failure with RET=FULL, the whole message when it is
 * small enough), builds the RFC 3464 report and submits it, deduped by `dsn.<jobId>.<attempt>[.<kind>]`.
 */

import { publishEvent } from '../common/events.ts';
import { msgIds } from '../common/msg-ids.ts';
import { submitEnvelope } from '../common/submit.ts';
import type { DsnParams } from '../common/types.ts';
import { readHeaderSection, readSmallMessage } from './body.ts';
import type { QueueContext } from './context.ts';
import { actionOf, buildDsn, type DsnRecipient, dsnEnvelope, dsnKind, mayBounce } from './dsn.ts';
import type { MessageState } from './state.ts';

/** The original message as far as a DSN needs it. */
export type BouncedMessage = Pick<MessageState, 'id' | 'from' | 'receivedAt' | 'kind' | 'body'>;

/**
 * RET=FULL returns messages up to this size whole (Postfix's bounce_size_limit default); larger ones get their
 * headers only, so a DSN stays a small submission with its body attached.
 */
export const RETURN_FULL_MAX = 50_000;

/** The DSN's own message id part per kind; failures keep the ids they had before the other notices existed. */
const ID_TAG = { failure: 'dsn', delay: 'delay', success: 'ok' } as const;

/**
 * Sends one DSN to the original sender; returns false when none may be sent (nothing to report, null sender,
 * or a DSN itself).
 * @param attached the bytes of the original's body when it is attached (else it is read from the body store).
 * @param jobId the job (or `<id>.s` for recipients suppressed at routing) whose recipients are reported.
 * @param dsn the RFC 3461 parameters of the original (RET, ENVID), when the client gave any.
 */
export async function sendDsn(
  ctx: QueueContext,
  original: BouncedMessage,
  attached: Buffer | undefined,
  jobId: string,
  attempt: number,
  recipients: DsnRecipient[],
  dsn?: DsnParams,
): Promise<boolean> {
  if (recipients.length === 0 || !mayBounce(original)) return false;
  const kind = dsnKind(recipients);
  const input = {
    id: `${original.id}-${ID_TAG[kind]}-${jobId.slice(original.id.length + 1)}-${attempt}`,
    hostname: ctx.hostname,
    original,
    recipients,
    now: new Date(),
    ...(dsn?.envid !== undefined ? { envid: dsn.envid } : {}),
  };
  const full =
    kind === 'failure' && dsn?.ret === 'FULL'
      ? await readSmallMessage(ctx.bodies, original.body, RETURN_FULL_MAX, attached)
      : undefined;
  const headers =
    full === undefined ? await readHeaderSection(ctx.bodies, original.body, attached) : undefined;
  const message = buildDsn({
    ...input,
    ...(headers !== undefined ? { originalHeaders: headers } : {}),
    ...(full !== undefined ? { originalMessage: full } : {}),
  });
  const { envelope, raw } = dsnEnvelope(input, message);
  await submitEnvelope(ctx.js, envelope, msgIds.dsn(jobId, attempt, kind), raw);
  await publishEvent(
    ctx.js,
    {
      kind: 'dsn',
      messageId: original.id,
      at: input.now.toISOString(),
      from: original.from,
      recipients: recipients.map((r) => r.recipient),
      attempt,
      action: actionOf(recipients[0]!.reason),
    },
    `${jobId}.${attempt}${kind === 'failure' ? '' : `.${kind}`}`,
  );
  return true;
}
