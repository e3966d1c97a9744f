/**
 * Message ids: 10 characters of millisecond time then 16 random characters, both in Crockford base32
 * (the ULID layout), so ids sort by receipt time, are unique across replicas without coordination, and are
 * safe as NATS object names and Nats-Msg-Id values.
 */
import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A new sortable, unique message id (26 characters). */
export function newMessageId(now = Date.now()): string {
  let time = '';
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  let rand = '';
  for (const byte of randomBytes(16)) rand += ALPHABET[byte % 32];
  return time + rand;
}
