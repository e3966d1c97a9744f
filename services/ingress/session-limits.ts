/**
 * Abuse limits inside one SMTP session, modelled on Postfix smtpd (docs/ingress.md "Abuse limits"):
 * - command deadline (smtpd_per_record_deadline): a whole command line must arrive within `commandTimeoutMs` of
 *   our last reply; bytes dribbled in do not extend it, unlike the idle timeout, which every byte resets;
 * - session deadline: the whole session, DATA included, ends after `sessionTimeoutMs`;
 * - hard error limit (smtpd_hard_error_limit): after this many 4xx/5xx replies without a delivered message, 421;
 * - junk command limit (smtpd_junk_command_limit): NOOP/VRFY/EXPN/RSET/HELP/ETRN without AUTH;
 * - commands before AUTH on listeners that require it.
 * Plus the connection table: open connections per IP and in total, shared by every listener of the process.
 *
 * The per-session parts hook smtp-server's SMTPConnection (installed through connection-hooks.ts): `_onCommand`
 * sees every complete command line, `send` every reply. smtp-server's own fixed caps (10 unrecognized commands,
 * its idle timeout text) are rewritten to our replies so every 421 carries its enhanced code.
 */
import { REPLIES, replyText, type SmtpReply } from './replies.ts';
import type { AbuseLimits } from './settings.ts';

/** A dual-stack listener reports IPv4 clients as `::ffff:a.b.c.d`: one client, one key. */
const normalise = (address: string) => address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');

/** Open connections per client IP and in total, across the listeners of one ingress process. */
export class ConnectionTable {
  #total = 0;
  readonly #perIp = new Map<string, number>();
  readonly #limits: Pick<AbuseLimits, 'maxConnections' | 'maxConnectionsPerIp'>;

  constructor(limits: Pick<AbuseLimits, 'maxConnections' | 'maxConnectionsPerIp'>) {
    this.#limits = limits;
  }

  /** Counts the connection when a limit allows it; otherwise says which reply refuses it. */
  admit(address: string): SmtpReply | undefined {
    const ip = normalise(address);
    const fromIp = this.#perIp.get(ip) ?? 0;
    if (this.#total >= this.#limits.maxConnections) return REPLIES.tooManyConnections;
    if (fromIp >= this.#limits.maxConnectionsPerIp) return REPLIES.tooManyConnectionsFromIp;
    this.#total++;
    this.#perIp.set(ip, fromIp + 1);
    return undefined;
  }

  release(address: string): void {
    const ip = normalise(address);
    const fromIp = this.#perIp.get(ip) ?? 0;
    if (fromIp <= 1) this.#perIp.delete(ip);
    else this.#perIp.set(ip, fromIp - 1);
    this.#total = Math.max(0, this.#total - 1);
  }

  get total(): number {
    return this.#total;
  }
}

/** The parts of smtp-server's SMTPConnection the session limits use. */
export interface GuardedConnection {
  send(code: number, data?: string | string[] | null, context?: string | false): void;
  _onCommand(command: Buffer, callback?: () => void): void;
  session: { user?: unknown };
  _handlerPending?: boolean;
  _nextHandler?: unknown;
  _upgrading?: boolean;
  _parser?: { _dataMode?: boolean } | false;
  _closing?: boolean;
  _closed?: boolean;
}

/** Commands that move no mail (Postfix's junk commands, plus HELP and EXPN). */
const JUNK = new Set(['NOOP', 'VRFY', 'EXPN', 'RSET', 'HELP', 'ETRN']);

/** smtp-server's own 421 texts, the reply each becomes and its metric reason. */
const LIBRARY_421: [RegExp, SmtpReply, string][] = [
  [/^Timeout - closing connection/, REPLIES.idleTimeout, 'idle-timeout'],
  [/too many unrecognized commands/, REPLIES.tooManyErrors, 'hard-error-limit'],
  [
    /too many unauthenticated commands/,
    REPLIES.tooManyUnauthenticatedCommands,
    'unauthenticated-command-limit',
  ],
];

export interface SessionGuardOptions {
  limits: AbuseLimits;
  /** The listener requires AUTH before MAIL (submission, smtps). */
  requiresAuth: boolean;
  /** A limit ended the session (metric reason). */
  tripped(reason: string): void;
}

/** Hooks one connection; returns the cleanup to run when it closes. */
export function guardSession(conn: GuardedConnection, opts: SessionGuardOptions): () => void {
  const { limits } = opts;
  let errors = 0;
  let junk = 0;
  let unauthenticated = 0;
  let ended = false;
  let commandTimer: NodeJS.Timeout | undefined;
  let sessionTimer: NodeJS.Timeout | undefined;

  const send = conn.send.bind(conn);
  const end = (reply: SmtpReply, reason: string) => {
    if (ended) return;
    ended = true;
    opts.tripped(reason);
    send(reply.code, replyText(reply), false);
  };
  const busy = () =>
    conn._handlerPending === true || (conn._parser !== false && conn._parser?._dataMode === true);
  const closed = () => ended || conn._closing === true || conn._closed === true;

  const armCommandTimer = () => {
    clearTimeout(commandTimer);
    commandTimer = setTimeout(function fire() {
      if (closed()) return;
      // The client is not the one who owes a line: a handler is working, or DATA is streaming (which the session
      // deadline bounds).
      if (busy()) {
        commandTimer = setTimeout(fire, limits.commandTimeoutMs).unref();
        return;
      }
      end(REPLIES.commandTimeout, 'command-timeout');
    }, limits.commandTimeoutMs).unref();
  };
  sessionTimer = setTimeout(function fire() {
    if (closed()) return;
    // Our own handler (e.g. waiting for a PubAck, bounded by the publish timeout) gets to answer first.
    if (conn._handlerPending === true) {
      sessionTimer = setTimeout(fire, 1000).unref();
      return;
    }
    end(REPLIES.sessionTimeout, 'session-timeout');
  }, limits.sessionTimeoutMs).unref();

  conn.send = (code, data, context) => {
    if (ended) return;
    if (code === 421 && typeof data === 'string') {
      const mapped = LIBRARY_421.find(([re]) => re.test(data));
      if (mapped) {
        ended = true;
        opts.tripped(mapped[2]);
        return send(421, replyText(mapped[1]), false);
      }
    }
    send(code, data, context);
    if (code === 421) {
      ended = true;
      return;
    }
    // Postfix resets both counts once mail is delivered: a busy MX session is not an abusive one.
    if (code === 250 && typeof data === 'string' && data.startsWith(replyText(REPLIES.queued('')).trim())) {
      errors = 0;
      junk = 0;
    }
    if (code >= 400 && ++errors >= limits.hardErrorLimit)
      return end(REPLIES.tooManyErrors, 'hard-error-limit');
    armCommandTimer();
  };

  const onCommand = conn._onCommand.bind(conn);
  conn._onCommand = (command, callback) => {
    clearTimeout(commandTimer);
    // Continuation lines (AUTH responses) and plaintext buffered before a TLS handshake are not commands.
    if (!conn._nextHandler && !conn._upgrading && !conn.session.user && !ended) {
      const name = command.toString('latin1').split(' ')[0]?.toUpperCase() ?? '';
      if (JUNK.has(name) && ++junk > limits.junkCommandLimit) {
        return end(REPLIES.tooManyJunkCommands, 'junk-command-limit');
      }
      if (opts.requiresAuth && name !== 'AUTH' && ++unauthenticated > limits.unauthenticatedCommandLimit) {
        return end(REPLIES.tooManyUnauthenticatedCommands, 'unauthenticated-command-limit');
      }
    }
    onCommand(command, callback);
  };

  return () => {
    ended = true;
    clearTimeout(commandTimer);
    clearTimeout(sessionTimer);
  };
}
