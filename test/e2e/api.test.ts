/**
 * The HTTP submission API as an application uses it: Postern in local mode (real nats-server, queue, delivery and
 * the API as separate processes), API keys from Secrets bound to RelayPolicies, a real SMTP sink as the smarthost,
 * Node's fetch (undici) as the client, and schemathesis (from PyPI) exercising docs/openapi.yaml against it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { eventually, startPostern, type TestPostern } from '../helpers/postern.ts';
import { findSchemathesis } from '../helpers/schemathesis.ts';
import { type SmtpSink, startSmtpSink } from '../helpers/smtp-sink.ts';

/** A process's state letter from /proc/<pid>/stat ('T' = stopped), or why it could not be read. */
const procState = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch (err) {
    return (err as Error).message;
  }
};
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const KEY = 'app-key-0123456789abcdefghijklmnop';
const LIMITED_KEY = 'limited-key-0123456789abcdefghijkl';
const FUZZ_KEY = 'fuzz-key-0123456789abcdefghijklmnopq';
const MAX_REQUEST = 2_000_000;

function config(sink: SmtpSink): string {
  const smarthost = `smarthost: { host: ${sink.host}, port: ${sink.port}, tls: none }`;
  return `
apiVersion: postern.dev/v1alpha1
kind: RelayPolicy
metadata: { name: app }
spec:
  clients: {}
  api: { keysSecretRef: { name: app-keys } }
  senders: { domains: [app.test] }
  limits: { messageSize: 20000, recipientsPerMessage: 3 }
  delivery: { ${smarthost} }
---
apiVersion: postern.dev/v1alpha1
kind: RelayPolicy
metadata: { name: limited }
spec:
  clients: {}
  api: { keysSecretRef: { name: limited-keys } }
  limits: { messagesPerMinute: 2 }
  delivery: { ${smarthost} }
---
apiVersion: postern.dev/v1alpha1
kind: RelayPolicy
metadata: { name: fuzz }
spec:
  clients: {}
  api: { keysSecretRef: { name: fuzz-keys } }
  senders: { domains: [app.test] }
  delivery: { ${smarthost} }
---
apiVersion: v1
kind: Secret
metadata: { name: app-keys }
stringData: { ci: ${KEY} }
---
apiVersion: v1
kind: Secret
metadata: { name: limited-keys }
stringData: { batch: ${LIMITED_KEY} }
---
apiVersion: v1
kind: Secret
metadata: { name: fuzz-keys }
stringData: { schemathesis: ${FUZZ_KEY} }
`;
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

describe('HTTP submission API (local mode)', () => {
  let sink: SmtpSink;
  let postern: TestPostern;
  let url: string;

  const post = async (body: unknown, opts: { key?: string | null; type?: string; raw?: string } = {}) => {
    const headers: Record<string, string> = { 'content-type': opts.type ?? 'application/json' };
    const key = opts.key === undefined ? KEY : opts.key;
    if (key !== null) headers['authorization'] = `Bearer ${key}`;
    const res = await fetch(url, { method: 'POST', headers, body: opts.raw ?? JSON.stringify(body) });
    const text = await res.text();
    return {
      status: res.status,
      body: JSON.parse(text) as Record<string, unknown>,
      headers: res.headers,
    } as Answer;
  };
  const arrived = (id: string) =>
    eventually(`message ${id} at the sink`, () =>
      sink.messages.find((m) => new RegExp(` id ${id}[;\\s]`).test(m.raw.toString())),
    );

  before(async () => {
    sink = await startSmtpSink();
    postern = await startPostern({
      config: config(sink),
      api: true,
      env: { POSTERN_API_MAX_REQUEST_BYTES: String(MAX_REQUEST), POSTERN_PUBLISH_TIMEOUT_MS: '1500' },
    });
    url = `http://127.0.0.1:${postern.apiPort}/v1/messages`;
  });
  after(async () => {
    await postern?.cleanup();
    await sink?.close();
  });

  it('202 with the id only once queued; the raw message reaches the smarthost with its envelope and a Received header', async () => {
    const raw = 'From: App <me@app.test>\nTo: you@far.test\nSubject: raw over HTTP\n\nHello from the API.\n';
    const r = await post({ envelope: { from: 'me@app.test', to: ['you@far.test'] }, raw });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const id = String(r.body['id']);
    assert.match(id, /^[0-9A-Z]{26}$/);
    const m = await arrived(id);
    assert.equal(m.from, 'me@app.test');
    assert.deepEqual(m.to, ['you@far.test']);
    const text = m.raw.toString('utf8');
    assert.match(
      text,
      new RegExp(
        `^Received: from api \\(\\[(::ffff:)?127\\.0\\.0\\.1\\]\\)\\r\\n\\tby \\S+ \\(Postern\\) with HTTP id ${id}`,
      ),
    );
    // Bare LF in the JSON string became CRLF on the wire.
    assert.match(text, /\r\nSubject: raw over HTTP\r\n\r\nHello from the API\.\r\n/);
  });

  it('structured fields become a correct MIME message; Bcc only in the envelope', async () => {
    const r = await post({
      from: { name: 'Zoë App', address: 'me@app.test' },
      to: ['you@far.test'],
      cc: [{ name: 'Cc Person', address: 'cc@far.test' }],
      bcc: ['hidden@far.test'],
      subject: 'Grüße',
      text: 'plain part',
      html: '<p>html part</p>',
      attachments: [
        {
          filename: 'report.csv',
          contentType: 'text/csv',
          content: Buffer.from('a,b\n1,2\n').toString('base64'),
        },
      ],
      headers: { 'X-Campaign': 'spring', 'List-Unsubscribe': '<mailto:unsub@app.test>' },
    });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const id = String(r.body['id']);
    const m = await arrived(id);
    assert.equal(m.from, 'me@app.test');
    assert.deepEqual([...m.to].sort(), ['cc@far.test', 'hidden@far.test', 'you@far.test']);
    const text = m.raw.toString('utf8');
    assert.match(text, /^From: =\?UTF-8\?Q\?Zo=C3=AB_App\?= <me@app\.test>\r$/m);
    assert.match(text, /^Cc: Cc Person <cc@far\.test>\r$/m);
    assert.match(text, /^Subject: =\?UTF-8\?Q\?Gr=C3=BC=C3=9Fe\?=\r$/m);
    assert.match(text, new RegExp(`^Message-ID: <${id}@`, 'm'));
    assert.match(text, /^X-Campaign: spring\r$/m);
    assert.match(text, /^List-Unsubscribe: <mailto:unsub@app\.test>\r$/m);
    assert.match(text, /^Content-Type: multipart\/mixed;/m);
    assert.match(text, /^Content-Type: multipart\/alternative;/m);
    assert.match(text, /^Content-Type: text\/html; charset=utf-8\r$/m);
    assert.match(text, /^Content-Disposition: attachment; filename=report\.csv\r$/m);
    assert.match(text, new RegExp(Buffer.from('a,b\n1,2\n').toString('base64')));
    assert.doesNotMatch(text, /hidden@far\.test/);
    assert.doesNotMatch(text, /^Bcc:/im);
  });

  it('answers each refusal with its status and a JSON error naming the field', async () => {
    const ok = { from: 'me@app.test', to: ['you@far.test'], text: 'x' };
    const cases: [string, () => Promise<Answer>, number, string, string?][] = [
      ['no key', () => post(ok, { key: null }), 401, 'unauthorized', 'Authorization'],
      ['unknown key', () => post(ok, { key: `${KEY}-wrong` }), 401, 'unauthorized', 'Authorization'],
      [
        'not JSON content',
        () => post(ok, { type: 'text/plain' }),
        415,
        'unsupported-media-type',
        'Content-Type',
      ],
      ['broken JSON', () => post(null, { raw: '{"from":' }), 400, 'invalid-json', 'body'],
      ['schema', () => post({ ...ok, to: ['Name <you@far.test>'] }), 400, 'invalid-request', 'to[0]'],
      ['raw and fields', () => post({ ...ok, raw: 'a: b' }), 400, 'invalid-request', 'from'],
      [
        'address syntax',
        () => post({ ...ok, to: ['you%relay@far.test'] }),
        400,
        'invalid-recipient',
        'to[0]',
      ],
      ['sender domain', () => post({ ...ok, from: 'me@other.test' }), 403, 'sender-not-allowed', 'from'],
      [
        'recipient count',
        () => post({ ...ok, to: ['a@far.test', 'b@far.test'], cc: ['c@far.test', 'd@far.test'] }),
        403,
        'too-many-recipients',
        'cc[1]',
      ],
      [
        'message size (policy)',
        () =>
          post({
            envelope: { from: 'me@app.test', to: ['you@far.test'] },
            raw: `Subject: big\n\n${'x'.repeat(30_000)}`,
          }),
        413,
        'message-too-large',
        'raw',
      ],
      [
        'request size (listener)',
        () => post({ ...ok, text: 'y'.repeat(MAX_REQUEST) }),
        413,
        'request-too-large',
        'body',
      ],
    ];
    for (const [what, send, status, error, field] of cases) {
      const r = await send();
      assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body['error'], error, what);
      if (field) assert.equal(r.body['field'], field, what);
      assert.equal(typeof r.body['message'], 'string', what);
      if (status === 401) assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
    }
    const get = await fetch(url, { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'POST');
    await get.body?.cancel();
  });

  it("429 with Retry-After once a key's policy messagesPerMinute is used up", async () => {
    const limit = 2;
    let accepted = 0;
    let refused: Answer | undefined;
    // A minute boundary may fall inside the loop (the sliding window then weighs the previous minute), so allow
    // up to twice the limit before the refusal; without one the loop ends after 2 × limit + 1 requests.
    for (let i = 0; i < 2 * limit + 1 && !refused; i++) {
      const r = await post(
        { from: 'me@app.test', to: ['you@far.test'], text: `n${i}` },
        { key: LIMITED_KEY },
      );
      if (r.status === 202) accepted++;
      else refused = r;
    }
    assert.ok(refused, `a 429 after ${accepted} messages`);
    assert.equal(refused.status, 429, JSON.stringify(refused.body));
    assert.equal(refused.body['error'], 'rate-limited');
    assert.ok(Number(refused.headers.get('retry-after')) > 0);
    assert.ok(accepted >= limit && accepted <= 2 * limit, `accepted ${accepted}`);
  });

  it('503 with Retry-After while JetStream cannot take the message; every 202 is delivered', async () => {
    const send = (n: string) =>
      post({
        envelope: { from: 'me@app.test', to: ['you@far.test'] },
        raw: `Subject: outage ${n}\n\nbody\n`,
      });
    const before = await send('before');
    assert.equal(before.status, 202);
    const nats = postern.nats.process;
    // A frozen nats-server acknowledges nothing: the publish times out (POSTERN_PUBLISH_TIMEOUT_MS) → 503.
    let during: Answer;
    try {
      assert.ok(nats.kill('SIGSTOP'), `SIGSTOP to nats-server pid ${nats.pid}`);
      // A signal is delivered asynchronously: go on once the kernel reports the process stopped ('T').
      await eventually(`nats-server pid ${nats.pid} stopped`, () => procState(nats.pid!) === 'T');
      during = await send('during');
    } finally {
      nats.kill('SIGCONT');
    }
    assert.equal(during.status, 503, JSON.stringify(during.body));
    assert.equal(during.body['error'], 'unavailable');
    assert.ok(Number(during.headers.get('retry-after')) > 0);
    const again = await eventually('202 again after the outage', async () => {
      const r = await send('after');
      return r.status === 202 ? r : undefined;
    });
    for (const r of [before, again]) await arrived(String(r.body['id']));
  });

  it('docs/openapi.yaml holds against the running API (schemathesis, bounded examples, a real key)', () => {
    const st = findSchemathesis();
    const reports = mkdtempSync(join(tmpdir(), 'postern-schemathesis-'));
    try {
      const r = spawnSync(
        st,
        [
          'run',
          join(ROOT, 'docs/openapi.yaml'),
          '--url',
          `http://127.0.0.1:${postern.apiPort}`,
          '--header',
          `Authorization: Bearer ${FUZZ_KEY}`,
          '--checks',
          'not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,unsupported_method',
          '--max-examples',
          '60',
          '--phases',
          'examples,coverage,fuzzing',
          '--seed',
          '20261126',
          '--workers',
          '1',
          '--generation-database',
          'none',
          '--report-dir',
          reports,
          '--no-color',
        ],
        {
          encoding: 'utf8',
          timeout: 600_000,
          cwd: reports,
          env: { ...process.env, SCHEMATHESIS_TELEMETRY: 'false' },
        },
      );
      assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /passed/);
    } finally {
      rmSync(reports, { recursive: true, force: true });
    }
  });
});
