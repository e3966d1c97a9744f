/**
 * Test helper: a real SMTP (or LMTP) server on loopback that plays a remote MX, smarthost or mailbox store.
 * Built on smtp-server; every reply can be scripted per connection / recipient / message so tests can make a
 * peer accept, defer (4xx), reject (5xx), drop the connection or answer slowly.
 *
 * Reply texts are sent verbatim after the code: the sink hides smtp-server's automatic enhanced status codes so a
 * scripted `{ code: 550, message: '5.1.1 No such user' }` reaches the client exactly as written.
 */
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  SMTPServer,
  type SMTPServerAuthentication,
  type SMTPServerDataStream,
  type SMTPServerSession,
} from 'smtp-server';

export interface SinkMessage {
  from: string;
  /** Recipients the message was accepted for (with LMTP, only those whose DATA reply was 2xx). */
  to: string[];
  raw: Buffer;
  receivedAt: number;
  remoteAddress: string;
  /** Whether the transaction ran over STARTTLS. */
  secure: boolean;
  /** The AUTH user of the session, when the client authenticated. */
  authUser?: string;
  /** Sequence number of the TCP connection (1-based) this message arrived on: proves connection reuse. */
  connection: number;
  /** MAIL FROM parameters as smtp-server parsed them (values xtext-decoded), e.g. `{ RET: 'HDRS' }`. */
  mailParams: Record<string, string | boolean>;
  /** RCPT TO parameters by recipient (recipients without any are absent). */
  rcptParams: Record<string, Record<string, string | boolean>>;
}

/** accept = 2xx; `{code, message}` = that reply (message sent verbatim); disconnect = drop the TCP connection. */
export type SinkReply = { code: number; message: string } | 'accept' | 'disconnect';

export interface SinkOptions {
  /** Default '127.0.0.1'; any 127.0.0.N works on Linux without setup. */
  host?: string;
  /** Default: a free port. */
  port?: number;
  /** LMTP server (per-recipient DATA replies). */
  lmtp?: boolean;
  /** Greeting-time reply: e.g. `{ code: 421, message: '4.3.2 Try later' }` refuses the session. Default accept. */
  onConnect?: (session: { remoteAddress: string }) => SinkReply;
  onMail?: (from: string, session: { remoteAddress: string }) => SinkReply;
  /** Default accept. */
  onRcpt?: (rcpt: string, session: { remoteAddress: string }) => SinkReply;
  /** Per-recipient map (keyed by recipient address) for LMTP; missing recipients are accepted. */
  onData?: (msg: SinkMessage) => SinkReply | Record<string, SinkReply>;
  /**
   * Offer STARTTLS: `true` with smtp-server's built-in self-signed certificate, or with the given PEM
   * certificate (chain) and key (test/helpers/test-ca.ts makes CA-signed and self-signed ones).
   */
  tls?: boolean | { cert: string; key: string };
  /** Offer AUTH PLAIN/LOGIN (also without TLS) and accept exactly these credentials. AUTH stays optional. */
  auth?: { user: string; pass: string };
  /** Slow peer: delay each scripted reply (greeting, MAIL, RCPT, DATA) by this much. */
  delayMs?: number;
  /** Advertise DSN (RFC 3461) in EHLO/LHLO; the parameters a client sends are recorded either way. */
  dsn?: boolean;
}

export interface SmtpSink {
  host: string;
  port: number;
  /** Messages accepted so far, in arrival order. */
  messages: SinkMessage[];
  /** DATA transfers the client's connection ended before the final dot: bytes received, and on which connection. */
  aborted: { bytes: number; connection: number }[];
  /** Number of TCP connections accepted so far. */
  readonly connections: number;
  /** The most sessions that were open at the same time (counted at connect and close). */
  readonly peakConcurrent: number;
  /** Resolves once at least n messages were accepted; rejects after timeoutMs (default 20 s). */
  waitForMessages(n: number, timeoutMs?: number): Promise<SinkMessage[]>;
  close(): Promise<void>;
}

interface ReplyError extends Error {
  responseCode?: number;
}

function replyError(reply: { code: number; message: string }): ReplyError {
  const err: ReplyError = new Error(reply.message);
  err.responseCode = reply.code;
  return err;
}

/** Free ports outside the ephemeral range (see services/local/ports.ts). */
export { freePort } from '../../services/local/ports.ts';

/** smtp-server keeps its live connections in a private Set; we reach in only to drop one on demand. */
interface ConnectionLike {
  id: string;
  _socket?: { destroy(): void };
}

export async function startSmtpSink(opts: SinkOptions = {}): Promise<SmtpSink> {
  const host = opts.host ?? '127.0.0.1';
  const messages: SinkMessage[] = [];
  const aborted: SmtpSink['aborted'] = [];
  const events = new EventEmitter();
  const connectionSeq = new Map<string, number>();
  let connections = 0;
  let open = 0;
  let peakConcurrent = 0;
  const delay = async () => {
    if (opts.delayMs) await sleep(opts.delayMs);
  };

  let server: SMTPServer;
  const disconnect = (session: SMTPServerSession) => {
    const live = (server as unknown as { connections: Set<ConnectionLike> }).connections;
    for (const c of live) if (c.id === session.id) c._socket?.destroy();
  };
  /** Applies a scripted reply to an smtp-server callback; 'disconnect' never calls back. */
  const answer = (reply: SinkReply, session: SMTPServerSession, cb: (err?: Error | null) => void) => {
    if (reply === 'disconnect') disconnect(session);
    else if (reply === 'accept') cb();
    else if (reply.code >= 400) cb(replyError(reply));
    else cb();
  };

  server = new SMTPServer({
    lmtp: opts.lmtp ?? false,
    secure: false,
    hideSTARTTLS: !opts.tls,
    ...(typeof opts.tls === 'object' ? { cert: opts.tls.cert, key: opts.tls.key } : {}),
    hideENHANCEDSTATUSCODES: true,
    hideDSN: !opts.dsn,
    authOptional: true,
    allowInsecureAuth: true,
    authMethods: ['PLAIN', 'LOGIN'],
    // Without `tls` the sink really has no STARTTLS (hiding it from EHLO alone would still let a client that
    // sends STARTTLS unasked upgrade with smtp-server's built-in certificate).
    disabledCommands: [...(opts.auth ? [] : ['AUTH']), ...(opts.tls ? [] : ['STARTTLS'])],
    logger: false,
    // No PTR lookups of 127.0.0.N clients: they would hit the machine's resolver and slow every session.
    disableReverseLookup: true,
    // A sink closing at test end must not wait for idle pooled client connections.
    closeTimeout: 100,
    onClose() {
      open--;
    },
    onConnect(session, cb) {
      connections++;
      open++;
      peakConcurrent = Math.max(peakConcurrent, open);
      connectionSeq.set(session.id, connections);
      void delay().then(() =>
        answer(opts.onConnect?.({ remoteAddress: session.remoteAddress }) ?? 'accept', session, cb),
      );
    },
    onAuth(auth: SMTPServerAuthentication, _session, cb) {
      if (opts.auth && auth.username === opts.auth.user && auth.password === opts.auth.pass) {
        cb(null, { user: auth.username });
      } else {
        cb(replyError({ code: 535, message: '5.7.8 Authentication credentials invalid' }));
      }
    },
    onMailFrom(address, session, cb) {
      void delay().then(() =>
        answer(
          opts.onMail?.(address.address, { remoteAddress: session.remoteAddress }) ?? 'accept',
          session,
          cb,
        ),
      );
    },
    onRcptTo(address, session, cb) {
      void delay().then(() =>
        answer(
          opts.onRcpt?.(address.address, { remoteAddress: session.remoteAddress }) ?? 'accept',
          session,
          cb,
        ),
      );
    },
    onData(stream: SMTPServerDataStream, session, cb) {
      const chunks: Buffer[] = [];
      let ended = false;
      stream.on('data', (c: Buffer) => chunks.push(c));
      // smtp-server destroys the DATA stream without ending it when the connection closes before the dot.
      stream.on('close', () => {
        if (!ended) {
          const bytes = chunks.reduce((n, c) => n + c.length, 0);
          aborted.push({ bytes, connection: connectionSeq.get(session.id) ?? 0 });
        }
      });
      stream.on('end', () => {
        ended = true;
        const rcpts = session.envelope.rcptTo.map((r) => r.address);
        const msg: SinkMessage = {
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: rcpts,
          raw: Buffer.concat(chunks),
          receivedAt: Date.now(),
          remoteAddress: session.remoteAddress,
          secure: Boolean(session.secure),
          connection: connectionSeq.get(session.id) ?? 0,
          ...(session.user ? { authUser: String(session.user) } : {}),
          mailParams: { ...(session.envelope.mailFrom ? session.envelope.mailFrom.args || {} : {}) },
          rcptParams: Object.fromEntries(
            session.envelope.rcptTo.filter((r) => r.args).map((r) => [r.address, { ...r.args }]),
          ),
        };
        void delay().then(() => {
          const decided = opts.onData?.(msg) ?? 'accept';
          const perRcpt: SinkReply[] = rcpts.map((r) =>
            typeof decided === 'string' || 'code' in decided
              ? (decided as SinkReply)
              : (decided[r] ?? 'accept'),
          );
          if (perRcpt.includes('disconnect')) return disconnect(session);
          const accepted = rcpts.filter((_, i) => {
            const r = perRcpt[i]!;
            return r === 'accept' || (typeof r === 'object' && r.code < 400);
          });
          if (accepted.length > 0) {
            messages.push({ ...msg, to: accepted });
            events.emit('message');
          }
          if (opts.lmtp) {
            // smtp-server sends one DATA reply per array element, in RCPT order (RFC 2033 §4.2).
            const replies = perRcpt.map((r) => {
              if (typeof r === 'object' && r.code >= 400) return replyError(r);
              return typeof r === 'object' ? r.message : '2.0.0 OK: delivered';
            });
            cb(null, replies);
          } else {
            const r = perRcpt[0] ?? 'accept';
            if (typeof r === 'object' && r.code >= 400) cb(replyError(r));
            else cb(null, typeof r === 'object' ? r.message : '2.0.0 OK: queued');
          }
        });
      });
    },
  });
  server.on('error', () => {
    // Client resets and TLS failures are expected in tests; they must not crash the test process.
  });
  // Without a port, bind 0 and read the kernel's choice (no pick-then-bind race with outgoing connections).
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    const net = server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve((net.address() as { port: number }).port);
    });
  });

  return {
    host,
    port,
    messages,
    aborted,
    get connections() {
      return connections;
    },
    get peakConcurrent() {
      return peakConcurrent;
    },
    async waitForMessages(n, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (messages.length < n) {
        const left = deadline - Date.now();
        if (left <= 0)
          throw new Error(
            `smtp sink ${host}:${port}: ${messages.length}/${n} messages after ${timeoutMs} ms`,
          );
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(t);
            events.off('message', done);
            resolve();
          };
          const t = setTimeout(done, Math.min(left, 500));
          events.on('message', done);
        });
      }
      return messages.slice(0, Math.max(n, messages.length));
    },
    close() {
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
