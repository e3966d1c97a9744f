/**
 * Webhooks and the suppression list as an application and an operator see them, through local mode: swaks sends
 * to a real SMTP sink (the smarthost), a real HTTP receiver on loopback gets signed `delivered`, `bounced` and
 * `suppressed` events, and `postern suppression …` (the real CLI) lists, adds, removes, imports and exports.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { MailEvent } from '../../services/common/types.ts';
import { verifySignature } from '../../services/webhooks/signature.ts';
import { eventually, smarthostRelayConfig, startPostern, type TestPostern } from '../helpers/postern.ts';
import { type SmtpSink, startSmtpSink } from '../helpers/smtp-sink.ts';
import { swaks } from '../helpers/swaks.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.ts';

const CLI = new URL('../../bin/postern.ts', import.meta.url).pathname;
const KEY = 'e2e-webhook-key';

describe('webhooks and suppression list management (local mode)', () => {
  let sink: SmtpSink;
  let receiver: WebhookReceiver;
  let postern: TestPostern;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'postern-wh-'));
    sink = await startSmtpSink({
      host: '127.0.0.9',
      onRcpt: (rcpt) =>
        rcpt.startsWith('nobody@') ? { code: 550, message: '5.1.1 no such user here' } : 'accept',
    });
    receiver = await startWebhookReceiver();
    postern = await startPostern({
      config: `${smarthostRelayConfig({ host: '127.0.0.9', port: sink.port })}
---
apiVersion: v1
kind: Secret
metadata: { name: hook-key }
stringData: { secret: ${KEY} }
---
apiVersion: postern.dev/v1alpha1
kind: Webhook
metadata: { name: app }
spec:
  url: ${receiver.url}
  events: [delivered, bounced, suppressed]
  secretRef: { name: hook-key }
  policies: [loopback]
  retry: { initialDelay: 200ms, maxDelay: 1s }
`,
    });
  });
  after(async () => {
    await postern?.cleanup();
    await receiver?.close();
    await sink?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) =>
      execFile(
        process.execPath,
        [CLI, ...args, '--data-dir', postern.dataDir],
        { timeout: 60_000 },
        (err, stdout, stderr) =>
          resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      ),
    );
  }

  /** Sends one message from the null sender (no DSN leaves the machine) and checks it was accepted. */
  async function send(to: string) {
    const r = await swaks(['--server', `127.0.0.1:${postern.smtpPort}`, '--from', '<>', '--to', to]);
    assert.equal(r.code, 0, r.transcript);
  }

  /** The first event of `type` for `recipient` that the receiver accepted (signature checked). */
  function eventFor(type: string, recipient: string): Promise<MailEvent> {
    return eventually(`${type} webhook for ${recipient}`, () => {
      const w = receiver.received.find(
        (x) =>
          x.type === type &&
          x.answered === 200 &&
          (JSON.parse(x.body) as { data: MailEvent }).data.recipients?.includes(recipient),
      );
      if (!w) return undefined;
      assert.ok(verifySignature(KEY, w, w.body), 'signature verifies with the Secret key');
      return (JSON.parse(w.body) as { data: MailEvent }).data;
    });
  }

  it('a delivered message produces a signed `delivered` webhook', async () => {
    await send('ok@far.test');
    const event = await eventFor('delivered', 'ok@far.test');
    assert.equal(event.policy, 'default/loopback');
    assert.match(event.response ?? '', /^250/);
    assert.ok(sink.messages.some((m) => m.to.includes('ok@far.test')));
  });

  it('a hard bounce produces `bounced` and puts the address on the suppression list with its reply', async () => {
    await send('nobody@far.test');
    const event = await eventFor('bounced', 'nobody@far.test');
    assert.match(event.response ?? '', /550 5\.1\.1 no such user here/);
    // The suppression entry and the event are written side by side (services/queue/apply.ts): wait for the entry.
    const list = await eventually('listed', async () => {
      const r = await cli(['suppression', 'list']);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.includes('nobody@far.test') ? r : undefined;
    });
    assert.match(
      list.stdout,
      /nobody@far\.test {2}\[hard-bounce, since .+, until .+\] {2}.*550 5\.1\.1 no such user here/,
    );
  });

  it('a manual add stops delivery and reports `suppressed`; remove lets mail through again', async () => {
    const add = await cli(['suppression', 'add', 'Manual@Far.test', '--note', 'asked by phone']);
    assert.equal(add.code, 0, add.stderr);
    const show = await cli(['suppression', 'show', 'manual@far.test']);
    assert.equal((JSON.parse(show.stdout) as { reason: string }).reason, 'manual');

    await send('manual@far.test');
    const event = await eventFor('suppressed', 'manual@far.test');
    assert.match(event.response ?? '', /suppressed/);
    assert.ok(!sink.messages.some((m) => m.to.includes('manual@far.test')), 'nothing reached the sink');

    const removed = await cli(['suppression', 'remove', 'manual@far.test']);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal((await cli(['suppression', 'remove', 'manual@far.test'])).code, 1, 'already removed');
    await send('manual@far.test');
    await eventFor('delivered', 'manual@far.test');
    await eventually('delivered to the sink', () =>
      sink.messages.some((m) => m.to.includes('manual@far.test')),
    );
  });

  it('import refuses a CSV with bad lines, naming each; a good CSV imports; list filters by domain; export', async () => {
    const bad = join(dir, 'bad.csv');
    writeFileSync(
      bad,
      'address,reason,note,expires\ngood@far.test,complaint,fbl,\nnot-an-address,manual,,\nx@far.test,spam,,\ny@far.test,manual,,90d\n',
    );
    const refused = await cli(['suppression', 'import', bad]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /3 bad line\(s\), nothing imported/);
    assert.match(refused.stderr, /line 3: "not-an-address" is not an email address/);
    assert.match(refused.stderr, /line 4: reason "spam" is not one of/);
    assert.match(refused.stderr, /line 5: expires "90d" is beyond 30 days/);
    assert.doesNotMatch((await cli(['suppression', 'list'])).stdout, /good@far\.test/);

    const skipped = await cli(['suppression', 'import', bad, '--skip-invalid']);
    assert.equal(skipped.code, 0, skipped.stderr);
    assert.match(skipped.stdout, /imported 1 address\(es\).*skipped 3 bad line/s);

    const good = join(dir, 'good.csv');
    writeFileSync(good, 'a1@other.test\n"a2@other.test"\n');
    const imported = await cli(['suppression', 'import', good, '--expires', '2d']);
    assert.equal(imported.code, 0, imported.stderr);

    const other = await cli(['suppression', 'list', '--domain', 'other.test']);
    assert.match(other.stdout, /a1@other\.test {2}\[manual/);
    assert.match(other.stdout, /a2@other\.test/);
    assert.doesNotMatch(other.stdout, /far\.test/);
    assert.match(other.stdout, /-- 2 address\(es\)/);

    const csv = await cli(['suppression', 'export']);
    assert.match(csv.stdout, /^address,reason,note,response,created,expires\n/);
    assert.match(csv.stdout, /\ngood@far\.test,complaint,fbl,,\d{4}-/);
    const json = JSON.parse(
      (await cli(['suppression', 'export', '--format', 'json', '--domain', 'far.test'])).stdout,
    ) as {
      address: string;
      reason: string;
    }[];
    assert.deepEqual(json.map((e) => e.address).sort(), ['good@far.test', 'nobody@far.test']);
    // An export imports back as it is.
    const back = join(dir, 'back.csv');
    writeFileSync(back, csv.stdout);
    assert.equal((await cli(['suppression', 'import', back])).code, 0);
  });
});
