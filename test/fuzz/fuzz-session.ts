/**
 * Plays one FuzzCase against the target over real TCP (and TLS: STARTTLS or implicit) and judges what came
 * back: every byte the server wrote must be a valid SMTP reply (reply-oracle.ts), and the connection must end
 * — after the case, the session is closed with `CRLF . CRLF QUIT`, so a server still in DATA, an AUTH exchange
 * or command mode gets to 221 (or has already said 421) and closes. A session the server leaves open past
 * `closeDeadlineMs` is a violation (a hung session is a resource leak a hostile client can multiply).
 */
import { connect, type Socket } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import type { FuzzTarget } from './fuzz-target.ts';
import { checkReplies } from './reply-oracle.ts';
import { type FuzzCase, stepBytes, TARGET } from './smtp-grammar.ts';

export interface SessionOutcome {
  violations: string[];
  /** Codes of every reply, in order (for the acceptance oracle and statistics). */
  codes: number[];
  /** Texts of the 250 replies to DATA (`… queued as <id>`). */
  queuedIds: string[];
  /** The session authenticated (235). */
  authenticated: boolean;
  /** The PROXY listener closed the connection before any reply (a header it refused). */
  proxyRefused: boolean;
}

/** Collects what the server writes on the plaintext side of one socket and counts complete replies. */
class Collector {
  chunks: Buffer[] = [];
  finalReplies = 0;
  #partial = '';
  #waiters: (() => void)[] = [];
  closed = false;

  feed(d: Buffer): void {
    this.chunks.push(d);
    const lines = (this.#partial + d.toString('latin1')).split('\r\n');
    this.#partial = lines.pop() ?? '';
    for (const l of lines) if (l[3] !== '-') this.finalReplies++;
    this.#wake();
  }

  close(): void {
    this.closed = true;
    this.#wake();
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Resolves when `n` final reply lines arrived, the socket closed, or `ms` passed (bounded). */
  async waitReplies(n: number, ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (this.finalReplies < n && !this.closed && Date.now() < until) {
      await new Promise<void>((res) => {
        const t = setTimeout(res, Math.max(1, until - Date.now()));
        this.#waiters.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' }, () => resolve(s));
    s.once('error', reject);
  });
}

function upgrade(socket: Socket | undefined, port: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    // The fuzzer tests the server, not certificate checks: the test CA is not in the trust store.
    const t = tlsConnect(
      socket ? { socket, rejectUnauthorized: false } : { port, host: '127.0.0.1', rejectUnauthorized: false },
      () => resolve(t),
    );
    t.once('error', reject);
  });
}

const write = (s: Socket, b: Buffer | string) => {
  if (!s.destroyed && s.writable) s.write(b);
};

export async function runSession(
  target: FuzzTarget,
  c: FuzzCase,
  opts: { replyWaitMs?: number; closeDeadlineMs?: number } = {},
): Promise<SessionOutcome> {
  const replyWaitMs = opts.replyWaitMs ?? 1500;
  const closeDeadlineMs = opts.closeDeadlineMs ?? 20_000;
  const violations: string[] = [];
  const port =
    c.transport === 'smtps'
      ? target.ports.smtps
      : c.transport === 'proxy'
        ? target.ports.proxy
        : target.ports[c.listener];
  // Plaintext before TLS and inside TLS are judged as one transcript: it is one SMTP session.
  const col = new Collector();
  let sock: Socket;
  let tlsBroken = false;
  /** Bytes after this offset are the server's TLS records (alerts) answering our garbage: not SMTP. */
  let smtpBytes = Number.POSITIVE_INFINITY;
  const wire = (s: Socket) => {
    s.on('data', (d: Buffer) => col.feed(d));
    s.on('close', () => col.close());
    s.on('error', () => undefined); // resets after a 421 are expected; the oracle judges the transcript
  };
  if (c.transport === 'smtps' && c.tlsGarbage === undefined) {
    sock = await upgrade(undefined, port);
    wire(sock);
  } else {
    sock = await open(port);
    wire(sock);
    if (c.transport === 'proxy' && c.proxyHeader !== undefined)
      write(sock, Buffer.from(c.proxyHeader, 'latin1'));
    if (c.transport === 'smtps') {
      tlsBroken = true;
      smtpBytes = 0;
      write(sock, Buffer.from(c.tlsGarbage ?? '', 'latin1'));
    }
  }
  if (c.transport === 'starttls') {
    await col.waitReplies(1, replyWaitMs * 2);
    write(sock, 'EHLO fuzz.client\r\n');
    await col.waitReplies(2, replyWaitMs * 2);
    write(sock, 'STARTTLS\r\n');
    await col.waitReplies(3, replyWaitMs * 2);
    if (/\r\n220 [^\r\n]*\r\n$/.test(col.text())) {
      if (c.tlsGarbage !== undefined) {
        tlsBroken = true;
        smtpBytes = col.chunks.reduce((n, b) => n + b.length, 0);
        write(sock, Buffer.from(c.tlsGarbage, 'latin1'));
      } else {
        sock.removeAllListeners('data');
        sock.removeAllListeners('close');
        try {
          sock = await upgrade(sock, port);
          wire(sock);
        } catch (err) {
          violations.push(`TLS handshake after STARTTLS failed: ${(err as Error).message}`);
          tlsBroken = true;
        }
      }
    }
  }
  if (!tlsBroken) {
    if (!c.early && c.transport !== 'starttls') await col.waitReplies(1, replyWaitMs * 2);
    if (c.pipelined) write(sock, Buffer.concat(c.steps.map(stepBytes)));
    else {
      let expected = Math.max(col.finalReplies, c.transport === 'starttls' ? 0 : 1); // the greeting
      for (const s of c.steps) {
        if (col.closed) break;
        write(sock, stepBytes(s));
        if (s.awaitReply) await col.waitReplies(++expected, replyWaitMs);
        expected = Math.max(expected, col.finalReplies);
      }
    }
    write(sock, '\r\n.\r\nQUIT\r\n');
  }
  await col.waitReplies(Number.MAX_SAFE_INTEGER, closeDeadlineMs);
  if (!col.closed) {
    violations.push(`connection still open ${closeDeadlineMs} ms after QUIT`);
    sock.destroy();
  }
  const all = Buffer.concat(col.chunks);
  const transcript = all.subarray(0, Math.min(all.length, smtpBytes));
  const check = checkReplies(transcript, { hostname: TARGET.hostname, complete: col.closed });
  violations.push(...check.violations);
  const codes = check.replies.map((r) => r.code);
  const last = codes.at(-1);
  // A session ends with 221 (QUIT) or 421 (we close); after STARTTLS's 220 or without any reply the client broke
  // the TLS or PROXY layer and the server may just drop it.
  if (!tlsBroken && last !== undefined && last !== 221 && last !== 421 && last !== 220)
    violations.push(`session ended after ${last}, not 221/421`);
  return {
    violations,
    codes,
    queuedIds: check.replies
      .filter((r) => r.code === 250)
      .map((r) => /queued as (\S+)/.exec(r.lines.join(' '))?.[1])
      .filter((id): id is string => id !== undefined),
    authenticated: codes.includes(235),
    proxyRefused: c.transport === 'proxy' && codes.length === 0,
  };
}
