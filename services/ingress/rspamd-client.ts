/**
 * rspamd's HTTP scanning protocol (https://rspamd.com/doc/developers/protocol.html): `POST /checkv2` with the
 * message as body and the envelope in request headers, a JSON verdict back. node:http rather than fetch because
 * rspamd wants one `Rcpt` header per recipient, and fetch (undici) folds repeated headers into one line.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface ScanRequest {
  /** Postern message id: rspamd's Queue-Id (its log tag). */
  id: string;
  /** Envelope sender; '' for the null sender. */
  from: string;
  to: string[];
  clientAddress: string;
  helo: string;
  /** SMTP AUTH user: rspamd treats authenticated mail as outbound (no SPF/RBL on it). */
  user?: string;
  tls?: { version: string; cipher: string };
  body: Buffer;
}

/** The parts of rspamd's reply we act on. */
export interface RspamdResult {
  action: string;
  score: number;
  required_score: number;
  /** The rewritten Subject (action "rewrite subject"). */
  subject?: string;
  messages?: { smtp_message?: string };
  /** What rspamd's milter_headers module (and others) want changed, as it tells its own milter proxy. */
  milter?: {
    add_headers?: Record<string, string | { value: string } | (string | { value: string })[]>;
    remove_headers?: Record<string, number>;
  };
}

/** Why a scan produced no verdict: the fail-open / fail-closed switch decides what the client gets. */
export class ScanError extends Error {
  readonly reason: 'timeout' | 'unreachable' | 'bad-reply';
  constructor(reason: ScanError['reason'], message: string) {
    super(message);
    this.reason = reason;
  }
}

/** Scans one message; rejects with a ScanError when rspamd does not give a usable verdict in time. */
export function scanMessage(baseUrl: string, req: ScanRequest, timeoutMs: number): Promise<RspamdResult> {
  const url = new URL(`${baseUrl}/checkv2`);
  const headers: Record<string, string | string[]> = {
    'Content-Length': String(req.body.length),
    'Queue-Id': req.id,
    IP: req.clientAddress,
    Helo: req.helo,
    // rspamd reads an empty From as the null sender (bounces).
    From: req.from === '' ? '<>' : req.from,
    Rcpt: req.to,
  };
  if (req.user) headers['User'] = req.user;
  if (req.tls) {
    headers['TLS-Version'] = req.tls.version;
    headers['TLS-Cipher'] = req.tls.cipher;
  }
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const signal = AbortSignal.timeout(timeoutMs);
    const r = send(url, { method: 'POST', headers, signal }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('error', (err) => reject(failure(err, signal)));
      res.once('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) {
          return reject(
            new ScanError('bad-reply', `rspamd answered HTTP ${res.statusCode}: ${text.slice(0, 200)}`),
          );
        }
        try {
          const result = JSON.parse(text) as RspamdResult;
          if (typeof result.action !== 'string') throw new Error('no action in the reply');
          resolve(result);
        } catch (err) {
          reject(new ScanError('bad-reply', `unreadable rspamd reply: ${(err as Error).message}`));
        }
      });
    });
    r.once('error', (err) => reject(failure(err, signal)));
    r.end(req.body);
  });
}

function failure(err: Error, signal: AbortSignal): ScanError {
  return signal.aborted
    ? new ScanError('timeout', 'rspamd did not answer in time')
    : new ScanError('unreachable', `rspamd unreachable: ${err.message}`);
}
