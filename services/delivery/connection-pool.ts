/**
 * Reuse of SMTP sessions per destination key: idle sessions are kept for `idleMs`, retired after
 * `maxMessages`, and at most `maxPerDestination` sessions (busy + idle) exist per key — further jobs to that
 * destination wait for one to be released rather than opening more (remote servers limit concurrent sessions).
 */
import type { SmtpSession } from './smtp-session.ts';

export interface PoolOptions {
  idleMs: number;
  maxMessages: number;
  maxPerDestination: number;
  /** Connection count changes, for the postern_delivery_connections_active gauge. */
  onCount?: (delta: number) => void;
}

interface Idle {
  session: SmtpSession;
  timer: NodeJS.Timeout;
}

interface Slot {
  open: number;
  idle: Idle[];
  waiters: (() => void)[];
}

export class ConnectionPool {
  #opts: PoolOptions;
  #slots = new Map<string, Slot>();
  #closed = false;

  constructor(opts: PoolOptions) {
    this.#opts = opts;
  }

  #slot(key: string): Slot {
    let s = this.#slots.get(key);
    if (!s) {
      s = { open: 0, idle: [], waiters: [] };
      this.#slots.set(key, s);
    }
    return s;
  }

  /** An idle session for key (after a successful RSET) or a new one from `open`; `reused` tells which. */
  async acquire(
    key: string,
    open: () => Promise<SmtpSession>,
  ): Promise<{ session: SmtpSession; reused: boolean }> {
    const slot = this.#slot(key);
    // Bounded: each pass either returns, opens, or waits for a release (which always wakes one waiter).
    for (;;) {
      const idle = slot.idle.pop();
      if (idle) {
        clearTimeout(idle.timer);
        if (!idle.session.closed) {
          try {
            await idle.session.reset();
            return { session: idle.session, reused: true };
          } catch {
            // The peer closed the idle session meanwhile: drop it and go on.
          }
        }
        this.#discard(slot, idle.session);
        continue;
      }
      if (slot.open < this.#opts.maxPerDestination) {
        slot.open++;
        this.#opts.onCount?.(1);
        try {
          return { session: await open(), reused: false };
        } catch (err) {
          slot.open--;
          this.#opts.onCount?.(-1);
          this.#wake(slot);
          throw err;
        }
      }
      await new Promise<void>((resolve) => slot.waiters.push(resolve));
    }
  }

  /** Returns a session after a transaction; `reusable` false closes it (failed or unknown state). */
  release(key: string, session: SmtpSession, reusable: boolean): void {
    const slot = this.#slot(key);
    if (!reusable || this.#closed || session.closed || session.messages >= this.#opts.maxMessages) {
      this.#discard(slot, session);
      return;
    }
    const entry: Idle = {
      session,
      timer: setTimeout(() => {
        const i = slot.idle.indexOf(entry);
        if (i >= 0) slot.idle.splice(i, 1);
        this.#discard(slot, session);
      }, this.#opts.idleMs),
    };
    entry.timer.unref();
    slot.idle.push(entry);
    this.#wake(slot);
  }

  #discard(slot: Slot, session: SmtpSession): void {
    session.close();
    slot.open--;
    this.#opts.onCount?.(-1);
    this.#wake(slot);
  }

  #wake(slot: Slot): void {
    slot.waiters.shift()?.();
  }

  /** Closes every idle session; busy ones are closed when released. */
  close(): void {
    this.#closed = true;
    for (const slot of this.#slots.values()) {
      for (const idle of slot.idle.splice(0)) {
        clearTimeout(idle.timer);
        this.#discard(slot, idle.session);
      }
    }
  }
}
