/** DKIM signing (RFC 6376, relaxed/relaxed) with mailauth, for jobs whose sender domain has a key. */
import { Readable } from 'node:stream';
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import type { BodySource } from '../common/body-store.ts';
import { openSealed, SECRET_CONTEXT, type SecretBox } from '../common/secrets.ts';
import type { DeliveryJob } from '../common/types.ts';

/**
 * The message with DKIM-Signature prepended. A signing failure (bad key, a key that does not open, no From
 * header) returns the message unsigned together with the reason: an unsigned message is better than a lost or
 * endlessly deferred one.
 *
 * A streamed body (an object-store body, BodySource) stays streamed: the signature needs the whole body hashed
 * before its header can be written, so the body is read once here to sign it (mailauth hashes as it reads and
 * keeps only the header section), and the source returned reads it again behind the signature header. Two reads
 * from JetStream, never the whole message in memory. A failed read while signing is thrown, not sent unsigned:
 * the body store's trouble defers the message like any failed body load.
 * @param box opens the sealed key (services/common/secrets.ts); the clear key lives only for this call.
 */
export async function signMessage(
  message: BodySource,
  dkim: NonNullable<DeliveryJob['dkim']>,
  box: SecretBox | undefined,
): Promise<{ message: BodySource; error?: string }> {
  let privateKey: string;
  try {
    privateKey = openSealed(box, dkim.privateKey, SECRET_CONTEXT.dkimKey(dkim.domain, dkim.selector));
  } catch (err) {
    return { message, error: (err as Error).message };
  }
  // mailauth's runtime takes `signatureData` (README, lib/dkim/dkim-signer.js); its index.d.ts still describes
  // the older single-key shape, hence the cast.
  const options = {
    canonicalization: 'relaxed/relaxed',
    signatureData: [{ signingDomain: dkim.domain, selector: dkim.selector, privateKey }],
  } as unknown as Parameters<typeof dkimSign>[1];
  const result = await dkimSign(typeof message === 'function' ? message() : message, options);
  if (!result.signatures) {
    const why =
      result.errors?.map((e: { err?: Error }) => e.err?.message ?? String(e)).join('; ') ||
      'no signature produced';
    return { message, error: why };
  }
  const header = Buffer.from(result.signatures);
  if (typeof message !== 'function') return { message: Buffer.concat([header, message]) };
  return { message: () => Readable.from(prefixed(header, message), { objectMode: false }) };
}

/** The header, then a fresh read of the body; the body's errors pass through (and its stream is destroyed). */
async function* prefixed(header: Buffer, open: () => Readable): AsyncGenerator<Buffer> {
  yield header;
  yield* open();
}
