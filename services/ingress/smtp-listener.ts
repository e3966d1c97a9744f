/**
 * One SMTP listener: smtp-server configured for its mode, with one handler per SMTP verb (AUTH, MAIL, RCPT,
 * DATA). Policy lives in recipient-policy.ts, the hand-off to JetStream in submit.ts; this file wires them to
 * the protocol and owns the replies.
 */
import { performance } from 'node:perf_hooks';
import { SMTPServer, type SMTPServerEnvelope, type SMTPServerSession } from 'smtp-server';
import { verifyPassword } from '../common/config/password.ts';
import type { ConfigStore } from '../common/config/store.ts';
import { newMessageId } from '../common/message-id.ts';
import { networkList } from '../common/networks.ts';
import { receivedHeader } from '../common/received-header.ts';
import type { Submitter } from '../common/submit.ts';
import type { Logger } from '../common/telemetry.ts';
import { checkMailbox } from './address-syntax.ts';
import type { AuthLockout } from './auth-lockout.ts';
import type { ClientRateLimiter, Reservation } from './client-rate.ts';
import { installConnectionHooks } from './connection-hooks.ts';
import type { ConnectionRate } from './connection-rate.ts';
import { type ContentFilter, scanRequest } from './content-filter.ts';
import type { Dnsbl } from './dnsbl.ts';
import { envelopeDsn } from './dsn-params.ts';
import { LineEndingGuard } from './line-ending-guard.ts';
import type { IngressMetrics } from './metrics.ts';
import { installProxyProtocol } from './proxy-protocol.ts';
import { type ClientIdentity, decideRecipient, messageRateLimit, sizeLimitFor } from './recipient-policy.ts';
import { REPLIES, replyText, type SmtpReply, smtpError } from './replies.ts';
import type { SenderAuth } from './sender-auth.ts';
import { type ConnectionTable, guardSession } from './session-limits.ts';
import {
  type AbuseLimits,
  checkProxyListeners,
  DEFAULT_LIMITS,
  DEFAULT_PROXY_HEADER_TIMEOUT_MS,
  type IngressSettings,
  type ListenerSettings,
} from './settings.ts';

export interface ListenerDeps {
  settings: IngressSettings;
  config: ConfigStore;
  submitter: Submitter;
  metrics: IngressMetrics;
  rates: ClientRateLimiter;
  /** Open connections per IP and in total, shared by every listener of the process. */
  connections: ConnectionTable;
  /** Failed AUTHs per IP and per user, across replicas. */
  lockout: AuthLockout;
  /** New connections per client per minute, across replicas. */
  connectionRate: ConnectionRate;
  /** SPF/DKIM/DMARC/ARC/iprev of inbound mail at end of DATA. */
  senderAuth: SenderAuth;
  logger: Logger;
  /** DNS block lists checked at connect (only on listeners that use them). */
  dnsbl?: Dnsbl;
  /** rspamd scan at end of DATA (only on listeners that use it). */
  contentFilter?: ContentFilter;
}

/** What onAuth stores as `session.user`: the name and the policies whose user list verified the password. */
interface AuthedUser {
  name: string;
  policies: string[];
}

/** Per-transaction state; smtp-server creates a new envelope object for every transaction. */
interface Transaction {
  /** First RelayPolicy that allowed relaying a recipient (Envelope.policy). */
  policy?: string;
}

/**
 * The session's counted message (client-rate.ts): taken at the first accepted RCPT of a transaction, kept by a
 * 250, reused by the next transaction when one ends without a 250 (RSET, refused DATA), given back when the
 * session closes unused. Per session, because smtp-server keeps one session object per connection.
 */
interface SessionQuota {
  reservation?: Reservation;
  /** DATA is being stored: the reservation is about to be kept or handed back by accept(). */
  accepting: boolean;
  closed: boolean;
}

/** Low-cardinality reason labels for postern_smtp_rejections_total. */
const REASONS = new Map<SmtpReply, string>([
  [REPLIES.badSender, 'sender-syntax'],
  [REPLIES.badRecipient, 'recipient-syntax'],
  [REPLIES.unknownUser, 'unknown-user'],
  [REPLIES.relayDenied, 'relay-denied'],
  [REPLIES.tooManyRecipients, 'too-many-recipients'],
  [REPLIES.rateLimited, 'rate-limit'],
  [REPLIES.tooBig, 'size'],
  [REPLIES.bareLineEnding, 'bare-line-ending'],
  [REPLIES.authRequired, 'auth-required'],
  [REPLIES.authFailed, 'auth-failed'],
  [REPLIES.authLockedOut, 'auth-locked-out'],
  [REPLIES.tooManyConnections, 'too-many-connections'],
  [REPLIES.tooManyConnectionsFromIp, 'too-many-connections-from-ip'],
  [REPLIES.connectionRateLimited, 'connection-rate'],
]);

function identity(session: SMTPServerSession): ClientIdentity {
  const user = session.user as AuthedUser | undefined;
  return {
    address: session.remoteAddress,
    ...(user ? { user: user.name, authPolicies: user.policies } : {}),
    tls: session.secure,
  };
}

/** Rate-limit key: the authenticated user, else the client address. */
function rateKey(session: SMTPServerSession): string {
  const user = session.user as AuthedUser | undefined;
  return user ? `user:${user.name}` : `ip:${session.remoteAddress}`;
}

/** Commands switched off: no STARTTLS without a certificate; no AUTH in clear text unless insecureAuth. */
function disabledCommands(listener: ListenerSettings, hasCert: boolean): string[] {
  if (hasCert || listener.mode === 'smtps') return [];
  return listener.insecureAuth ? ['STARTTLS'] : ['STARTTLS', 'AUTH'];
}

/** Creates (does not start) the SMTP server for one listener. */
export function createSmtpListener(listener: ListenerSettings, deps: ListenerDeps): SMTPServer {
  const {
    settings,
    config,
    submitter,
    metrics,
    rates,
    connections,
    lockout,
    connectionRate,
    senderAuth,
    logger,
    dnsbl,
    contentFilter,
  } = deps;
  const limits: AbuseLimits = { ...DEFAULT_LIMITS, ...settings.limits };
  /** Sessions counted in the connection table (refused ones are not), by smtp-server session id. */
  const admitted = new Set<string>();
  const label = { listener: listener.name };
  const log = logger.child({ listener: listener.name });
  const transactions = new WeakMap<SMTPServerEnvelope, Transaction>();
  const quotas = new WeakMap<SMTPServerSession, SessionQuota>();
  const quotaOf = (session: SMTPServerSession) => {
    let q = quotas.get(session);
    if (!q) {
      q = { accepting: false, closed: false };
      quotas.set(session, q);
    }
    return q;
  };
  const tx = (session: SMTPServerSession) => {
    let t = transactions.get(session.envelope);
    if (!t) {
      t = {};
      transactions.set(session.envelope, t);
    }
    return t;
  };
  const refuse = (
    reply: SmtpReply,
    session: SMTPServerSession,
    fields: Record<string, unknown> = {},
    reason = REASONS.get(reply) ?? 'other',
  ) => {
    metrics.rejections.inc({ ...label, reason });
    log.info(
      { client: session.remoteAddress, reply: `${reply.code} ${reply.enhanced}`, ...fields },
      'refused',
    );
    return smtpError(reply);
  };
  if (listener.mode === 'smtps' && !settings.tls) {
    throw new Error(`listener ${listener.name}: mode smtps needs POSTERN_TLS_CERT and POSTERN_TLS_KEY`);
  }

  const server = new SMTPServer({
    name: settings.hostname,
    banner: 'Postern',
    secure: listener.mode === 'smtps',
    ...(settings.tls ? { key: settings.tls.key, cert: settings.tls.cert } : {}),
    size: settings.maxMessageSize,
    hideENHANCEDSTATUSCODES: false,
    // RFC 3461: advertise DSN; smtp-server then keeps RET/ENVID/NOTIFY/ORCPT in the envelope (dsn-params.ts).
    hideDSN: false,
    authMethods: ['PLAIN', 'LOGIN'],
    // RFC 6409 §4.3: submission may require authentication; the MX port must not.
    authOptional: listener.mode === 'relay',
    authRequiredMessage: replyText(REPLIES.authRequired),
    allowInsecureAuth: listener.insecureAuth === true,
    disabledCommands: disabledCommands(listener, Boolean(settings.tls)),
    // proxy-protocol.ts reads v1/v2 from trusted balancers and hands smtp-server a v1 line for this option.
    useProxy: listener.proxyProtocol === true,
    // The Received header records the IP; a PTR lookup per connection only adds latency.
    disableReverseLookup: true,
    // On close, sessions still open after this long get 421 (RFC 5321 §3.8) so shutdown is bounded.
    closeTimeout: 10_000,
    // smtpd_timeout: the client owes us input and sends nothing (session-limits.ts maps the reply to 4.4.2).
    socketTimeout: limits.idleTimeoutMs,
    // session-limits.ts counts commands before AUTH itself, with our reply; smtp-server's fixed cap stays out.
    maxAllowedUnauthenticatedCommands: Number.MAX_SAFE_INTEGER,
    // smtpd_recipient_limit: smtp-server keeps one entry per distinct address (a repeated RCPT replaces it) but
    // has no cap unless told, so a transaction to an accept-all domain grew without bound (fuzz finding 3).
    maxRecipients: limits.maxRecipients,
    logger: false,

    onConnect(session, callback) {
      const admit = () => {
        const refusal = connections.admit(session.remoteAddress);
        if (refusal) return callback(refuse(refusal, session, { open: connections.total }));
        admitted.add(session.id);
        if (!dnsbl) return callback();
        // After the PROXY header (proxy-protocol.ts sets remoteAddress before onConnect): the real client.
        void dnsbl.listed(listener.name, session.remoteAddress, config.snapshot()).then(
          (hit) =>
            callback(
              hit ? refuse(hit.reply, session, { zone: hit.zone, answer: hit.answer }, 'dnsbl') : null,
            ),
          (err: Error) => {
            // listed() fails open by itself; reaching this is a bug, and failing open is still the answer.
            log.error({ client: session.remoteAddress, err: err.message }, 'DNSBL check failed');
            callback();
          },
        );
      };
      void connectionRate.admit(session.remoteAddress).then(
        (rate) => (rate.allowed ? admit() : callback(refuse(REPLIES.connectionRateLimited, session, rate))),
        (err: Error) => {
          // admit() decides locally on counter errors; reaching this is a bug, and a throttle fails open.
          log.error({ client: session.remoteAddress, err: err.message }, 'connection rate check failed');
          admit();
        },
      );
    },

    onAuth(auth, session, callback) {
      const name = auth.username ?? '';
      void lockout.lockedOut(session.remoteAddress, name).then(
        (locked) => {
          if (locked) return callback(refuse(REPLIES.authLockedOut, session, { user: name, by: locked }));
          const policies = verify(name, auth.password ?? '');
          if (policies.length > 0) {
            log.info({ client: session.remoteAddress, user: name }, 'authenticated');
            return callback(null, { user: { name, policies } satisfies AuthedUser });
          }
          // Counted before the reply, so the next AUTH anywhere in the cluster already sees it.
          void lockout
            .failed(session.remoteAddress, name)
            .then(() => callback(refuse(REPLIES.authFailed, session, { user: name })));
        },
        (err: Error) => {
          // lockedOut() decides locally when the counters fail; reaching this is a bug, and 454 is the safe answer.
          log.error({ client: session.remoteAddress, err: err.message }, 'AUTH lockout check failed');
          callback(smtpError(REPLIES.authLockedOut));
        },
      );
    },

    onMailFrom(address, session, callback) {
      // Defence in depth: smtp-server already answers 530 here unless AUTH is unavailable on this listener.
      if (listener.mode !== 'relay' && !session.user) return callback(refuse(REPLIES.authRequired, session));
      if (address.address !== '' && !checkMailbox(address.address).ok) {
        return callback(refuse(REPLIES.badSender, session, { from: address.address }));
      }
      const declared = address.args ? Number(address.args['SIZE']) : Number.NaN;
      const limit = sizeLimitFor(identity(session), config.snapshot(), settings.maxMessageSize);
      if (declared > limit) return callback(refuse(REPLIES.tooBig, session, { declared, limit }));
      callback();
    },

    onRcptTo(address, session, callback) {
      if (/^postmaster$/i.test(address.address)) {
        // RFC 5321 §4.5.1: the bare reserved mailbox is always accepted, and goes to the configured
        // postmaster address (an operator-chosen destination, so this opens no relay).
        address.address = settings.postmaster ?? `postmaster@${settings.hostname}`;
        log.info({ client: session.remoteAddress, to: address.address }, 'RCPT TO:<postmaster> accepted');
        return callback();
      }
      const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
      const decision = decideRecipient({
        recipient: address.address,
        sender: from,
        client: identity(session),
        snapshot: config.snapshot(),
        acceptedSoFar: session.envelope.rcptTo.length,
      });
      if (!decision.accept) {
        return callback(refuse(decision.reply, session, { from, to: address.address, why: decision.reason }));
      }
      const limit = messageRateLimit(identity(session), config.snapshot());
      const quota = quotaOf(session);
      if (limit === undefined || quota.reservation) {
        if (decision.kind === 'relay') tx(session).policy ??= decision.policy;
        return callback();
      }
      void rates.reserve(rateKey(session), limit).then(
        (r) => {
          if (!r.allowed) {
            return callback(
              refuse(REPLIES.rateLimited, session, {
                from,
                to: address.address,
                count: r.count,
                limit,
                via: r.source,
              }),
            );
          }
          if (quota.closed) void r.release();
          else quota.reservation = r;
          if (decision.kind === 'relay') tx(session).policy ??= decision.policy;
          callback();
        },
        (err: Error) => {
          // reserve() decides locally on counter errors; reaching this is a bug, and 451 is the safe answer.
          log.error({ client: session.remoteAddress, err: err.message }, 'client rate check failed');
          callback(smtpError(REPLIES.tempFail));
        },
      );
    },

    onClose(session) {
      if (admitted.delete(session.id)) connections.release(session.remoteAddress);
      const quota = quotas.get(session);
      if (!quota) return;
      quota.closed = true;
      if (quota.reservation && !quota.accepting) void quota.reservation.release();
    },

    onData(stream, session, callback) {
      const limit = sizeLimitFor(identity(session), config.snapshot(), settings.maxMessageSize);
      const guard = new LineEndingGuard();
      const chunks: Buffer[] = [];
      let received = 0;
      let answered = false;
      const answer: typeof callback = (err, msg) => {
        if (answered) return;
        answered = true;
        callback(err, msg);
      };
      stream.on('data', (chunk: Buffer) => {
        guard.feed(chunk);
        received += chunk.length;
        // Past the limit we keep reading (to reach the end of DATA) but stop buffering.
        if (received <= limit) chunks.push(chunk);
      });
      stream.once('error', (err) => {
        log.warn({ client: session.remoteAddress, err: err.message }, 'DATA stream failed');
        metrics.messagesReceived.inc({ ...label, result: 'tempfail' });
        answer(smtpError(REPLIES.tempFail));
      });
      stream.once('end', () => {
        if (received > limit || stream.sizeExceeded) {
          metrics.messagesReceived.inc({ ...label, result: 'rejected' });
          return answer(refuse(REPLIES.tooBig, session, { size: received, limit }));
        }
        if (!guard.clean()) {
          metrics.messagesReceived.inc({ ...label, result: 'rejected' });
          return answer(refuse(REPLIES.bareLineEnding, session));
        }
        void accept(session, chunks, answer);
      });
    },
  });
  installConnectionHooks(server, {
    opened: () => metrics.sessionsActive.inc(label),
    closed: () => metrics.sessionsActive.dec(label),
    refused: (reason) => metrics.rejections.inc({ ...label, reason }),
    perConnection: (conn) =>
      guardSession(conn as Parameters<typeof guardSession>[0], {
        limits,
        requiresAuth: listener.mode !== 'relay',
        tripped: (reason) => {
          metrics.rejections.inc({ ...label, reason });
          log.info({ reason }, 'session ended by an abuse limit');
        },
      }),
  });

  /** The policies whose user list verifies this password (a name may appear in several). */
  function verify(name: string, password: string): string[] {
    const policies: string[] = [];
    for (const [key, policy] of [...config.snapshot().policies.entries()].sort(([a], [b]) =>
      a < b ? -1 : 1,
    )) {
      const user = policy.users.find((u) => u.name === name);
      try {
        if (user && verifyPassword(password, user.hash)) policies.push(key);
      } catch (err) {
        log.warn({ policy: key, user: name, err: (err as Error).message }, 'unreadable password hash');
      }
    }
    return policies;
  }
  if (listener.proxyProtocol) {
    checkProxyListeners({
      listeners: [listener],
      ...(settings.proxyProtocol ? { proxyProtocol: settings.proxyProtocol } : {}),
    });
    installProxyProtocol(server, {
      trusted: networkList(settings.proxyProtocol?.trustedNetworks ?? []),
      headerTimeoutMs: settings.proxyProtocol?.headerTimeoutMs ?? DEFAULT_PROXY_HEADER_TIMEOUT_MS,
      log,
      accepted: (h) => metrics.proxyHeaders.inc({ ...label, version: `v${h.version}`, command: h.command }),
      refused: (reason) => metrics.proxyRefusals.inc({ ...label, reason }),
    });
  }
  server.on('error', (err) => log.warn({ err: err.message }, 'SMTP connection error'));

  /** End of DATA: trace header, durable hand-off, then 250 — or 451 when JetStream did not acknowledge. */
  async function accept(
    session: SMTPServerSession,
    chunks: Buffer[],
    callback: (err?: Error | null, msg?: string) => void,
  ) {
    const started = performance.now();
    const id = newMessageId();
    const envelope = session.envelope;
    const to = envelope.rcptTo.map((r) => r.address);
    const from = envelope.mailFrom ? envelope.mailFrom.address : '';
    const user = session.user as AuthedUser | undefined;
    const dsn = envelopeDsn(envelope);
    // Sender authentication first, so a content filter after it sees our Authentication-Results.
    const auth = await senderAuth.check({
      client: identity(session),
      helo: session.hostNameAppearsAs || '',
      sender: from,
      recipients: to,
      message: Buffer.concat(chunks),
      snapshot: config.snapshot(),
      ...(tx(session).policy ? { policy: tx(session).policy } : {}),
    });
    if (auth.verdict.action === 'reject') {
      metrics.messagesReceived.inc({ ...label, result: 'rejected' });
      return callback(
        refuse(
          auth.verdict.reply,
          session,
          { msgId: id, from, to, why: auth.verdict.reason },
          auth.verdict.reason,
        ),
      );
    }
    const header = receivedHeader({
      helo: session.hostNameAppearsAs,
      clientAddress: session.remoteAddress,
      hostname: settings.hostname,
      id,
      protocol: session.transmissionType,
      ...(session.tlsOptions
        ? { tls: { version: session.tlsOptions.version, cipher: session.tlsOptions.name } }
        : {}),
      ...(to.length === 1 ? { recipient: to[0] } : {}),
      date: new Date(),
    });
    // RFC 8601 §5: Authentication-Results goes above the trace fields of the hop that added it; the content
    // filter below sees it.
    let body: Buffer = Buffer.concat([Buffer.from(auth.header + header, 'utf8'), auth.message]);
    const policy = tx(session).policy;
    const fields = { msgId: id, client: session.remoteAddress, from, rcpts: to.length, size: body.length };
    const quota = quotaOf(session);
    quota.accepting = true;
    try {
      // The content filter sees the message as it will be queued (trace and authentication headers included).
      if (contentFilter) {
        const scanned = await contentFilter.check(listener.name, scanRequest(session, id, user?.name, body));
        if (scanned.kind === 'refuse') {
          const result = scanned.reply.code >= 500 ? 'rejected' : 'tempfail';
          metrics.messagesReceived.inc({ ...label, result });
          const why = { ...fields, action: scanned.action, score: scanned.score };
          return callback(refuse(scanned.reply, session, why, 'content-filter'));
        }
        body = scanned.body;
      }
      const { stored } = await submitter.submit(
        {
          id,
          from,
          to,
          receivedAt: new Date().toISOString(),
          ...(policy ? { policy } : {}),
          client: {
            address: session.remoteAddress,
            helo: session.hostNameAppearsAs || '',
            ...(user ? { user: user.name } : {}),
            tls: session.secure,
          },
          kind: 'mail',
          ...(envelope.smtpUtf8 ? { smtputf8: true } : {}),
          ...(dsn ? { dsn } : {}),
          ...(auth.verdict.action === 'hold' ? { hold: auth.verdict.reason } : {}),
        },
        body,
      );
      quota.reservation?.commit();
      delete quota.reservation;
      metrics.messagesReceived.inc({ ...label, result: 'accepted' });
      metrics.acceptDuration.observe(label, (performance.now() - started) / 1000);
      log.info({ ...fields, stored, policy }, 'queued');
      callback(null, replyText(REPLIES.queued(id)));
    } catch (err) {
      metrics.messagesReceived.inc({ ...label, result: 'tempfail' });
      log.warn({ ...fields, err: (err as Error).message }, 'not queued, answered 451');
      callback(smtpError(REPLIES.tempFail));
    } finally {
      quota.accepting = false;
      if (quota.closed && quota.reservation) void quota.reservation.release();
    }
  }

  return server;
}
