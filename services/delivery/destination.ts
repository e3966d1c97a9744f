/**
 * Opening an SMTP/LMTP session to a route's destination.
 * - `mx`: mx-connect resolves MX per RFC 5321 §5 (preference order, implicit A/AAAA, null MX per RFC 7505) and
 *   connects, trying the next MX when a TCP connect fails. A host that accepts TCP but then refuses the session
 *   (421 greeting, EHLO failure, drop) is also "a failure" in the §5.1 sense: we retry mx-connect with that IP in
 *   `ignoreMXHosts` so the next MX is used.
 * - `smarthost` / `mailbox`: connect to host:port directly (mailbox protocol 'lmtp' → LMTP).
 */
import mxConnect from 'mx-connect';
import type { Route } from '../common/types.ts';
import type { ResolveRecords } from './dns-resolver.ts';
import { openSession, type SessionError, type SmtpSession } from './smtp-session.ts';

/** Bound on MX hosts tried per attempt (mx-connect itself also caps the list). */
const MAX_MX_SESSIONS = 5;

export interface DestinationContext {
  name: string;
  timeoutMs: number;
  mxPort: number;
  allowLoopbackMx: boolean;
  resolveRecords?: ResolveRecords | undefined;
}

/** Pooling key: jobs with the same key may share a connection. */
export function destinationKey(route: Route, mxPort: number): string {
  switch (route.kind) {
    case 'mx':
      return `mx:${route.domain.toLowerCase()}:${mxPort}:${route.tls}`;
    case 'smarthost':
      return `smtp:${route.host}:${route.port}:${route.tls}:${route.auth?.user ?? ''}`;
    case 'mailbox':
      return `${route.protocol}:${route.host}:${route.port}:${route.tls}`;
  }
}

/** A human name for logs. */
export function destinationName(route: Route): string {
  return route.kind === 'mx' ? route.domain : `${route.host}:${route.port}`;
}

export async function openDestination(route: Route, ctx: DestinationContext): Promise<SmtpSession> {
  const opts = { name: ctx.name, timeoutMs: ctx.timeoutMs };
  if (route.kind !== 'mx') {
    return openSession(
      {
        host: route.host,
        port: route.port,
        remoteMta: route.host,
        lmtp: route.kind === 'mailbox' && route.protocol === 'lmtp',
        tls: route.tls,
        ...(route.kind === 'smarthost' && route.auth ? { auth: route.auth } : {}),
      },
      opts,
    );
  }
  const failed: string[] = [];
  let lastErr: SessionError | undefined;
  for (let i = 0; i < MAX_MX_SESSIONS; i++) {
    let conn: Awaited<ReturnType<typeof mxConnect>>;
    try {
      conn = await mxConnect({
        target: route.domain,
        port: ctx.mxPort,
        maxConnectTime: ctx.timeoutMs,
        localHostname: ctx.name,
        ignoreMXHosts: failed,
        dnsOptions: {
          // mx-connect's default allows loopback/private MX targets; production must not (see settings.ts).
          blockLocalAddresses: !ctx.allowLoopbackMx,
          ...(ctx.resolveRecords ? { resolveRecords: ctx.resolveRecords } : {}),
        },
      });
    } catch (err) {
      // Every remaining MX was skipped after a session failure: report the last remote answer, not "no MX".
      throw failed.length > 0 && lastErr ? lastErr : err;
    }
    try {
      return await openSession(
        {
          host: conn.host,
          port: conn.port,
          socket: conn.socket,
          remoteMta: conn.hostname,
          lmtp: false,
          tls: route.tls,
        },
        opts,
      );
    } catch (err) {
      lastErr = err as SessionError;
      failed.push(conn.host);
    }
  }
  throw lastErr ?? new Error(`no usable MX for ${route.domain}`);
}
