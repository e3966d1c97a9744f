/**
 * The user journey of issue #8 §1 in local mode: a RelayPolicy with `delivery.tls: required` relays through a
 * smarthost that offers no STARTTLS. The message must never reach it in clear text; it waits deferred, and
 * `postern queue show` says why (the 4.7.10 reason and the TLS facts of the attempt).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { eventually, startPostern, type TestPostern } from '../helpers/postern.ts';
import { type SmtpSink, startSmtpSink } from '../helpers/smtp-sink.ts';
import { swaks } from '../helpers/swaks.ts';

const CLI = new URL('../../bin/postern.ts', import.meta.url).pathname;

function postern(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

describe('tls: required with a smarthost that offers no STARTTLS (local mode)', () => {
  let sink: SmtpSink;
  let p: TestPostern;

  before(async () => {
    sink = await startSmtpSink({ host: '127.0.0.51' });
    p = await startPostern({
      config: `
apiVersion: postern.dev/v1alpha1
kind: RelayPolicy
metadata: { name: tls-required }
spec:
  clients: { networks: [127.0.0.1/32] }
  delivery:
    smarthost: { host: 127.0.0.51, port: ${sink.port} }
    tls: required
    retry: { schedule: [1h], maxLifetime: 1d }
`,
    });
  });
  after(async () => {
    await p?.cleanup();
    await sink?.close();
  });

  it('defers the message, never delivers it in clear text, and queue show says why', async () => {
    const sent = await swaks([
      '--server',
      `127.0.0.1:${p.smtpPort}`,
      '--from',
      'me@sender.test',
      '--to',
      'someone@far.test',
    ]);
    assert.equal(sent.code, 0, sent.transcript);
    const dataDir = ['--data-dir', p.dataDir];
    const listed = await eventually('the deferred message in the queue listing', async () => {
      const r = await postern(['queue', 'list', ...dataDir]);
      return /someone@far\.test\s+\[deferred/.test(r.stdout) && r.stdout;
    });
    const id = /^(\S+)\s+\S+\s+<me@sender\.test>/m.exec(listed)?.[1];
    assert.ok(id, listed);
    const shown = await postern(['queue', 'show', id, ...dataDir]);
    assert.equal(shown.code, 0, shown.stderr);
    const entry = JSON.parse(shown.stdout) as {
      jobs: {
        status: string;
        lastResponse?: string;
        lastTls?: { policy: string; failure?: string };
        lastTlsSummary?: string;
      }[];
    };
    const job = entry.jobs[0]!;
    assert.equal(job.status, 'deferred');
    assert.match(job.lastResponse ?? '', /TLS required \(required\) but not offered by 127\.0\.0\.51:\d+/);
    assert.deepEqual([job.lastTls?.policy, job.lastTls?.failure], ['required', 'starttls-not-supported']);
    assert.match(job.lastTlsSummary ?? '', /^no TLS \(starttls-not-supported\), policy required$/);
    assert.equal(sink.messages.length, 0, 'nothing was handed over in clear text');
  });
});
