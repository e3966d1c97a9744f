/**
 * Sending the DSN for one job attempt's final failures (failed, expired or suppressed recipients): reads the
 * original's headers, builds the RFC 3464 report and submits it, deduped by `dsn.<jobId>.<attempt>`.
 */

import { msgIds } from '../common/msg-ids.ts';
import { readHeaderSection } from './body.ts';
import type { QueueContext } from './context.ts';
import { buildDsn, type DsnRecipient, dsnEnvelope, mayBounce } from './dsn.ts';
import { publishEvent, submitEnvelope } from './outputs.ts';
import type { MessageState } from './state.ts';

/** The original message as far as a DSN needs it. */
export type BouncedMessage = Pick<MessageState, 'id' | 'from' | 'receivedAt' | 'kind' | 'body'>;

/**
 * Sends one DSN to the original sender; returns false when none may be sent (null sender or a DSN itself).
 * @param jobId the job (or `<id>.s` for recipients suppressed at routing) whose failures are reported.
 */
export async function sendDsn(
  ctx: QueueContext,
  original: BouncedMessage,
  jobId: string,
  attempt: number,
  recipients: DsnRecipient[],
): Promise<boolean> {
  if (recipients.length === 0 || !mayBounce(original)) return false;
  const input = {
    id: `${original.id}-dsn-${jobId.slice(original.id.length + 1)}-${attempt}`,
    hostname: ctx.hostname,
    original,
    recipients,
    now: new Date(),
  };
  const headers = await readHeaderSection(ctx.bodies, original.body);
  const message = buildDsn(headers === undefined ? input : { ...input, originalHeaders: headers });
  const msgID = msgIds.dsn(jobId, attempt);
  await submitEnvelope(ctx.js, dsnEnvelope(input, message), msgID);
  await publishEvent(
    ctx.js,
    {
      kind: 'dsn',
      messageId: original.id,
      at: input.now.toISOString(),
      from: original.from,
      recipients: recipients.map((r) => r.recipient),
      attempt,
    },
    `${jobId}.${attempt}`,
  );
  return true;
}
