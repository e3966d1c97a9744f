/** DKIM signing (RFC 6376, relaxed/relaxed) with mailauth, for jobs whose sender domain has a key. */
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import { openSealed, SECRET_CONTEXT, type SecretBox } from '../common/secrets.ts';
import type { DeliveryJob } from '../common/types.ts';

/**
 * The message with DKIM-Signature prepended. A signing failure (bad key, a key that does not open, no From
 * header) returns the message unsigned together with the reason: an unsigned message is better than a lost or
 * endlessly deferred one.
 * @param box opens the sealed key (services/common/secrets.ts); the clear key lives only for this call.
 */
export async function signMessage(
  raw: Buffer,
  dkim: NonNullable<DeliveryJob['dkim']>,
  box: SecretBox | undefined,
): Promise<{ raw: Buffer; error?: string }> {
  let privateKey: string;
  try {
    privateKey = openSealed(box, dkim.privateKey, SECRET_CONTEXT.dkimKey(dkim.domain, dkim.selector));
  } catch (err) {
    return { raw, error: (err as Error).message };
  }
  // mailauth's runtime takes `signatureData` (README, lib/dkim/dkim-signer.js); its index.d.ts still describes
  // the older single-key shape, hence the cast.
  const options = {
    canonicalization: 'relaxed/relaxed',
    signatureData: [{ signingDomain: dkim.domain, selector: dkim.selector, privateKey }],
  } as unknown as Parameters<typeof dkimSign>[1];
  const result = await dkimSign(raw, options);
  if (!result.signatures) {
    const why =
      result.errors?.map((e: { err?: Error }) => e.err?.message ?? String(e)).join('; ') ||
      'no signature produced';
    return { raw, error: why };
  }
  return { raw: Buffer.concat([Buffer.from(result.signatures), raw]) };
}
