/**
 * The API service in-process against a real nats-server: what reaches SUBMIT (the same Envelope contract as SMTP),
 * HTTPS and a RelayPolicy's requireTLS, the X-Forwarded-Proto switch, and a chunked body over the request cap.
 */

import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { Registry } from 'prom-client';
import { type Api, startApi } from '../../../services/api/service.ts';
import type { ApiSettings } from '../../../services/api/settings.ts';
import { hashApiKey } from '../../../services/common/config/api-key.ts';
import { CONFIG_BUCKET, DEFAULT_RETRY, type PolicyConfig } from '../../../services/common/config/resolved.ts';
import { ConfigStore } from '../../../services/common/config/store.ts';
import { connectNats, ensureConsumer, ensureTopology, STREAMS } from '../../../services/common/nats.ts';
import { bodyText, seenEnvelope } from '../../helpers/bodies.ts';
import { startTestNats, type TestNats } from '../../helpers/nats.ts';
import { selfSignedCert } from '../ingress/ingress-harness.ts';

const KEY = 'secure-key-0123456789abcdefghijklmn';
const policy: PolicyConfig = {
  source: 'prod/secure',
  networks: [],
  users: [],
  requireTLS: true,
  limits: {},
  apiKeys: [{ id: 'secure', sha256: hashApiKey(KEY) }],
  delivery: { pool: 'default', destinations: [], retry: DEFAULT_RETRY, tls: 'opportunistic' },
};

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

function collect(res: IncomingMessage): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (d: string) => (text += d));
    res.on('end', () =>
      resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }),
    );
    res.on('error', reject);
  });
}

const message = JSON.stringify({ from: 'me@app.example', to: ['you@far.example'], subject: 's', text: 't' });

describe('API service (in-process, real nats-server)', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let config: ConfigStore;
  let https: Api;
  let http: Api;
  let cert: { cert: Buffer; key: Buffer };

  const settings = (over: Partial<ApiSettings>): ApiSettings => ({
    host: '127.0.0.1',
    port: 0,
    hostname: 'api.test.postern',
    maxMessageSize: 1024 * 1024,
    maxRequestBytes: 64 * 1024,
    publishTimeoutMs: 1500,
    inlineBodyMax: 16 * 1024,
    // The tests read envelopes from SUBMIT; routing at receipt has its own tests (ingress/direct-routing.test.ts).
    directRouting: false,
    rateLimitTimeoutMs: 500,
    trustForwardedProto: false,
    ...over,
  });
  const nextEnvelope = async () => {
    const consumer = await jetstream(nc).consumers.get(STREAMS.submit, 'api-test');
    const m = await consumer.next({ expires: 3000 });
    assert.ok(m, 'an envelope on SUBMIT');
    await m.ackAck();
    return seenEnvelope(m);
  };
  const postHttp = (port: number, headers: Record<string, string>, body: string | string[]) =>
    new Promise<Reply>((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/v1/messages',
          headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', ...headers },
        },
        (res) => void collect(res).then(resolve, reject),
      );
      req.on('error', reject);
      // An array is written chunk by chunk without Content-Length: Transfer-Encoding: chunked.
      for (const chunk of Array.isArray(body) ? body : [body]) req.write(chunk);
      req.end();
    });

  before(async () => {
    nats = await startTestNats();
    nc = await connectNats(nats.url, 'api-test');
    await ensureTopology(nc);
    const kv = await new Kvm(nc).open(CONFIG_BUCKET);
    await kv.put('policy.prod.secure', JSON.stringify(policy));
    config = new ConfigStore();
    await config.start(nc);
    await ensureConsumer(nc, STREAMS.submit, 'api-test', 'mail.submit.>');
    cert = selfSignedCert();
    const logger = pino({ level: process.env['LOG_LEVEL'] ?? 'silent' });
    https = await startApi({
      nc,
      config,
      logger,
      registry: new Registry(),
      settings: settings({ tls: cert }),
    });
    http = await startApi({
      nc,
      config,
      logger,
      registry: new Registry(),
      settings: settings({ trustForwardedProto: true }),
    });
  });
  after(async () => {
    await https?.close();
    await http?.close();
    await config?.stop();
    await nc?.close();
    await nats?.cleanup();
  });

  it('requireTLS: HTTPS is relayed and published like SMTP mail; plain HTTP is refused', async () => {
    const reply = await new Promise<Reply>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          servername: 'localhost',
          ca: cert.cert,
          port: https.port,
          method: 'POST',
          path: '/v1/messages',
          headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        },
        (res) => void collect(res).then(resolve, reject),
      );
      req.on('error', reject);
      req.end(message);
    });
    assert.equal(reply.status, 202, JSON.stringify(reply.body));
    const env = await nextEnvelope();
    assert.equal(env.id, reply.body['id']);
    assert.equal(env.from, 'me@app.example');
    assert.deepEqual(env.to, ['you@far.example']);
    assert.equal(env.policy, 'prod.secure');
    assert.deepEqual(env.client, { address: '127.0.0.1', helo: 'api', user: 'api-key:secure', tls: true });
    assert.equal(env.kind, 'mail');
    const body = bodyText(env);
    assert.match(
      body,
      new RegExp(
        `^Received: from api \\(\\[127\\.0\\.0\\.1\\]\\)\\r\\n\\tby api\\.test\\.postern \\(Postern\\) with HTTPS id ${env.id}`,
      ),
    );
    assert.equal(env.size, Buffer.byteLength(body));

    const plain = await postHttp(http.port, {}, message);
    assert.equal(plain.status, 403);
    assert.equal(plain.body['error'], 'relay-denied');
    assert.match(String(plain.body['message']), /requires TLS/);
  });

  it('counts X-Forwarded-Proto: https as TLS only where the operator said a TLS proxy fronts the API', async () => {
    const forwarded = await postHttp(http.port, { 'x-forwarded-proto': 'https' }, message);
    assert.equal(forwarded.status, 202, JSON.stringify(forwarded.body));
    assert.equal((await nextEnvelope()).client.tls, true);
  });

  it('refuses a chunked body once it passes the request cap (413), keeping none of the rest', async () => {
    const chunk = `{"text":"${'x'.repeat(16 * 1024)}`;
    const r = await postHttp(http.port, {}, [chunk, 'y'.repeat(32 * 1024), 'y'.repeat(32 * 1024), '"}']);
    assert.equal(r.status, 413);
    assert.equal(r.body['error'], 'request-too-large');
  });
});
