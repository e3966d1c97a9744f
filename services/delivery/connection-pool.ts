/**
 * Reuse of SMTP sessions per destination key: idle sessions are kept for `idleMs`, retired after
 * `maxMessages`, and at most `maxPerDestination` sessions (busy + idle) exist per key in this process — further
 * jobs to that destination wait for one to be released rather than opening more.
 *
 * A site's cluster-wide limits come in per acquire (`AcquireOptions`): a new session needs a permit (a connection
 * lease, shaping/gate.ts) held until the session closes. Without one, a job waits here only behind busy sessions
 * of this process (bounded), else `SiteBusyError` sends it back to be re-scheduled.
 */
import type { SessionPermit, SiteWait } from './shaping/gate.ts';
import type { SmtpSession } from './smtp-session.ts';

export interface AcquireOptions {
  /** Cluster-wide permission for a new session, or when to come back. */
  permit?: () => Promise<SessionPermit | SiteWait>;
  /** Site name: an idle session of the same site under another key may be closed to free its permit. */
  site?: string;
  maxMessages?: number;
  idleMs?: number;
}

/** The site allows no further session now; the job should come back at `wait.untilMs`. */
export class SiteBusyError extends Error {
  readonly wait: SiteWait;
  constructor(wait: SiteWait) {
    super(wait.reason);
    this.wait = wait;
  }
}

interface SessionMeta {
  permit?: SessionPermit;
  site?: string;
  maxMessages: number;
  idleMs: number;
}

/** Jobs waiting in this process per busy session of a key, before they are sent back instead. */
const WAITERS_PER_SESSION = 4;

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
  #meta = new Map<SmtpSession, SessionMeta>();
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
    o: AcquireOptions = {},
  ): Promise<{ session: SmtpSession; reused: boolean }> {
    const slot = this.#slot(key);
    let freedIdle = false;
    // Bounded: each pass either returns, opens, or waits for a release (which always wakes one waiter).
    for (;;) {
      const idle = slot.idle.pop();
      if (idle) {
        clearTimeout(idle.timer);
        if (!idle.session.closed && !this.#meta.get(idle.session)?.permit?.lost) {
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
        let permit: SessionPermit | undefined;
        try {
          const p = o.permit ? await o.permit() : undefined;
          if (p && 'untilMs' in p) {
            // The site is at its limit for the whole cluster. An idle session of ours at the same site (another
            // recipient domain's key) holds a permit it does not use: close it and ask once more.
            if (!freedIdle && o.site && this.#closeIdleAt(o.site, key)) {
              freedIdle = true;
              slot.open--;
              continue;
            }
            const busy = slot.open - 1 - slot.idle.length;
            if (busy <= 0 || slot.waiters.length >= WAITERS_PER_SESSION * busy) throw new SiteBusyError(p);
            slot.open--;
            await new Promise<void>((resolve) => slot.waiters.push(resolve));
            continue;
          }
          permit = p;
          this.#opts.onCount?.(1);
          const session = await open().catch((err: unknown) => {
            this.#opts.onCount?.(-1);
            throw err;
          });
          this.#meta.set(session, {
            ...(permit ? { permit } : {}),
            ...(o.site ? { site: o.site } : {}),
            maxMessages: o.maxMessages ?? this.#opts.maxMessages,
            idleMs: o.idleMs ?? this.#opts.idleMs,
          });
          return { session, reused: false };
        } catch (err) {
          permit?.release();
          slot.open--;
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
    const meta = this.#meta.get(session);
    if (
      !reusable ||
      this.#closed ||
      session.closed ||
      meta?.permit?.lost ||
      session.messages >= (meta?.maxMessages ?? this.#opts.maxMessages)
    ) {
      this.#discard(slot, session);
      return;
    }
    const entry: Idle = {
      session,
      timer: setTimeout(() => {
        const i = slot.idle.indexOf(entry);
        if (i >= 0) slot.idle.splice(i, 1);
        this.#discard(slot, session);
      }, meta?.idleMs ?? this.#opts.idleMs),
    };
    entry.timer.unref();
    slot.idle.push(entry);
    this.#wake(slot);
  }

  #discard(slot: Slot, session: SmtpSession): void {
    session.close();
    const permit = this.#meta.get(session)?.permit;
    if (permit) void session.ended().then(() => permit.release());
    this.#meta.delete(session);
    slot.open--;
    this.#opts.onCount?.(-1);
    this.#wake(slot);
  }

  #wake(slot: Slot): void {
    slot.waiters.shift()?.();
  }

  /** Closes one idle session of `site` under a key other than `except`; true when one was closed. */
  #closeIdleAt(site: string, except: string): boolean {
    for (const [key, slot] of this.#slots) {
      if (key === except) continue;
      const i = slot.idle.findIndex((e) => this.#meta.get(e.session)?.site === site);
      if (i < 0) continue;
      const [entry] = slot.idle.splice(i, 1);
      clearTimeout(entry!.timer);
      this.#discard(slot, entry!.session);
      return true;
    }
    return false;
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
