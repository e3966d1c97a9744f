/**
 * Compiled run-time checks of the contracts in types.ts, for everything a service reads off a stream. A message
 * that does not match is a bug or a foreign publisher: the consume loop terminates it with a log line naming the
 * first wrong field (services/common/consume.ts), instead of failing somewhere deeper.
 */
import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { CONTRACT_VERSION, DeliveryJob, DeliveryResult, Envelope, MailEvent } from './types.ts';

/**
 * A message written under a later contract version than this build knows: a newer release wrote it during a
 * rolling upgrade. It is not malformed, so it is never terminated: consumers hand it back (nak) for a replica
 * that can read it (services/common/consume.ts `setAsideUnreadable`).
 */
export class NewerContractError extends Error {
  constructor(name: string, version: number) {
    super(`${name} of contract version ${version}, this release reads up to ${CONTRACT_VERSION}`);
  }
}

/**
 * Parses JSON text as `name` and checks it against the schema; throws "invalid <name>: <path>: <problem>", or
 * NewerContractError when `v` is above CONTRACT_VERSION.
 */
function reader<T extends TSchema>(name: string, schema: T): (text: string) => Static<T> {
  const check = TypeCompiler.Compile(schema);
  return (text) => {
    const value: unknown = JSON.parse(text);
    if (check.Check(value)) return value;
    const v = (value as { v?: unknown } | null)?.v;
    if (typeof v === 'number' && v > CONTRACT_VERSION) throw new NewerContractError(name, v);
    const first = check.Errors(value).First();
    throw new Error(`invalid ${name}: ${first ? `${first.path || '/'}: ${first.message}` : 'invalid'}`);
  };
}

const readEnvelopeShape = reader('Envelope', Envelope);

export const readEnvelope = (text: string): Envelope => {
  const env = readEnvelopeShape(text);
  if (Number.isNaN(Date.parse(env.receivedAt))) throw new Error('invalid Envelope: /receivedAt: not a date');
  return env;
};
export const readDeliveryJob = reader('DeliveryJob', DeliveryJob);
export const readDeliveryResult = reader('DeliveryResult', DeliveryResult);
export const readMailEvent = reader('MailEvent', MailEvent);

/** Serialises a contract message for publishing, stamped with the contract version it was written under. */
export function encodeContract(value: Envelope | DeliveryJob | DeliveryResult | MailEvent): string {
  return JSON.stringify({ ...value, v: CONTRACT_VERSION });
}
