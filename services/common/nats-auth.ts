/**
 * How a Postern process authenticates to NATS and verifies it (docs/chart.md "NATS security"). The chart sets
 * these per component from its Secrets; local mode sets none (nats-server listens on 127.0.0.1 only).
 *
 * | variable | meaning |
 * | --- | --- |
 * | `NATS_USER` + `NATS_PASSWORD` (or `NATS_PASSWORD_FILE`) | user/password (the chart's default: one user per component) |
 * | `NATS_CREDS_FILE` | a `.creds` file (JWT + nkey seed) for operator-mode (decentralised) NATS accounts |
 * | `NATS_NKEY_SEED_FILE` | an nkey seed file (`SU…`) for servers configured with nkey users |
 * | `NATS_TLS_CA_FILE` | CA bundle the server's certificate must chain to; setting it requires TLS |
 * | `NATS_TLS_CERT_FILE` + `NATS_TLS_KEY_FILE` | a client certificate, for servers that verify clients |
 * | `NATS_INBOX_PREFIX` | reply subjects of this process (default `_INBOX`); the chart gives each component its own so permissions can keep one component from reading another's replies |
 */
import { readFileSync } from 'node:fs';
import { credsAuthenticator, nkeyAuthenticator } from '@nats-io/nats-core';
import type { ConnectionOptions } from '@nats-io/transport-node';

export type NatsAuthOptions = Pick<
  ConnectionOptions,
  'user' | 'pass' | 'authenticator' | 'tls' | 'inboxPrefix'
>;

const read = (file: string) => readFileSync(file, 'utf8').trim();

/** Connection options from the environment; empty when nothing is set (no auth, no TLS). */
export function natsAuthFromEnv(env: NodeJS.ProcessEnv = process.env): NatsAuthOptions {
  const opts: NatsAuthOptions = {};
  const user = env['NATS_USER'];
  const pass =
    env['NATS_PASSWORD'] ?? (env['NATS_PASSWORD_FILE'] ? read(env['NATS_PASSWORD_FILE']) : undefined);
  if (user) {
    if (!pass) throw new Error('NATS_USER is set without NATS_PASSWORD or NATS_PASSWORD_FILE');
    opts.user = user;
    opts.pass = pass;
  }
  if (env['NATS_CREDS_FILE']) {
    opts.authenticator = credsAuthenticator(new TextEncoder().encode(read(env['NATS_CREDS_FILE'])));
  } else if (env['NATS_NKEY_SEED_FILE']) {
    opts.authenticator = nkeyAuthenticator(new TextEncoder().encode(read(env['NATS_NKEY_SEED_FILE'])));
  }
  const ca = env['NATS_TLS_CA_FILE'];
  const cert = env['NATS_TLS_CERT_FILE'];
  const key = env['NATS_TLS_KEY_FILE'];
  if (ca || cert) {
    opts.tls = {
      ...(ca ? { caFile: ca } : {}),
      ...(cert ? { certFile: cert } : {}),
      ...(key ? { keyFile: key } : {}),
    };
  }
  if (env['NATS_INBOX_PREFIX']) opts.inboxPrefix = env['NATS_INBOX_PREFIX'];
  return opts;
}
