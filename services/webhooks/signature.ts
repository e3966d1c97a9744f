/**
 * How a webhook request proves it comes from Postern (docs/api.md "Verifying a webhook"): an HMAC-SHA256 over
 * `<timestamp>.<body>` with the endpoint's secret, hex-encoded, in `Postern-Signature: v1=<hex>`. The timestamp
 * (Unix seconds of this attempt, `Postern-Timestamp`) is inside the MAC, so a receiver that refuses old
 * timestamps also refuses replays; the event id (`Postern-Event-Id`) is stable across attempts for idempotency.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const HEADERS = {
  id: 'postern-event-id',
  type: 'postern-event-type',
  timestamp: 'postern-timestamp',
  signature: 'postern-signature',
  attempt: 'postern-attempt',
} as const;

/** `v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`. */
export function sign(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * What a receiver does (the snippet in docs/api.md is this function): recompute, compare in constant time, and
 * refuse timestamps further than `toleranceS` from now.
 */
export function verifySignature(
  secret: string,
  headers: { timestamp: string | undefined; signature: string | undefined },
  body: string,
  toleranceS = 300,
  nowS = Math.floor(Date.now() / 1000),
): boolean {
  const ts = Number(headers.timestamp);
  if (!Number.isInteger(ts) || Math.abs(nowS - ts) > toleranceS || !headers.signature) return false;
  const expected = Buffer.from(sign(secret, ts, body));
  const given = Buffer.from(headers.signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
