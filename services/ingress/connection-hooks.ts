/**
 * Per-connection adjustments to smtp-server, installed when the server registers a new connection.
 * Why hooks: smtp-server derives the enhanced status code of an application error from the reply code alone
 * (550 → 5.1.1, 554 → 5.6.0, …), has a fixed VRFY text, no EXPN, and silently strips source routes
 * (RFC 5321 Appendix C). We need exact codes (replies.ts) and to refuse routes, without patching the
 * library's prototype for everyone.
 */
import type { Writable } from 'node:stream';
import type { SMTPServer } from 'smtp-server';
import { corkForTurn, uncorkNow } from '../common/cork.ts';
import { hasSourceRoute } from './address-syntax.ts';
import { checkDsnParameters, dsnSyntaxReply } from './dsn-params.ts';
import { ENHANCED_PREFIX, REPLIES, replyText, type SmtpReply } from './replies.ts';

type Callback = () => void;
type Handler = (command: Buffer, callback: Callback) => void;

/** The parts of smtp-server's SMTPConnection we hook (public methods of the class, and its socket). */
interface HookableConnection {
  send(code: number, data?: string | string[] | null, context?: string | false): void;
  /** STARTTLS: wraps `_socket` in a TLSSocket. */
  upgrade(callback: () => void, secureCallback: () => void): void;
  /** The client socket (the TLSSocket after STARTTLS); private in smtp-server, its only write site is send(). */
  _socket?: Writable;
  handler_MAIL: Handler;
  handler_RCPT: Handler;
  handler_VRFY: Handler;
  handler_EXPN?: Handler;
}

export interface ConnectionHookEvents {
  /** A connection opened (before the greeting) or closed: drives the sessions gauge. */
  opened(): void;
  closed(): void;
  /** A command refused by a hook (metric reason label). */
  refused(reason: string): void;
  /** More hooks for a new connection, after ours (session-limits.ts); returns its cleanup for the close. */
  perConnection?(conn: unknown): () => void;
}

/**
 * RFC 5321 §4.2: reply text is a textstring (TAB and printable ASCII). smtp-server replaces control characters
 * but echoes 8-bit bytes of a client's parameter name back (`501 … duplicate <bytes> parameter`); those become
 * `?` here (found by the fuzzer, docs/reliability.md).
 */
function asciiText<T extends string | string[] | null | undefined>(data: T): T {
  const clean = (s: string) => s.replace(/[^\t\x20-\x7e]/g, '?');
  if (typeof data === 'string') return clean(data) as T;
  if (Array.isArray(data)) return data.map((l) => (typeof l === 'string' ? clean(l) : l)) as T;
  return data;
}

function sendReply(conn: HookableConnection, r: SmtpReply): void {
  conn.send(r.code, replyText(r));
}

/**
 * Replies leave in one write per turn of the event loop. smtp-server writes every reply on its own, so a pipelined
 * MAIL/RCPT/DATA batch (RFC 2920) cost three write syscalls where one does: the profile under load had a quarter of
 * ingress CPU in those writes (docs/bench.md, "Hot path"). The first reply of a turn corks the socket, and
 * setImmediate (after the poll phase that read the commands, before the loop waits again) uncorks it, so no reply
 * waits for anything but the handlers already running. STARTTLS uncorks before the TLS socket takes the raw socket
 * over (its 220 must go out in clear first); close() ends the socket, which uncorks too.
 */
function batchWrites(conn: HookableConnection): void {
  const send = conn.send.bind(conn);
  conn.send = (code, data, context) => {
    if (conn._socket) corkForTurn(conn._socket);
    send(code, data, context);
  };
  const upgrade = conn.upgrade.bind(conn);
  conn.upgrade = (callback, secureCallback) => {
    if (conn._socket) uncorkNow(conn._socket);
    upgrade(callback, secureCallback);
  };
}

function hook(conn: HookableConnection, events: ConnectionHookEvents): void {
  batchWrites(conn);
  const send = conn.send.bind(conn);
  // A text that already starts with its enhanced code is sent as is (context false = no derived code).
  // smtp-server skips the enhanced code for any reply whose context is HELO, EHLO or LHLO (RFC 2034 §3 exempts
  // replies to HELO/EHLO); we are no LMTP server, so LHLO is an unknown command and its 500 needs its 5.5.2
  // (found by the fuzzer, docs/reliability.md).
  conn.send = (code, raw, context) => {
    const data = asciiText(raw);
    if (typeof data === 'string' && code >= 200 && ENHANCED_PREFIX.test(data)) return send(code, data, false);
    send(code, data, context === 'LHLO' ? undefined : context);
  };

  conn.handler_VRFY = (command, callback) => {
    if (!command.toString().trim().split(/\s+/)[1]) conn.send(501, '5.5.4 Syntax: VRFY address');
    else sendReply(conn, REPLIES.vrfy);
    callback();
  };
  conn.handler_EXPN = (_command, callback) => {
    sendReply(conn, REPLIES.expn);
    callback();
  };

  const routed = (original: Handler, refusal: SmtpReply): Handler =>
    function (this: unknown, command, callback) {
      if (!hasSourceRoute(command.toString())) return original.call(this, command, callback);
      events.refused('source-route');
      conn.send(refusal.code, `${refusal.enhanced} Source routes are not accepted`);
      callback();
    };
  // RFC 3461 §4 syntax on the raw line (dsn-params.ts says why smtp-server's decoded values are not enough).
  const dsnChecked = (original: Handler, verb: 'MAIL' | 'RCPT'): Handler =>
    function (this: unknown, command, callback) {
      const bad = checkDsnParameters(verb, command.toString());
      if (!bad) return original.call(this, command, callback);
      events.refused('dsn-syntax');
      sendReply(conn, dsnSyntaxReply(bad));
      callback();
    };
  conn.handler_MAIL = routed(dsnChecked(conn.handler_MAIL, 'MAIL'), REPLIES.badSender);
  conn.handler_RCPT = routed(dsnChecked(conn.handler_RCPT, 'RCPT'), REPLIES.badRecipient);
}

/** Replaces the server's connection set with one that hooks each connection as it is registered. */
export function installConnectionHooks(server: SMTPServer, events: ConnectionHookEvents): void {
  const cleanups = new WeakMap<object, () => void>();
  class HookedSet extends Set<unknown> {
    override add(conn: unknown): this {
      if (!this.has(conn)) {
        hook(conn as HookableConnection, events);
        const cleanup = events.perConnection?.(conn);
        if (cleanup) cleanups.set(conn as object, cleanup);
        events.opened();
      }
      return super.add(conn);
    }
    override delete(conn: unknown): boolean {
      const removed = super.delete(conn);
      if (removed) {
        cleanups.get(conn as object)?.();
        events.closed();
      }
      return removed;
    }
  }
  (server as unknown as { connections: Set<unknown> }).connections = new HookedSet(server.connections);
}
