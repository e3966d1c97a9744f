/**
 * One SMTP or LMTP client session (nodemailer's SMTPConnection) with promise methods and per-recipient outcomes.
 * The session may run over a socket mx-connect already opened (MX routes) or connect itself (smarthost/mailbox).
 */
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { BodySource } from '../common/body-store.ts';
import { corkForTurn } from '../common/cork.ts';
import type { DsnParams, RecipientOutcome, TlsFacts } from '../common/types.ts';
import { encodeXtext } from '../common/xtext.ts';
import { classifyError, classifyReply } from './classify.ts';
import { judgeSession, type TlsRequirement, type TlsState } from './tls-policy.ts';

export interface SessionTarget {
  /** Address to connect to (IP or name), or the peer address of `socket`. */
  host: string;
  port: number;
  /** A connected socket (from mx-connect); the session then reads the greeting from it. */
  socket?: Socket;
  /** Host name for logs, `remoteMta` and TLS SNI. */
  remoteMta: string;
  lmtp: boolean;
  /** What the route's TLS mode demands of this session (tls-policy.ts). */
  tls: TlsRequirement;
  auth?: { user: string; pass: string };
}

export interface SessionOptions {
  /** EHLO/LHLO name. */
  name: string;
  timeoutMs: number;
}

export interface SmtpSession {
  readonly remoteMta: string;
  /** Messages sent on this session so far (for the reuse cap). */
  messages: number;
  /** True once the connection closed or failed: it must not be reused. */
  readonly closed: boolean;
  /** Whether STARTTLS succeeded. */
  readonly secure: boolean;
  /** What TLS the session has and which policy it kept. */
  readonly tls: TlsFacts;
  /**
   * One transaction; never throws for remote answers — they become outcomes. Throws on connection loss, and
   * with code ESTREAM when the message stream failed (the session is then closed: it was left inside DATA).
   * A stream factory is called once, for this transaction. `dsn` (RFC 3461) is passed on only when the peer
   * advertised DSN.
   */
  send(from: string, recipients: string[], message: BodySource, dsn?: DsnParams): Promise<RecipientOutcome[]>;
  /** RSET before reusing the session for another transaction (RFC 5321 §4.1.1.5). */
  reset(): Promise<void>;
  /** QUIT and close. */
  close(): void;
  /**
   * Resolves once the TCP connection is gone (or after a bound): a site's connection lease is given back only then,
   * so the remote never sees more sessions than the limit, not even while one is closing.
   */
  ended(): Promise<void>;
}

/** An error raised while opening a session; `ip` lets MX delivery skip this host and try the next MX. */
export interface SessionError extends Error {
  code?: string;
  category?: string;
  response?: string;
  responseCode?: number;
  command?: string;
  /** The TLS facts of the session that failed (a policy refusal, a failed handshake). */
  tls?: TlsFacts;
}

function tlsOptions(target: SessionTarget) {
  const common = {
    host: target.host,
    port: target.port,
    lmtp: target.lmtp,
    // The handshake itself never rejects: the certificate is judged afterwards (tls-policy.ts), before any
    // command that carries data, so the verdict can name the RFC 8460 failure type and the policy that applied.
    tls: {
      rejectUnauthorized: false,
      servername: /^[\d.:]+$/.test(target.tls.hostname) ? undefined : target.tls.hostname,
    },
  };
  if (target.tls.applied === 'none') return { ...common, ignoreTLS: true };
  if (target.tls.mustEncrypt) return { ...common, requireTLS: true };
  return { ...common, opportunisticTLS: true };
}

/** RFC 3461 §4.2 ORCPT=addr-type;xtext (the type is an atom; utf-8 addresses keep their RFC 6533 form). */
function orcptParam(orcpt: string): string {
  const semi = orcpt.indexOf(';');
  const type = orcpt.slice(0, semi);
  const address = orcpt.slice(semi + 1);
  return `${type};${type.toLowerCase() === 'utf-8' ? address : encodeXtext(address)}`;
}

/** The TLS state of a connected SMTPConnection. */
function tlsStateOf(conn: SMTPConnection): TlsState {
  // nodemailer keeps the (upgraded) socket private; its TLS facts have no public accessor.
  const sock = (conn as unknown as { _socket?: TLSSocket })._socket;
  if (!conn.secure || !sock || typeof sock.getPeerCertificate !== 'function') return { encrypted: false };
  const cipher = sock.getCipher?.();
  return {
    encrypted: true,
    version: sock.getProtocol?.() ?? undefined,
    cipher: cipher?.standardName ?? cipher?.name,
    authorized: sock.authorized,
    authorizationError: sock.authorizationError ? String(sock.authorizationError) : undefined,
    peer: sock.getPeerCertificate(true),
  };
}

/** A session refused for its TLS: deferred 4.7.x (classify.ts), never sent in clear or to an unverified peer. */
function tlsError(message: string, code: 'ENOTLS' | 'ETLSVERIFY' | 'ETLS', tls: TlsFacts): SessionError {
  const e: SessionError = new Error(message);
  e.code = code;
  e.category = 'tls';
  e.tls = tls;
  return e;
}

/**
 * The message and its terminating dot leave in one write. nodemailer pipes the message through its dot-stuffing
 * stream into the socket, which then writes the body and the `.` line (RFC 5321 §4.1.1.4) as two writes, one
 * syscall each, on every message (a quarter of delivery CPU under load went to socket writes, docs/bench.md,
 * "Hot path"). Corking the socket while that stream is set up lets the pipe's chunks collect; setImmediate
 * uncorks once they were written (the pipe starts flowing on the next tick). nodemailer already corks the
 * pipelined envelope itself. `_createSendStream` is internal to nodemailer (no public hook); if a version renames
 * it, this does nothing and messages go out as before.
 */
function batchMessageWrites(conn: SMTPConnection): void {
  const internals = conn as unknown as {
    _socket?: Writable;
    _createSendStream?: (callback: (err: Error | null, str: string) => void) => unknown;
  };
  const create = internals._createSendStream;
  if (typeof create !== 'function') return;
  internals._createSendStream = (callback) => {
    if (internals._socket) corkForTurn(internals._socket);
    return create.call(conn, callback);
  };
}

/** Connects, reads the greeting, EHLO/LHLO, STARTTLS per `target.tls`, AUTH when configured. */
export async function openSession(target: SessionTarget, opts: SessionOptions): Promise<SmtpSession> {
  const where = `${target.remoteMta}:${target.port}`;
  const conn = new SMTPConnection({
    ...tlsOptions(target),
    ...(target.socket ? { connection: target.socket } : {}),
    name: opts.name,
    greetingTimeout: opts.timeoutMs,
    connectionTimeout: opts.timeoutMs,
    socketTimeout: opts.timeoutMs,
    logger: false,
  });
  let closed = false;
  let lastError: SessionError | undefined;
  // An 'error' event without a listener would crash the process (rule 3: never crash on bad peers).
  conn.on('error', (err: SessionError) => {
    lastError = err;
    closed = true;
  });
  let markEnded!: () => void;
  const endedPromise = new Promise<void>((r) => (markEnded = r));
  conn.on('end', () => {
    markEnded();
    closed = true;
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      conn.off('end', onEnd);
      reject(err);
    };
    const onEnd = () => {
      conn.off('error', onError);
      const err: SessionError = lastError ?? new Error('Connection closed during session setup');
      err.code ??= 'ECONNECTION';
      reject(err);
    };
    conn.once('error', onError);
    conn.once('end', onEnd);
    conn.connect(() => {
      conn.off('error', onError);
      conn.off('end', onEnd);
      resolve();
    });
  }).catch((err: SessionError) => {
    conn.close();
    if (err.code !== 'ETLS') throw err;
    // A refused STARTTLS must defer (our policy), not bounce on the server's 5xx to STARTTLS; a failed handshake
    // likewise. nodemailer sends STARTTLS even when EHLO did not offer it (requireTLS): the reply says which.
    const facts: TlsFacts = { policy: target.tls.policy, applied: target.tls.applied, verified: false };
    if (err.command === 'STARTTLS' && err.response) {
      throw tlsError(
        `TLS required (${target.tls.applied}) but not offered by ${where} (STARTTLS: ${err.response.trim()})`,
        'ENOTLS',
        { ...facts, failure: 'starttls-not-supported', detail: err.response.trim() },
      );
    }
    throw tlsError(`TLS handshake with ${where} failed (${target.tls.applied}): ${err.message}`, 'ETLS', {
      ...facts,
      failure: 'validation-failure',
      detail: err.message,
    });
  });

  // Judged before AUTH or MAIL FROM: a session that breaks the policy never carries credentials or mail.
  const verdict = judgeSession(target.tls, tlsStateOf(conn), where);
  if (verdict.refuse) {
    conn.close();
    throw tlsError(
      verdict.refuse,
      verdict.facts.failure === 'starttls-not-supported' ? 'ENOTLS' : 'ETLSVERIFY',
      verdict.facts,
    );
  }
  const tlsFacts = verdict.facts;

  if (target.auth) {
    await new Promise<void>((resolve, reject) => {
      conn.login({ user: target.auth!.user, pass: target.auth!.pass }, (err) =>
        err ? reject(err) : resolve(),
      );
    }).catch((err: SessionError) => {
      conn.close();
      throw err;
    });
  }

  // nodemailer passes RET/ENVID (envelope.dsn) only to a peer that advertised DSN, but takes one NOTIFY/ORCPT
  // for all recipients; per-recipient values need its RCPT argument builder replaced for this connection. It is
  // called by _sendRcpt right after the recipient is queued, so the last queued recipient is the one.
  const internals = conn as unknown as {
    _supportedExtensions: string[];
    _recipientQueue: string[];
    _getDsnRcptToArgs: () => string;
  };
  const peerDsn = () => internals._supportedExtensions.includes('DSN');
  batchMessageWrites(conn);
  let current: DsnParams | undefined;
  internals._getDsnRcptToArgs = () => {
    const p = current?.recipients?.[internals._recipientQueue.at(-1) ?? ''];
    if (!p || !peerDsn()) return '';
    return [
      ...(p.notify ? [` NOTIFY=${p.notify.join(',')}`] : []),
      ...(p.orcpt ? [` ORCPT=${orcptParam(p.orcpt)}`] : []),
    ].join('');
  };

  const remoteMta = target.remoteMta;
  const outcome = (
    recipient: string,
    c: { status: RecipientOutcome['status']; response: string; enhanced?: string },
  ) =>
    ({
      recipient,
      status: c.status,
      response: c.response,
      remoteMta,
      ...(c.enhanced ? { enhanced: c.enhanced } : {}),
      tls: tlsFacts,
      peerDsn: peerDsn(),
    }) as RecipientOutcome;

  const session: SmtpSession = {
    remoteMta,
    messages: 0,
    get closed() {
      return closed;
    },
    get secure() {
      return conn.secure;
    },
    tls: tlsFacts,
    send(from, recipients, message, dsn) {
      session.messages++;
      current = dsn;
      const mailDsn = dsn?.ret || dsn?.envid ? { dsn: { ret: dsn.ret, envid: dsn.envid } } : {};
      const raw = typeof message === 'function' ? message() : message;
      return new Promise<RecipientOutcome[]>((resolve, reject) => {
        conn.send({ from, to: recipients, ...mailDsn }, raw, (err, info) => {
          if ((err as SessionError | null)?.code === 'ESTREAM') {
            // The message stream failed (the body store, services/common/object-stream.ts). nodemailer pipes it
            // into its DataStream, which writes the terminating `.` (RFC 5321 §4.1.1.4) only when the source
            // ends, and an errored stream never ends: the dot is not sent, so the peer cannot take the part it
            // got for the whole message. But nodemailer only reports the error and leaves the connection in the
            // DATA phase, where any later command (RSET, QUIT) would be read as message text. Closing the socket
            // is the one way out; a peer discards a transaction whose DATA the connection ends in.
            closed = true;
            conn.close();
            return reject(err);
          }
          // RCPT rejections are per recipient (RFC 5321 §4.1.1.3); with LMTP so are DATA replies (RFC 2033 §4.2).
          const rejected = new Map<string, SessionError>();
          const rejectedErrors =
            (err as { rejectedErrors?: (SessionError & { recipient?: string })[] } | null)?.rejectedErrors ??
            info?.rejectedErrors ??
            [];
          for (const e of rejectedErrors as (SessionError & { recipient?: string })[]) {
            if (e.recipient) rejected.set(e.recipient, e);
          }
          if (err && !(err.code === 'EENVELOPE' && rejected.size === recipients.length)) {
            // MAIL FROM / DATA reply failure applies to every recipient not already rejected; a lost
            // connection is thrown so the caller can decide (retry on a fresh connection or defer).
            if (!(err as SessionError).responseCode) return reject(err);
            const c = classifyError(err as SessionError);
            return resolve(
              recipients.map((r) =>
                rejected.has(r) ? outcome(r, classifyError(rejected.get(r)!)) : outcome(r, c),
              ),
            );
          }
          const dataReply = info?.response ? classifyReply(info.response) : undefined;
          resolve(
            recipients.map((r) => {
              const rej = rejected.get(r);
              if (rej) return outcome(r, classifyError(rej));
              // LMTP: nodemailer hands back only the last recipient's reply; the recipients it still lists as
              // accepted each got their own 2xx.
              if (target.lmtp && info?.accepted.includes(r)) {
                return outcome(
                  r,
                  dataReply?.status === 'delivered' ? dataReply : classifyReply('250 2.0.0 Delivered'),
                );
              }
              if (dataReply) return outcome(r, dataReply);
              return outcome(r, {
                status: 'deferred',
                response: 'no reply for recipient',
                enhanced: '4.4.0',
              });
            }),
          );
        });
      });
    },
    reset() {
      return new Promise<void>((resolve, reject) => conn.reset((err) => (err ? reject(err) : resolve())));
    },
    ended() {
      return Promise.race([endedPromise, new Promise<void>((r) => setTimeout(r, opts.timeoutMs).unref())]);
    },
    close() {
      closed = true;
      try {
        conn.quit();
      } catch {
        conn.close();
      }
    },
  };
  return session;
}
