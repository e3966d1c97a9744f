/**
 * Message ids: 10 characters of millisecond time then 16 random characters, both in Crockford base32
 * (the ULID layout), so ids sort by receipt time, are unique across replicas without coordination, and are
 * safe as NATS object names and Nats-Msg-Id values.
 */
import { randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const RANDOM_CHARS = 16;

/**
 * Random bytes are drawn for 256 ids at a time: one call into the CSPRNG per id was 2 % of ingress CPU under load
 * (docs/bench.md, "Hot path"). The bytes are as random as before; an id only needs to be unique, not secret.
 */
const pool = Buffer.alloc(RANDOM_CHARS * 256);
let offset = pool.length;

/** A new sortable, unique message id (26 characters). */
export function newMessageId(now = Date.now()): string {
  let time = '';
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  if (offset === pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  let rand = '';
  // 256 is a multiple of 32, so `byte % 32` keeps every character equally likely.
  for (let i = 0; i < RANDOM_CHARS; i++) rand += ALPHABET[pool[offset + i]! % 32];
  offset += RANDOM_CHARS;
  return time + rand;
}
