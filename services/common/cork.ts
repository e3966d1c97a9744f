/**
 * Holding a socket's writes until the end of the event-loop turn, so the writes of one turn leave in one system
 * call (`writev`). Used for the SMTP replies of ingress, the message and its dot in delivery, and the NATS client's
 * flushes (docs/bench.md, "Hot path" and "After the lean path"): the socket is corked at the turn's first write
 * and uncorked at `setImmediate` — after the turn's I/O callbacks, before the loop waits again — so nothing waits
 * for more than the handlers already running. The bytes and their order are unchanged; `end()` uncorks by itself.
 */
import type { Writable } from 'node:stream';

const corked = new WeakSet<Writable>();

/** Corks `socket` until the end of this turn, unless this turn already did. */
export function corkForTurn(socket: Writable): void {
  if (socket.destroyed || corked.has(socket)) return;
  corked.add(socket);
  socket.cork();
  setImmediate(() => uncorkNow(socket));
}

/** Writes what corkForTurn held, now (e.g. before STARTTLS hands the socket to TLS). */
export function uncorkNow(socket: Writable): void {
  if (!corked.delete(socket)) return;
  if (!socket.destroyed && socket.writableCorked > 0) socket.uncork();
}
