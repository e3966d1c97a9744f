/**
 * Test helper: a bounded SMTP load client on nodemailer's SMTPConnection with connection reuse. Records which
 * messages were answered 250 after DATA, so durability tests can check that every one of them arrives.
 */
import SMTPConnection from 'nodemailer/lib/smtp-connection';

export interface LoadResult {
  /** Ids whose DATA got a 2xx reply. */
  accepted: Set<string>;
  /** Ids that never got a 2xx within their tries (4xx/5xx/connection failures). */
  notAccepted: Set<string>;
  tempFailures: number;
}

function open(port: number, host: string): Promise<SMTPConnection> {
  return new Promise((resolve, reject) => {
    const conn = new SMTPConnection({
      port,
      host,
      ignoreTLS: true,
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 30_000,
    });
    conn.once('error', reject);
    conn.connect(() => {
      conn.off('error', reject);
      conn.on('error', () => {});
      resolve(conn);
    });
  });
}

function sendOne(conn: SMTPConnection, from: string, to: string, raw: string): Promise<void> {
  return new Promise((resolve, reject) =>
    conn.send({ from, to: [to] }, raw, (err) => (err ? reject(err) : resolve())),
  );
}

/**
 * Sends `count` messages over `sessions` reused connections. Each message carries `X-Test-Id: <id>`. A failed
 * message is retried (new connection) up to `tries` times; `onAccepted` sees the running count (to inject faults).
 */
export async function sendLoad(opts: {
  port: number;
  host?: string;
  count: number;
  sessions: number;
  from: string;
  to: (i: number) => string;
  tries?: number;
  /** Prefix of the X-Test-Id values (`<prefix>-<i>`), to tell runs against one sink apart. Default 'load'. */
  idPrefix?: string;
  onAccepted?: (n: number) => void;
}): Promise<LoadResult> {
  const result: LoadResult = { accepted: new Set(), notAccepted: new Set(), tempFailures: 0 };
  let next = 0;
  const worker = async () => {
    let conn: SMTPConnection | undefined;
    for (;;) {
      const i = next++;
      if (i >= opts.count) break;
      const id = `${opts.idPrefix ?? 'load'}-${i}`;
      const raw = `From: <${opts.from}>\r\nTo: <${opts.to(i)}>\r\nSubject: load ${i}\r\nX-Test-Id: ${id}\r\n\r\nmessage ${i}\r\n`;
      let ok = false;
      for (let attempt = 0; attempt < (opts.tries ?? 20) && !ok; attempt++) {
        try {
          conn ??= await open(opts.port, opts.host ?? '127.0.0.1');
          await sendOne(conn, opts.from, opts.to(i), raw);
          ok = true;
        } catch {
          result.tempFailures++;
          conn?.close();
          conn = undefined;
          await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
        }
      }
      if (ok) {
        result.accepted.add(id);
        opts.onAccepted?.(result.accepted.size);
      } else result.notAccepted.add(id);
    }
    conn?.quit();
  };
  await Promise.all(Array.from({ length: opts.sessions }, worker));
  return result;
}

/** The X-Test-Id header of a raw message. */
export const testIdOf = (raw: Buffer | string) => /^X-Test-Id: (\S+)/m.exec(raw.toString())?.[1];

/**
 * Sends one message over a fresh connection with RFC 3461 parameters (nodemailer's envelope `dsn`: RET/ENVID on
 * MAIL FROM, one NOTIFY/ORCPT for every RCPT; sent only because the server advertises DSN). Resolves with the
 * DATA reply (its "queued as <id>" names the message); rejects on any refusal.
 */
export function sendWithDsn(opts: {
  port: number;
  host?: string;
  /** Source address (any 127.0.0.N) — how tests pick the RelayPolicy that matches the client. */
  localAddress?: string;
  from: string;
  to: string[];
  raw: string;
  dsn: { ret?: 'FULL' | 'HDRS'; envid?: string; notify?: string; orcpt?: string };
}): Promise<string> {
  return new Promise((resolve, reject) => {
    const conn = new SMTPConnection({
      port: opts.port,
      host: opts.host ?? '127.0.0.1',
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
      ignoreTLS: true,
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 30_000,
    });
    conn.once('error', reject);
    conn.connect(() => {
      conn.send({ from: opts.from, to: opts.to, dsn: opts.dsn }, opts.raw, (err, info) => {
        conn.quit();
        if (err) reject(err);
        else resolve(info.response);
      });
    });
  });
}
