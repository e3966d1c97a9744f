/**
 * DKIM signing keys for MailDomains: generated with node:crypto when the domain's key Secret is missing, and the
 * DNS TXT record to publish for them (RFC 6376 §3.6.1; Ed25519 per RFC 8463 §4.2 publishes the raw 32-byte key).
 */
import { createPublicKey, generateKeyPairSync } from 'node:crypto';

export type DkimAlgorithm = 'rsa' | 'ed25519';

/** Secret data key holding the PEM private key. */
export const DKIM_SECRET_KEY = 'private.key';

/** A new private key, PKCS#8 PEM (what mailauth/nodemailer sign with). RSA keys are 2048 bits. */
export function generateDkimKey(algorithm: DkimAlgorithm = 'rsa'): string {
  const pair =
    algorithm === 'ed25519'
      ? generateKeyPairSync('ed25519')
      : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/**
 * `<selector>._domainkey.<domain> TXT "v=DKIM1; k=rsa; p=..."`. The value is split into quoted strings of at
 * most 255 characters, the longest a single DNS character-string may be (RFC 1035 §3.3), as zone files need.
 */
export function dkimDnsRecord(selector: string, domain: string, privateKeyPem: string): string {
  const pub = createPublicKey(privateKeyPem);
  const der = pub.export({ type: 'spki', format: 'der' });
  const ed = pub.asymmetricKeyType === 'ed25519';
  const p = (ed ? der.subarray(der.length - 32) : der).toString('base64');
  const value = `v=DKIM1; k=${ed ? 'ed25519' : 'rsa'}; p=${p}`;
  const chunks = value.match(/.{1,255}/g) ?? [];
  return `${selector}._domainkey.${domain} TXT ${chunks.map((c) => `"${c}"`).join(' ')}`;
}
