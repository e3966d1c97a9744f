/**
 * `POST /v1/messages`, top-down like an SMTP transaction: key (AUTH) → request size → JSON schema → compose →
 * sender and recipients (MAIL/RCPT, the RelayPolicy's rules) → message size → messagesPerMinute → Received
 * header and the durable hand-off (services/common/submit.ts) → 202 only after the PubAck, 503 when JetStream
 * did not take it. Every refusal is a JSON error naming the field (docs/api.md, docs/openapi.yaml).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { TLSSocket } from 'node:tls';
import type { ConfigStore } from '../common/config/store.ts';
import { newMessageId } from '../common/message-id.ts';
import { receivedHeader } from '../common/received-header.ts';
import type { Submitter } from '../common/submit.ts';
import type { Logger } from '../common/telemetry.ts';
import type { ClientRateLimiter } from '../ingress/client-rate.ts';
import { bearerKey, findKey } from './api-keys.ts';
import { ComposeError, compose } from './compose.ts';
import type { ApiMetrics } from './metrics.ts';
import { apiClient, judgeEnvelope, rateLimit, sizeLimit } from './policy.ts';
import { type SubmitRequest, validateRequest } from './request-schema.ts';
import type { ApiSettings } from './settings.ts';

export const MESSAGES_PATH = '/v1/messages';
/** Seconds a client should wait after 503 (JetStream unavailable) or 429 (the one-minute window). */
const RETRY_AFTER_UNAVAILABLE = 5;
const RETRY_AFTER_RATE = 60;

export interface HandlerDeps {
  settings: ApiSettings;
  config: ConfigStore;
  submitter: Submitter;
  rates: ClientRateLimiter;
  metrics: ApiMetrics;
  logger: Logger;
}

/** A refusal on its way to the client. */
class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | undefined;
  readonly headers: Record<string, string>;
  constructor(
    status: number,
    code: string,
    message: string,
    field?: string,
    headers: Record<string, string> = {},
  ) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
    this.headers = headers;
  }
}

function send(res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** Reads the body up to `cap` bytes; past it, refuses with 413 without buffering the rest. */
function readBody(req: IncomingMessage, cap: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > cap) {
        // Stop keeping it but let the rest drain (discarded): closing a socket with unread input makes the kernel
        // send RST, and the client could lose the 413 before reading it. The 413 carries Connection: close.
        req.removeAllListeners('data');
        req.resume();
        reject(new HttpError(413, 'request-too-large', `request body exceeds ${cap} bytes`, 'body', close));
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

/** A refusal sent before the body was read: the connection closes rather than read what we refused. */
const close = { connection: 'close' };

/** Field names of the envelope as the request named it (given, or derived from the header fields). */
function envelopeFields(request: SubmitRequest) {
  if (request.envelope) return { from: 'envelope.from', to: (i: number) => `envelope.to[${i}]` };
  const s = request as Exclude<SubmitRequest, { raw: string }>;
  // MailComposer lists envelope recipients as To, then Cc, then Bcc.
  const lists: [string, number][] = [
    ['to', s.to.length],
    ['cc', s.cc?.length ?? 0],
    ['bcc', s.bcc?.length ?? 0],
  ];
  return {
    from: 'from',
    to: (i: number) => {
      let rest = i;
      for (const [name, n] of lists) {
        if (rest < n) return `${name}[${rest}]`;
        rest -= n;
      }
      return 'to';
    },
  };
}

export function createHandler(deps: HandlerDeps) {
  const { settings, config, submitter, rates, metrics, logger } = deps;
  const label = { listener: 'api' };

  async function messages(req: IncomingMessage, res: ServerResponse, log: Logger): Promise<void> {
    const key = bearerKey(req.headers.authorization);
    const snapshot = config.snapshot();
    const bound = key ? findKey(snapshot, key) : undefined;
    if (!bound) {
      throw new HttpError(401, 'unauthorized', key ? 'unknown API key' : 'missing API key', 'Authorization', {
        'www-authenticate': 'Bearer realm="postern"',
        ...close,
      });
    }
    const declared = Number(req.headers['content-length']);
    if (declared > settings.maxRequestBytes) {
      throw new HttpError(
        413,
        'request-too-large',
        `request body exceeds ${settings.maxRequestBytes} bytes`,
        'body',
        close,
      );
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') {
      throw new HttpError(
        415,
        'unsupported-media-type',
        'Content-Type must be application/json',
        'Content-Type',
        close,
      );
    }
    const text = await readBody(req, settings.maxRequestBytes);
    const started = performance.now();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text.toString('utf8'));
    } catch (err) {
      throw new HttpError(400, 'invalid-json', `body is not JSON: ${(err as Error).message}`, 'body');
    }
    const valid = validateRequest(parsed);
    if (!valid.ok) throw new HttpError(400, 'invalid-request', valid.message, valid.field);
    const request = valid.request;

    const id = newMessageId();
    const composed = await compose(request, `<${id}@${settings.hostname}>`).catch((err: Error) => {
      if (err instanceof ComposeError) throw new HttpError(400, 'invalid-request', err.message, err.field);
      throw err;
    });
    const socket = req.socket as Partial<TLSSocket>;
    const tls =
      socket.encrypted === true ||
      (settings.trustForwardedProto && String(req.headers['x-forwarded-proto']).toLowerCase() === 'https');
    const address = req.socket.remoteAddress ?? '';
    const client = apiClient(address, bound.policy, tls);
    const verdict = judgeEnvelope(composed, client, snapshot, envelopeFields(request));
    if (verdict.refusal) {
      const r = verdict.refusal;
      throw new HttpError(r.status, r.error, r.message, r.field);
    }
    const limit = sizeLimit(client, snapshot, settings.maxMessageSize);
    if (composed.message.length > limit) {
      throw new HttpError(
        413,
        'message-too-large',
        `message is ${composed.message.length} bytes; the limit is ${limit}`,
        'raw' in request ? 'raw' : 'body',
      );
    }
    const perMinute = rateLimit(client, snapshot);
    const reservation =
      perMinute === undefined ? undefined : await rates.reserve(`api:${bound.policy}:${bound.id}`, perMinute);
    if (reservation && !reservation.allowed) {
      throw new HttpError(
        429,
        'rate-limited',
        `more than ${perMinute} messages per minute for this key's policy`,
        'Authorization',
        { 'retry-after': String(RETRY_AFTER_RATE) },
      );
    }

    const header = receivedHeader({
      helo: 'api',
      clientAddress: address,
      hostname: settings.hostname,
      id,
      protocol: tls ? 'HTTPS' : 'HTTP',
      ...(composed.to.length === 1 ? { recipient: composed.to[0] } : {}),
      date: new Date(),
    });
    const body = Buffer.concat([Buffer.from(header, 'utf8'), composed.message]);
    const smtputf8 = [composed.from, ...composed.to].some((a) => /[^\p{ASCII}]/u.test(a));
    const fields = {
      msgId: id,
      key: bound.id,
      policy: verdict.policy ?? bound.policy,
      from: composed.from,
      rcpts: composed.to.length,
      size: body.length,
    };
    try {
      const { stored } = await submitter.submit(
        {
          id,
          from: composed.from,
          to: composed.to,
          receivedAt: new Date().toISOString(),
          ...(verdict.policy ? { policy: verdict.policy } : {}),
          client: { address, helo: 'api', user: `api-key:${bound.id}`, tls },
          kind: 'mail',
          ...(smtputf8 ? { smtputf8: true } : {}),
        },
        body,
      );
      reservation?.commit();
      metrics.messagesReceived.inc({ ...label, result: 'accepted' });
      metrics.acceptDuration.observe(label, (performance.now() - started) / 1000);
      log.info({ ...fields, stored }, 'queued');
      send(res, 202, { id });
      metrics.requests.inc({ status: '202', code: 'accepted' });
    } catch (err) {
      await reservation?.release();
      metrics.messagesReceived.inc({ ...label, result: 'tempfail' });
      log.warn({ ...fields, err: (err as Error).message }, 'not queued, answered 503');
      throw new HttpError(
        503,
        'unavailable',
        'the queue cannot take the message now; retry later',
        undefined,
        {
          'retry-after': String(RETRY_AFTER_UNAVAILABLE),
        },
      );
    }
  }

  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const log = logger.child({ client: req.socket.remoteAddress });
    try {
      const path = (req.url ?? '').split('?')[0];
      if (path !== MESSAGES_PATH)
        throw new HttpError(404, 'not-found', `no such resource: ${path}`, undefined, close);
      if (req.method !== 'POST') {
        throw new HttpError(405, 'method-not-allowed', `${req.method} is not allowed; use POST`, undefined, {
          allow: 'POST',
          ...close,
        });
      }
      await messages(req, res, log);
    } catch (err) {
      if (!(err instanceof HttpError)) {
        log.error({ err: (err as Error).message }, 'API request failed');
        metrics.requests.inc({ status: '500', code: 'internal' });
        if (!res.headersSent) send(res, 500, { error: 'internal', message: 'internal error' }, close);
        return;
      }
      metrics.requests.inc({ status: String(err.status), code: err.code });
      if (err.status === 400 || err.status === 403 || err.status === 413 || err.status === 429) {
        metrics.messagesReceived.inc({ ...label, result: 'rejected' });
      }
      if (err.status !== 503) log.info({ status: err.status, code: err.code, field: err.field }, 'refused');
      if (res.headersSent) return;
      send(
        res,
        err.status,
        { error: err.code, message: err.message, ...(err.field ? { field: err.field } : {}) },
        err.headers,
      );
    }
  };
}
