/**
 * Secrets that must travel through NATS (smarthost passwords, DKIM private keys, …) are sealed here first:
 * AES-256-GCM with a key only the writer (operator, local mode) and the readers that need the clear text
 * (delivery) hold. NATS — the KV buckets, the streams, anyone with read access to them — sees only sealed text.
 *
 * Why encryption in KV and not Kubernetes Secrets mounted into delivery (docs/secrets.md): the Secrets a
 * MailDomain or RelayPolicy names live in any watched namespace and are created at run time (the operator
 * generates DKIM keys), so the chart cannot mount them; fetching them would give every delivery pod the
 * Kubernetes API and read access to Secrets, which services never have (DESIGN §2). One key in one Secret the
 * chart mounts keeps "services never talk to Kubernetes" and works identically in local mode (a key file).
 *
 * Format: `sealed:v1:<key id>:<iv b64url>:<ciphertext‖tag b64url>`. The key id is a hash of the key, so a keyring
 * (several keys, the first one seals) lets a key be rotated while sealed values made with the old one are still
 * in flight. The caller's `context` is authenticated data: a value sealed for one place cannot be opened for
 * another (a smarthost password moved into a policy that names a different host does not open there).
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';

declare const sealedBrand: unique symbol;
/** Text made by `SecretBox.seal`: safe to store in NATS. A plain string is not assignable to it. */
export type Sealed = string & { readonly [sealedBrand]: true };

const PREFIX = 'sealed:v1:';
const KEY_BYTES = 32;
const IV_BYTES = 12; // GCM's recommended nonce size (NIST SP 800-38D §8.2); random per seal
const TAG_BYTES = 16;

export class SecretBoxError extends Error {}

export interface SecretBox {
  /** Seals `plain` for `context` (e.g. `smarthost:relay.example:587:user`). */
  seal(plain: string, context: string): Sealed;
  /** Opens a sealed value; throws SecretBoxError when the key is unknown, the context differs or it was altered. */
  open(sealed: Sealed | string, context: string): string;
}

/** Whether text has the sealed format (not whether it opens). */
export function isSealed(text: unknown): text is Sealed {
  return typeof text === 'string' && text.startsWith(PREFIX);
}

const keyId = (key: Buffer) =>
  createHash('sha256').update('postern-secret-key-id').update(key).digest('hex').slice(0, 12);

/** A box over a keyring: the first key seals, every key opens what it sealed. */
export function secretBox(keys: Buffer[]): SecretBox {
  if (keys.length === 0) throw new SecretBoxError('no secret key');
  for (const k of keys)
    if (k.length !== KEY_BYTES) throw new SecretBoxError(`a secret key must be ${KEY_BYTES} bytes`);
  const byId = new Map(keys.map((k) => [keyId(k), k]));
  const sealKey = keys[0]!;
  const sealId = keyId(sealKey);
  return {
    seal(plain, context) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', sealKey, iv, { authTagLength: TAG_BYTES });
      cipher.setAAD(Buffer.from(context));
      const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final(), cipher.getAuthTag()]);
      return `${PREFIX}${sealId}:${iv.toString('base64url')}:${body.toString('base64url')}` as Sealed;
    },
    open(sealed, context) {
      if (!isSealed(sealed)) throw new SecretBoxError('not a sealed value');
      const [id, ivText, bodyText] = sealed.slice(PREFIX.length).split(':');
      const key = id ? byId.get(id) : undefined;
      if (!key || !ivText || !bodyText) throw new SecretBoxError(`sealed with an unknown key (id ${id})`);
      const body = Buffer.from(bodyText, 'base64url');
      if (body.length < TAG_BYTES) throw new SecretBoxError('sealed value too short');
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(ivText, 'base64url'), {
        authTagLength: TAG_BYTES,
      });
      decipher.setAAD(Buffer.from(context));
      decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
      try {
        return Buffer.concat([
          decipher.update(body.subarray(0, body.length - TAG_BYTES)),
          decipher.final(),
        ]).toString('utf8');
      } catch {
        // GCM's tag check failed: wrong context, wrong key material or altered text. Say which value, not why.
        throw new SecretBoxError(`sealed value does not open for ${context}`);
      }
    },
  };
}

/**
 * Opens a value that should be sealed. A value that is not in the sealed format was written before Postern
 * sealed secrets (a job queued by the previous version, still in flight after an upgrade): it is returned as it
 * is, so upgrading loses no mail; the writers re-seal the configuration on their next reconcile. A sealed value
 * that does not open throws SecretBoxError.
 */
export function openSealed(box: SecretBox | undefined, value: Sealed | string, context: string): string {
  if (!isSealed(value)) return value;
  if (!box) throw new SecretBoxError('no secrets key (POSTERN_SECRETS_KEY_FILE)');
  return box.open(value, context);
}

/** Keys of a key file: one base64 key per line (first seals), `#` comments and blank lines ignored. */
export function parseKeyFile(text: string): Buffer[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => Buffer.from(l, 'base64'));
}

export const SECRETS_KEY_FILE_ENV = 'POSTERN_SECRETS_KEY_FILE';

/** The box of `$POSTERN_SECRETS_KEY_FILE`, or undefined when the variable is unset. */
export function secretBoxFromEnv(env: NodeJS.ProcessEnv = process.env): SecretBox | undefined {
  const file = env[SECRETS_KEY_FILE_ENV];
  return file ? secretBox(parseKeyFile(readFileSync(file, 'utf8'))) : undefined;
}

/** Creates a key file with one random key (mode 0600) unless it exists; returns its path. Local mode's key. */
export function ensureKeyFile(path: string): string {
  if (!existsSync(path)) {
    writeFileSync(path, `${randomBytes(KEY_BYTES).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  }
  chmodSync(path, 0o600);
  return path;
}

/** The contexts Postern seals under: one function per kind of secret, so writer and reader cannot disagree. */
export const SECRET_CONTEXT = {
  /** A smarthost password is bound to the host, port and user it authenticates to. */
  smarthostPassword: (host: string, port: number, user: string) =>
    `smarthost:${host.toLowerCase()}:${port}:${user}`,
  /** A DKIM key is bound to its signing domain and selector. */
  dkimKey: (domain: string, selector: string) => `dkim:${domain.toLowerCase()}:${selector}`,
} as const;

/** Every sealed string anywhere inside a JSON-like document (e.g. the document a writer is about to replace). */
export function sealedValuesIn(doc: unknown): Sealed[] {
  if (isSealed(doc)) return [doc];
  if (Array.isArray(doc)) return doc.flatMap(sealedValuesIn);
  if (doc && typeof doc === 'object') return Object.values(doc).flatMap(sealedValuesIn);
  return [];
}

/**
 * A box that reuses one of `previous` when it already seals the same text for the same context. Sealing uses a
 * random IV, so re-sealing an unchanged secret would change the document on every reconcile and wake every
 * service's config watch; writers wrap their box with the values of the document they are replacing.
 */
export function stableBox(box: SecretBox, previous: Sealed[]): SecretBox {
  return {
    open: box.open,
    seal(plain, context) {
      for (const p of previous) {
        try {
          if (box.open(p, context) === plain) return p;
        } catch (err) {
          if (!(err instanceof SecretBoxError)) throw err; // sealed for another context or an old key: not it
        }
      }
      return box.seal(plain, context);
    },
  };
}
