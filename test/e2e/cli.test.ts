/**
 * The `postern` command as a user runs it: `postern local` starts everything and prints where it listens,
 * `postern apply -f` changes the running configuration live, `postern queue list` shows waiting mail, and
 * Ctrl-C (SIGINT) stops every process it started.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../services/local/nats-server.ts';
import { eventually, smarthostRelayConfig } from '../helpers/postern.ts';
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

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('the postern command', () => {
  let dir: string;
  let sink: SmtpSink;
  let local: ChildProcess;
  let smtpPort: number;
  const config = (extra = '') => smarthostRelayConfig({ host: '127.0.0.9', port: sink.port, extra });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'postern-cli-'));
    sink = await startSmtpSink({ host: '127.0.0.9' });
    writeFileSync(join(dir, 'postern.yaml'), config());
  });
  after(async () => {
    if (local?.exitCode === null) local.kill('SIGKILL');
    await sink?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('postern local starts every service and reports where it listens', async () => {
    local = spawn(
      process.execPath,
      [
        CLI,
        'local',
        '--config',
        join(dir, 'postern.yaml'),
        '--data-dir',
        join(dir, 'data'),
        '--smtp-port',
        '0',
        '--submission-port',
        '0',
        '--api-port',
        '0',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      local.once('exit', (code) => reject(new Error(`postern local exited with ${code}`)));
      createInterface({ input: local.stdout! }).on('line', (line) => {
        if (line.includes('"msg":"postern ready"')) resolve(JSON.parse(line) as Record<string, unknown>);
      });
    });
    // --smtp-port 0: the ingress bound a free port, and the ready line says which.
    assert.match(String(ready['smtp']), /^127\.0\.0\.1:\d+$/);
    smtpPort = Number(String(ready['smtp']).split(':')[1]);
    assert.ok(smtpPort > 0);
    const r = await swaks([
      '--server',
      `127.0.0.1:${smtpPort}`,
      '--from',
      'me@sender.test',
      '--to',
      'you@remote.test',
    ]);
    assert.equal(r.code, 0, r.transcript);
    await sink.waitForMessages(1, 60_000);
  });

  it('postern validate and apply refuse a broken file with every problem named', async () => {
    writeFileSync(
      join(dir, 'bad.yaml'),
      config(
        '---\napiVersion: postern.dev/v1alpha1\nkind: MailDomain\nmetadata: { name: x }\nspec: { domain: "not a domain" }\n',
      ),
    );
    const bad = join(dir, 'bad.yaml');
    for (const args of [
      ['validate', '-f', bad],
      ['apply', '-f', bad, '--data-dir', join(dir, 'data')],
    ]) {
      const r = await postern(args);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /invalid configuration/);
      assert.match(r.stderr, /spec\.domain/);
    }
  });

  it('postern apply changes the running configuration without a restart', async () => {
    const before = await swaks([
      '--server',
      `127.0.0.1:${smtpPort}`,
      '--local-interface',
      '127.0.0.20',
      '--from',
      'x@y.test',
      '--to',
      'postmaster@new.test',
      '--quit-after',
      'RCPT',
    ]);
    assert.ok(
      before.replies.some((l) => /^554 5\.7\.1/.test(l)),
      before.transcript,
    );
    writeFileSync(
      join(dir, 'postern.yaml'),
      config(`---
apiVersion: postern.dev/v1alpha1
kind: MailDomain
metadata: { name: new }
spec:
  domain: new.test
  inbound: { enabled: true, deliverTo: { host: 127.0.0.9, port: ${sink.port}, protocol: smtp, tls: none } }
`),
    );
    const r = await postern(['apply', '-f', join(dir, 'postern.yaml'), '--data-dir', join(dir, 'data')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /domain\.new\.test/);
    await eventually('the new domain accepted', async () => {
      const after = await swaks([
        '--server',
        `127.0.0.1:${smtpPort}`,
        '--local-interface',
        '127.0.0.20',
        '--from',
        'x@y.test',
        '--to',
        'postmaster@new.test',
        '--quit-after',
        'RCPT',
      ]);
      return after.replies.some((l) => /^250 .*Accepted/i.test(l));
    });
  });

  it('postern queue list shows a message waiting for a destination that defers it', async () => {
    const empty = await postern(['queue', 'list', '--data-dir', join(dir, 'data')]);
    assert.equal(empty.code, 0, empty.stderr);
    const blackhole = await freePort('127.0.0.30');
    writeFileSync(
      join(dir, 'postern.yaml'),
      config(`---
apiVersion: postern.dev/v1alpha1
kind: MailDomain
metadata: { name: down }
spec:
  domain: down.test
  inbound: { enabled: true, deliverTo: { host: 127.0.0.30, port: ${blackhole}, protocol: lmtp, tls: none } }
`),
    );
    assert.equal(
      (await postern(['apply', '-f', join(dir, 'postern.yaml'), '--data-dir', join(dir, 'data')])).code,
      0,
    );
    const sent = await swaks([
      '--server',
      `127.0.0.1:${smtpPort}`,
      '--from',
      'me@sender.test',
      '--to',
      'someone@down.test',
    ]);
    assert.equal(sent.code, 0, sent.transcript);
    const listed = await eventually('the deferred message in the queue listing', async () => {
      const r = await postern(['queue', 'list', '--data-dir', join(dir, 'data')]);
      return /someone@down\.test\s+\[deferred/.test(r.stdout) && r.stdout;
    });
    assert.match(listed, /<me@sender\.test>/);
    const id = /^(\S+)\s+\S+\s+<me@sender\.test>/m.exec(listed)?.[1];
    assert.ok(id, listed);
    const dataDir = ['--data-dir', join(dir, 'data')];
    const held = await postern(['queue', 'hold', id, ...dataDir]);
    assert.equal(held.code, 0, held.stderr);
    assert.match((await postern(['queue', 'list', ...dataDir])).stdout, /someone@down\.test\s+\[held/);
    const released = await postern(['queue', 'release', id, ...dataDir]);
    assert.equal(released.code, 0, released.stderr);
    assert.match(released.stdout, /released/);
    const missing = await postern(['queue', 'show', 'no-such-id', ...dataDir]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not queued/);
  });

  it('SIGINT stops every process postern local started', async () => {
    const pids = Object.values(
      JSON.parse(readFileSync(join(dir, 'data', 'pids.json'), 'utf8')) as Record<string, number>,
    );
    assert.ok(pids.length >= 4);
    const exited = new Promise<number | null>((resolve) => local.once('exit', (code) => resolve(code)));
    local.kill('SIGINT');
    assert.equal(await exited, 0);
    await eventually('every child gone', () => pids.every((pid) => !isAlive(pid)), 30_000);
  });
});
