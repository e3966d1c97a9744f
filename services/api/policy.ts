/**
 * What an API key may send (pure): exactly what its RelayPolicy's SMTP clients may send, decided by the ingress's
 * own RCPT decision (services/ingress/recipient-policy.ts) with the client bound to that one policy — the same
 * sender domains, recipient count, inbound-domain rules and TLS requirement, never an open relay. Each refusal
 * maps to an HTTP status and a code naming the field.
 */
import type { ConfigSnapshot } from '../common/config/resolved.ts';
import { checkMailbox } from '../ingress/address-syntax.ts';
import {
  type ClientIdentity,
  decideRecipient,
  messageRateLimit,
  sizeLimitFor,
} from '../ingress/recipient-policy.ts';
import { REPLIES } from '../ingress/replies.ts';

export interface ApiRefusal {
  status: 400 | 403 | 413;
  error: string;
  message: string;
  field: string;
}

export interface EnvelopeVerdict {
  /** The policy that allowed relaying (Envelope.policy), when any recipient is relayed. */
  policy?: string;
  refusal?: ApiRefusal;
}

/** The client an API key stands for: its policy's client, over TLS or not. */
export function apiClient(address: string, policy: string, tls: boolean): ClientIdentity {
  return { address, apiPolicy: policy, tls };
}

/** Field names of envelope addresses as the request named them (envelope given, or derived from headers). */
export interface EnvelopeFields {
  from: string;
  to: (i: number) => string;
}

/** Checks sender and every recipient; the first refusal wins (SMTP would refuse that RCPT). */
export function judgeEnvelope(
  envelope: { from: string; to: string[] },
  client: ClientIdentity,
  snapshot: ConfigSnapshot,
  fields: EnvelopeFields,
): EnvelopeVerdict {
  if (!checkMailbox(envelope.from).ok) {
    return refuse(400, 'invalid-sender', `${fields.from}: not a valid mailbox`, fields.from);
  }
  let policy: string | undefined;
  for (const [i, recipient] of envelope.to.entries()) {
    const d = decideRecipient({ recipient, sender: envelope.from, client, snapshot, acceptedSoFar: i });
    if (d.accept) {
      if (d.kind === 'relay') policy ??= d.policy;
      continue;
    }
    const field = fields.to(i);
    switch (d.reply) {
      case REPLIES.badRecipient:
        return refuse(400, 'invalid-recipient', `${field}: ${d.reason}`, field);
      case REPLIES.tooManyRecipients:
        return refuse(
          403,
          'too-many-recipients',
          `${field}: the policy allows fewer recipients per message`,
          field,
        );
      case REPLIES.unknownUser:
        return refuse(403, 'unknown-recipient', `${field}: no such recipient in this domain`, field);
      default:
        // relayDenied: the reason says whether the sender domain, TLS or the client itself was refused.
        return refuse(
          403,
          d.reason === 'sender domain not allowed' ? 'sender-not-allowed' : 'relay-denied',
          `${d.reason === 'sender domain not allowed' ? fields.from : field}: relay access denied (${d.reason})`,
          d.reason === 'sender domain not allowed' ? fields.from : field,
        );
    }
  }
  return policy ? { policy } : {};
}

/** The message size limit: the listener's maximum, lowered by the policy's limits.messageSize. */
export function sizeLimit(client: ClientIdentity, snapshot: ConfigSnapshot, globalMax: number): number {
  return sizeLimitFor(client, snapshot, globalMax);
}

/** The policy's messagesPerMinute (undefined = not limited). */
export function rateLimit(client: ClientIdentity, snapshot: ConfigSnapshot): number | undefined {
  return messageRateLimit(client, snapshot);
}

function refuse(
  status: ApiRefusal['status'],
  error: string,
  message: string,
  field: string,
): EnvelopeVerdict {
  return { refusal: { status, error, message, field } };
}
