/**
 * Two workarounds in nats.js (@nats-io/nats-core 3.4.0, the latest release), applied once to the one copy of the
 * library every service loads (connectNats calls patchNatsClient). Both are per-message costs the CPU profile of
 * ingress and delivery shows (docs/bench.md "After the lean path"); neither changes what is sent or when a
 * request settles.
 *
 * 1. `RequestOne.resolver()` ends every *successful* request with `cancel()`, which rejects the already resolved
 *    promise with a new `RequestError("cancelled")` — an Error and a stack capture per JetStream publish, ack-ack
 *    and KV get (4 % of ingress and delivery at 2 KB). A success now ends the request the same way minus that
 *    Error: timer cancelled, promise resolved, request removed from the mux. Errors and timeouts still take the
 *    library's own path.
 * 2. The protocol handler writes its outbound buffer at the end of each microtask checkpoint, so the publishes
 *    of SMTP sessions served in one event-loop turn (each socket's data is its own callback) leave in one write
 *    system call each. The NATS socket is now corked for the turn (cork.ts): those writes leave in one `writev`.
 * Each is applied only when the library's method still reads as described (its source text), so a nats.js
 * release that changes them runs unpatched rather than broken; test/integration/nats-client-patches.test.ts
 * fails then, and says so.
 */
import type { Socket } from 'node:net';
import { ProtocolHandler, RequestOne } from '@nats-io/nats-core/internal';
import { corkForTurn } from './cork.ts';

const PATCHED = Symbol.for('postern.nats-client-patches');

interface RequestInternals {
  timer?: { cancel(): void };
  deferred: { resolve(msg: unknown): void };
  mux: { cancel(r: unknown): void };
}
interface HandlerInternals {
  transport?: { socket?: Socket };
}

export function patchNatsClient(): void {
  const registry = globalThis as { [PATCHED]?: boolean };
  if (registry[PATCHED]) return;
  registry[PATCHED] = true;

  const request = RequestOne.prototype as unknown as {
    resolver(this: RequestInternals, err: Error | null, msg: unknown): void;
  };
  const resolver = request.resolver;
  const resolverText = String(resolver);
  const cancelText = String((RequestOne.prototype as unknown as { cancel: unknown }).cancel);
  if (
    resolverText.includes('this.deferred.resolve(msg)') &&
    resolverText.includes('this.cancel()') &&
    cancelText.includes('this.mux.cancel(this)')
  )
    request.resolver = function (this: RequestInternals, err: Error | null, msg: unknown) {
      if (err) return resolver.call(this, err, msg);
      this.timer?.cancel();
      this.deferred.resolve(msg);
      this.mux.cancel(this);
    };

  const handler = ProtocolHandler.prototype as unknown as { flushPending(this: HandlerInternals): void };
  const flushPending = handler.flushPending;
  if (String(flushPending).includes('this.transport.send('))
    handler.flushPending = function (this: HandlerInternals) {
      const socket = this.transport?.socket;
      if (socket) corkForTurn(socket);
      flushPending.call(this);
    };
}
