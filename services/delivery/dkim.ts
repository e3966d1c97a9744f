/** DKIM signing (RFC 6376, relaxed/relaxed) with mailauth, for jobs whose sender domain has a key. */
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import type { DeliveryJob } from '../common/types.ts';

/**
 * The message with DKIM-Signature prepended. A signing failure (bad key, no From header) returns the message
 * unsigned together with the reason: an unsigned message is better than a lost or endlessly deferred one.
 */
export async function signMessage(
  raw: Buffer,
  dkim: NonNullable<DeliveryJob['dkim']>,
): Promise<{ raw: Buffer; error?: string }> {
  // mailauth's runtime takes `signatureData` (README, lib/dkim/dkim-signer.js); its index.d.ts still describes
  // the older single-key shape, hence the cast.
  const options = {
    canonicalization: 'relaxed/relaxed',
    signatureData: [{ signingDomain: dkim.domain, selector: dkim.selector, privateKey: dkim.privateKey }],
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
