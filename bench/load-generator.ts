/**
 * Bench load generator: N SMTP sessions over reused connections sending M messages in total, each
 * stamped with `X-Bench-Id` and `X-Bench-Sent` (epoch ms) so the sink can compute end-to-end latency. It
 * speaks SMTP on a raw socket rather than through nodemailer because it must time exactly the span the
 * issue asks for — the end-of-data dot to the server's reply (RFC 5321 §4.1.1.4) — and cost as little CPU
 * as possible on the box it shares with the systems under test. Commands are pipelined (RFC 2920) when the
 * server offers PIPELINING.
 *
 * Usage: node bench/load-generator.ts '<json GeneratorOptions>' → one JSON GeneratorResult line on stdout.
 */
import { connect, type Socket } from 'node:net';

/** What to send. */
export interface GeneratorOptions {
  host: string;
  port: number;
  sessions: number;
  messages: number;
  /** Approximate body size in bytes (headers not included, like smtp-source -l). */
  size: number;
  recipients: number;
  /** Recipient domain (e.g. healthy.bench); local parts are unique per message. */
  toDomain: string;
  from: string;
  /** Run tag, part of every message id so runs never collide. */
  tag: string;
  /** Optional open-loop pacing: messages per second across all sessions (0 = as fast as accepted). */
  rate?: number;
}

/** What happened. Times are epoch ms. */
export interface GeneratorResult {
  accepted: number;
  tempfailed: number;
  rejected: number;
  errors: string[];
  firstSentAt: number;
  lastAcceptedAt: number;
  /** Accept latency, end-of-data → 250, one per accepted message (ms). */
  acceptMs: number[];
  /** Accept times (epoch ms), for the throughput-over-time chart. */
  acceptedAt: number[];
}

const now = () => performance.timeOrigin + performance.now();

/** Reads SMTP replies (multi-line aware) off a socket in order. */
class ReplyReader {
  private buf = '';
  private readonly waiting: Array<(r: { code: number; text: string }) => void> = [];
  private readonly ready: Array<{ code: number; text: string }> = [];
  private lines: string[] = [];
  private failure: Error | undefined;
  private readonly failWaiters: Array<(e: Error) => void> = [];

  constructor(socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => this.feed(d));
    const fail = (e: Error) => {
      this.failure = e;
      for (const f of this.failWaiters.splice(0)) f(e);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed')));
  }

  private feed(data: string): void {
    this.buf += data;
    let nl = this.buf.indexOf('\r\n');
    while (nl >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 2);
      this.lines.push(line);
      if (line[3] !== '-') {
        const reply = { code: Number(line.slice(0, 3)), text: this.lines.join('\n') };
        this.lines = [];
        const w = this.waiting.shift();
        if (w) {
          this.failWaiters.shift();
          w(reply);
        } else this.ready.push(reply);
      }
      nl = this.buf.indexOf('\r\n');
    }
  }

  next(timeoutMs = 30_000): Promise<{ code: number; text: string }> {
    const r = this.ready.shift();
    if (r) return Promise.resolve(r);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('reply timeout')), timeoutMs);
      this.waiting.push((x) => {
        clearTimeout(t);
        resolve(x);
      });
      this.failWaiters.push((e) => {
        clearTimeout(t);
        reject(e);
      });
    });
  }
}

function body(size: number): string {
  const line = `${'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(2)}ABCD\r\n`; // 78 bytes
  return line.repeat(Math.max(1, Math.ceil(size / line.length)));
}

/** Runs the load; resolves when every message was tried. */
export async function generate(o: GeneratorOptions): Promise<GeneratorResult> {
  const result: GeneratorResult = {
    accepted: 0,
    tempfailed: 0,
    rejected: 0,
    errors: [],
    firstSentAt: 0,
    lastAcceptedAt: 0,
    acceptMs: [],
    acceptedAt: [],
  };
  const payload = body(o.size);
  let next = 0;
  let startAt = 0;
  const session = async (s: number) => {
    const socket = connect(o.port, o.host);
    socket.setNoDelay(true);
    const replies = new ReplyReader(socket);
    const write = (text: string) => socket.write(text);
    const expect = async (ok: (c: number) => boolean, what: string) => {
      const r = await replies.next();
      if (!ok(r.code)) throw Object.assign(new Error(`${what}: ${r.text}`), { code: r.code });
      return r;
    };
    try {
      await expect((c) => c === 220, 'greeting');
      write(`EHLO gen${s}.bench\r\n`);
      const ehlo = await expect((c) => c === 250, 'EHLO');
      const pipelining = /PIPELINING/i.test(ehlo.text);
      // Bounded: each iteration consumes one of `messages`.
      for (let i = next++; i < o.messages; i = next++) {
        if (o.rate) {
          const due = startAt + (i * 1000) / o.rate;
          const wait = due - now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        }
        const id = `${o.tag}-${i}`;
        const sent = now();
        if (!result.firstSentAt) result.firstSentAt = sent;
        const rcpts = Array.from({ length: o.recipients }, (_, r) => `r${i}x${r}@${o.toDomain}`);
        const head =
          `From: <${o.from}>\r\nTo: <${rcpts[0]}>\r\nSubject: bench ${id}\r\n` +
          `Message-ID: <${id}@gen.bench>\r\nDate: ${new Date(sent).toUTCString()}\r\n` +
          `X-Bench-Id: ${id}\r\nX-Bench-Sent: ${sent.toFixed(3)}\r\n\r\n`;
        const cmds = [`MAIL FROM:<${o.from}>\r\n`, ...rcpts.map((r) => `RCPT TO:<${r}>\r\n`), 'DATA\r\n'];
        let okRcpts = 0;
        let mailOk = true;
        const handleEnvelope = (code: number, index: number) => {
          if (index === 0) mailOk = code === 250;
          else if (index <= rcpts.length && code >= 200 && code < 300) okRcpts += 1;
        };
        let dataCode = 0;
        if (pipelining) {
          write(cmds.join(''));
          for (let k = 0; k < cmds.length - 1; k++) handleEnvelope((await replies.next()).code, k);
          dataCode = (await replies.next()).code;
        } else {
          for (let k = 0; k < cmds.length - 1; k++) {
            write(cmds[k]!);
            handleEnvelope((await replies.next()).code, k);
            if (k === 0 && !mailOk) break;
          }
          if (mailOk && okRcpts > 0) {
            write('DATA\r\n');
            dataCode = (await replies.next()).code;
          }
        }
        if (dataCode !== 354) {
          // Envelope refused: count it by the first failing class and reset the transaction.
          const temp = !mailOk || okRcpts === 0;
          if (temp) result.tempfailed += 1;
          else result.rejected += 1;
          write('RSET\r\n');
          await replies.next();
          continue;
        }
        write(head);
        write(payload);
        write('.\r\n');
        const t0 = now();
        const r = await replies.next();
        const t1 = now();
        if (r.code === 250) {
          result.accepted += 1;
          result.acceptMs.push(t1 - t0);
          result.acceptedAt.push(t1);
          result.lastAcceptedAt = t1;
        } else if (r.code >= 400 && r.code < 500) result.tempfailed += 1;
        else result.rejected += 1;
      }
      write('QUIT\r\n');
      await replies.next(5000).catch(() => undefined);
    } catch (err) {
      if (result.errors.length < 20) result.errors.push(`session ${s}: ${(err as Error).message}`);
    } finally {
      socket.destroy();
    }
  };
  startAt = now();
  await Promise.all(Array.from({ length: o.sessions }, (_, s) => session(s)));
  return result;
}

if (import.meta.main) {
  const opts = JSON.parse(process.argv[2] ?? '{}') as GeneratorOptions;
  const res = await generate(opts);
  process.stdout.write(`${JSON.stringify(res)}\n`);
}
