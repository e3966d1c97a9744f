/** HTTP API settings from the environment (local mode and the chart set these; see docs/api.md). */

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { DEFAULT_ATTACH_MAX, directRoutingEnabled } from '../common/submit.ts';

export interface ApiSettings {
  host: string;
  /** 0 = any free port (tests; local mode reads it back from the ready line). */
  port: number;
  /** Name in the Received header and the right side of generated Message-IDs. */
  hostname: string;
  /** Largest message (bytes, as SMTP DATA would carry it); a RelayPolicy's limits.messageSize lowers it. */
  maxMessageSize: number;
  /** Largest request body; bigger requests get 413 before any of it is parsed. */
  maxRequestBytes: number;
  /** How long to wait for the JetStream PubAck before answering 503. */
  publishTimeoutMs: number;
  inlineBodyMax: number;
  /**
   * Route the common case at receipt and publish its job straight to delivery (services/common/submit.ts, the
   * lean path); `POSTERN_DIRECT_ROUTING=0` turns it off. Absent: on.
   */
  directRouting?: boolean;
  /** Largest body a direct job carries attached (`POSTERN_ATTACH_MAX`, default 256 KiB; services/common/body-wire.ts). */
  attachMax?: number;
  rateLimitTimeoutMs: number;
  /** PEM certificate and key: the listener speaks HTTPS. */
  tls?: { cert: Buffer; key: Buffer };
  /**
   * Count `X-Forwarded-Proto: https` as TLS (for a RelayPolicy's clients.requireTLS). Only for a listener that
   * nothing but a TLS-terminating proxy can reach (the chart's Ingress with the API NetworkPolicy).
   */
  trustForwardedProto: boolean;
}

function positiveInt(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 1): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer ≥ ${min}, got "${text}"`);
  return n;
}

/** Reads and validates the settings; throws naming the bad variable. */
export function readApiSettings(env: NodeJS.ProcessEnv = process.env): ApiSettings {
  const certPath = env['POSTERN_TLS_CERT'];
  const keyPath = env['POSTERN_TLS_KEY'];
  if (Boolean(certPath) !== Boolean(keyPath))
    throw new Error('set both POSTERN_TLS_CERT and POSTERN_TLS_KEY, or neither');
  const maxMessageSize = positiveInt(env, 'POSTERN_MAX_MESSAGE_SIZE', 25 * 1024 * 1024);
  const settings: ApiSettings = {
    host: env['POSTERN_API_HOST'] || '127.0.0.1',
    port: positiveInt(env, 'POSTERN_API_PORT', 2580, 0),
    hostname: env['POSTERN_HOSTNAME'] || hostname(),
    maxMessageSize,
    // base64 attachments grow by 4/3, plus JSON and text parts: room for a full-size message, and no more.
    maxRequestBytes: positiveInt(
      env,
      'POSTERN_API_MAX_REQUEST_BYTES',
      Math.ceil((maxMessageSize * 4) / 3) + 1024 * 1024,
    ),
    publishTimeoutMs: positiveInt(env, 'POSTERN_PUBLISH_TIMEOUT_MS', 5000),
    inlineBodyMax: positiveInt(env, 'POSTERN_INLINE_BODY_MAX', 16 * 1024),
    directRouting: directRoutingEnabled(env),
    attachMax: positiveInt(env, 'POSTERN_ATTACH_MAX', DEFAULT_ATTACH_MAX, 0),
    rateLimitTimeoutMs: positiveInt(env, 'POSTERN_RATE_LIMIT_TIMEOUT_MS', 500),
    trustForwardedProto: env['POSTERN_API_TRUST_FORWARDED_PROTO'] === 'true',
  };
  if (certPath && keyPath) settings.tls = { cert: readFileSync(certPath), key: readFileSync(keyPath) };
  return settings;
}
