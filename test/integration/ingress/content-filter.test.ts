/**
 * The content filter at end of DATA against the real rspamd (test/helpers/rspamd.ts): each rspamd action gives
 * the client the right reply and the queued message the right headers; rspamd unreachable or silent gives 250
 * unscanned (fail open) or 451 4.3.0 (fail closed).
 */

import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { Registry } from 'prom-client';
import { hashPassword } from '../../../services/common/config/password.ts';
import { DEFAULT_RETRY, domainKey, policyKey } from '../../../services/common/config/resolved.ts';
import type { Envelope } from '../../../services/common/types.ts';
import type { ContentFilterSettings } from '../../../services/ingress/filter-settings.ts';
import { type Ingress, startIngress } from '../../../services/ingress/service.ts';
import { bodyText, type SeenEnvelope } from '../../helpers/bodies.ts';
import { startTestRspamd, type TestRspamd } from '../../helpers/rspamd.ts';
import { freePort } from '../../helpers/smtp-sink.ts';
import { type Harness, serverReplies, startHarness, swaks } from './ingress-harness.ts';

const GTUBE = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';

function bodyOf(env: SeenEnvelope | undefined): string {
  assert.ok(env, 'a message was queued');
  assert.ok('attached' in env.body, JSON.stringify(env.body));
  return bodyText(env, 'latin1');
}

/** The header section of a queued message. */
function headersOf(env: Envelope | undefined): string {
  const body = bodyOf(env);
  return body.slice(0, body.indexOf('\r\n\r\n') + 2);
}

const send = (port: number, subject: string, extra: string[] = []) =>
  swaks(port, [
    '--from',
    'someone@far.example',
    '--to',
    'alice@ours.example',
    '--header',
    `Subject: ${subject}`,
    ...extra,
  ]);

async function metricValue(
  registry: Registry,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const value = (metric?.values ?? []).find((v) =>
    Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x),
  );
  return value?.value ?? 0;
}

describe('content filter (real rspamd, real nats-server, swaks)', () => {
  let rspamd: TestRspamd;
  let h: Harness;
  before(async () => {
    rspamd = await startTestRspamd();
    h = await startHarness({
      listeners: [
        { name: 'mx', host: '127.0.0.1', port: 0, mode: 'relay' },
        { name: 'submission', host: '127.0.0.1', port: 0, mode: 'submission', insecureAuth: true },
      ],
      settings: {
        contentFilter: { url: rspamd.url, timeoutMs: 10_000, failMode: 'open', maxSize: 1024 * 1024 },
      },
      documents: {
        [domainKey('ours.example')]: {
          source: 'mail/ours',
          domain: 'ours.example',
          inbound: { enabled: true },
        },
        [policyKey('prod', 'apps')]: {
          source: 'prod/apps',
          networks: [],
          users: [{ name: 'app', hash: hashPassword('s3cret') }],
          requireTLS: false,
          limits: {},
          delivery: { pool: 'default', destinations: [], retry: DEFAULT_RETRY, tls: 'opportunistic' },
        },
      },
    });
  });
  after(async () => {
    await h?.stop();
    await rspamd?.close();
  });

  it('rejects a GTUBE message with 550 5.7.1 and queues nothing', async () => {
    const r = await send(h.port('mx'), 'hello', ['--body', GTUBE]);
    assert.ok(serverReplies(r.output).includes('550 5.7.1 Gtube pattern'), r.output);
    assert.equal(await h.nextEnvelope(1000), undefined);
  });

  it("answers soft reject with 451 4.7.1 and rspamd's message", async () => {
    const r = await send(h.port('mx'), 'postern-soft-reject');
    assert.ok(serverReplies(r.output).includes('451 4.7.1 Postern test: please try again later'), r.output);
    assert.equal(await h.nextEnvelope(1000), undefined);
  });

  it('answers greylist with 451 4.7.1', async () => {
    const r = await send(h.port('mx'), 'postern-greylist');
    assert.ok(serverReplies(r.output).includes('451 4.7.1 Greylisted, try again later'), r.output);
    assert.equal(await h.nextEnvelope(1000), undefined);
  });

  it('accepts add header with X-Spam-Flag and X-Spam-Status on the queued message', async () => {
    const r = await send(h.port('mx'), 'postern-add-header');
    assert.equal(r.code, 0, r.output);
    const headers = headersOf(await h.nextEnvelope());
    // rspamd's headers go on top, above our Authentication-Results and Received (the trace of this hop).
    assert.match(
      headers,
      /^X-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=0\.00 required=15\.00\r\nAuthentication-Results: [\s\S]*?\r\nReceived: /,
    );
    assert.match(headers, /\r\nSubject: postern-add-header\r\n/);
  });

  it('rewrites the subject as rspamd says and flags the message', async () => {
    const r = await send(h.port('mx'), 'postern-rewrite-subject');
    assert.equal(r.code, 0, r.output);
    const headers = headersOf(await h.nextEnvelope());
    assert.match(headers, /\r\nSubject: \*\*\* SPAM \*\*\* postern-rewrite-subject\r\n/);
    assert.equal(headers.match(/^Subject:/gm)?.length, 1);
    assert.match(headers, /^X-Spam-Flag: YES\r\n/);
  });

  it('accepts a clean message with X-Spam-Status: No and removes forged spam headers', async () => {
    const r = await send(h.port('mx'), 'quarterly report', [
      '--add-header',
      'X-Spam-Flag: NO',
      '--add-header',
      'X-Spam-Status: No, trust me',
    ]);
    assert.equal(r.code, 0, r.output);
    const headers = headersOf(await h.nextEnvelope());
    assert.match(
      headers,
      /^X-Spam-Status: No, score=0\.00 required=15\.00\r\nAuthentication-Results: [\s\S]*?\r\nReceived: /,
    );
    assert.doesNotMatch(headers, /X-Spam-Flag|trust me/);
  });

  it('gives rspamd the envelope: client IP, HELO, sender, every recipient, AUTH user, queue id', async () => {
    const r = await swaks(h.port('submission'), [
      '--auth',
      'PLAIN',
      '--auth-user',
      'app',
      '--auth-password',
      's3cret',
      '--from',
      'app@corp.example',
      '--to',
      'alice@ours.example,bob@ours.example',
      '--header',
      'Subject: postern-envelope',
    ]);
    const reply = serverReplies(r.output).find((l) => l.startsWith('550 '));
    assert.match(
      reply ?? r.output,
      /^550 5\.7\.1 ip=127\.0\.0\.1 helo=client\.test from=app@corp\.example rcpt=alice@ours\.example;bob@ours\.example user=app queue-id=[0-9A-Z]{26}$/,
    );
  });

  it('counts verdicts per action and observes scan latency', async () => {
    assert.equal(
      await metricValue(h.registry, 'postern_content_filter_verdicts_total', {
        listener: 'mx',
        action: 'reject',
      }),
      1,
    );
    assert.equal(
      await metricValue(h.registry, 'postern_content_filter_verdicts_total', {
        listener: 'mx',
        action: 'add_header',
      }),
      1,
    );
    assert.equal(
      await metricValue(h.registry, 'postern_smtp_rejections_total', {
        listener: 'mx',
        reason: 'content-filter',
      }),
      3,
    );
    const histogram = await h.registry.getSingleMetric('postern_content_filter_duration_seconds')?.get();
    const count = histogram?.values.find(
      (v) =>
        (v as { metricName?: string }).metricName === 'postern_content_filter_duration_seconds_count' &&
        v.labels['listener'] === 'mx',
    );
    assert.ok((count?.value ?? 0) >= 6);
  });

  describe('when rspamd does not answer', () => {
    let silent: Server;
    const held: Socket[] = [];
    let deadUrl: string;
    let silentUrl: string;
    const extra: Ingress[] = [];
    const start = async (contentFilter: ContentFilterSettings, registry = new Registry()) => {
      const ingress = await startIngress({
        nc: h.nc,
        config: h.config,
        registry,
        logger: pino({ level: 'silent' }),
        settings: {
          listeners: [{ name: 'mx', host: '127.0.0.1', port: 0, mode: 'relay' }],
          hostname: 'mx.test.postern',
          maxMessageSize: 1024 * 1024,
          publishTimeoutMs: 1500,
          inlineBodyMax: 256 * 1024,
          reusePort: false,
          directRouting: false,
          contentFilter,
        },
      });
      extra.push(ingress);
      return ingress.listeners[0]!.port;
    };
    before(async () => {
      // Nothing listens on a port just found free: connections are refused (rspamd down).
      deadUrl = `http://127.0.0.1:${await freePort('127.0.0.1')}`;
      // A peer that accepts and never answers (rspamd hung): the timeout decides.
      silent = createServer((s) => held.push(s));
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
      silentUrl = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
    });
    after(async () => {
      await Promise.all(extra.map((i) => i.close()));
      for (const s of held) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    });

    it('fail open: rspamd down → the message is accepted unscanned and the failure counted', async () => {
      const registry = new Registry();
      const port = await start(
        { url: deadUrl, timeoutMs: 2000, failMode: 'open', maxSize: 1024 * 1024 },
        registry,
      );
      const r = await send(port, 'postern-add-header');
      assert.equal(r.code, 0, r.output);
      const headers = headersOf(await h.nextEnvelope());
      assert.doesNotMatch(headers, /X-Spam/);
      assert.equal(
        await metricValue(registry, 'postern_content_filter_errors_total', { reason: 'unreachable' }),
        1,
      );
      assert.equal(
        await metricValue(registry, 'postern_content_filter_verdicts_total', { action: 'failed_open' }),
        1,
      );
    });

    it('fail closed: rspamd down → 451 4.3.0 and nothing queued', async () => {
      const port = await start({ url: deadUrl, timeoutMs: 2000, failMode: 'closed', maxSize: 1024 * 1024 });
      const r = await send(port, 'hello');
      assert.ok(
        serverReplies(r.output).includes('451 4.3.0 Content filter unavailable, try again later'),
        r.output,
      );
      assert.equal(await h.nextEnvelope(1000), undefined);
    });

    it('fail closed: rspamd silent past the timeout → 451 4.3.0', async () => {
      const registry = new Registry();
      const port = await start(
        { url: silentUrl, timeoutMs: 500, failMode: 'closed', maxSize: 1024 * 1024 },
        registry,
      );
      const r = await send(port, 'hello');
      assert.ok(
        serverReplies(r.output).includes('451 4.3.0 Content filter unavailable, try again later'),
        r.output,
      );
      assert.equal(
        await metricValue(registry, 'postern_content_filter_errors_total', { reason: 'timeout' }),
        1,
      );
    });
  });
});
