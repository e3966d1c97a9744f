/**
 * Clients and peers nobody here wrote: Postfix's smtp-source sends through Postern, and Postfix's smtp-sink
 * plays the smarthost. Every message smtp-source sent must be received by smtp-sink.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../services/local/nats-server.ts';
import { eventually, smarthostRelayConfig, startPostern, type TestPostern } from '../helpers/postern.ts';

/** Postfix's test tools live in /usr/sbin (Debian package postfix). */
const bin = (name: string) => `/usr/sbin/${name}`;

describe('interoperability with Postfix tools', () => {
  let postern: TestPostern;
  let dumpDir: string;
  let sink: ReturnType<typeof spawn>;

  before(async () => {
    dumpDir = mkdtempSync(join(tmpdir(), 'postern-smtp-sink-'));
    chmodSync(dumpDir, 0o777);
    const port = await freePort('127.0.0.11');
    // -u nobody: smtp-sink refuses to run as root; -d: one file per received message.
    sink = spawn(
      bin('smtp-sink'),
      ['-u', 'nobody', '-d', join(dumpDir, 'msg.'), `127.0.0.11:${port}`, '100'],
      { stdio: 'ignore' },
    );
    postern = await startPostern({
      config: smarthostRelayConfig({ host: '127.0.0.11', port, networks: '127.0.0.0/8' }),
    });
  });
  after(async () => {
    await postern?.cleanup();
    sink?.kill('SIGTERM');
    rmSync(dumpDir, { recursive: true, force: true });
  });

  const countDumped = (): number => {
    let n = 0;
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(dir, e.name));
        else n++;
      }
    };
    walk(dumpDir);
    return n;
  };

  it('relays every message smtp-source sends (reused sessions, several recipients) to smtp-sink', async () => {
    const messages = 200;
    // -s 4 sessions, -m messages in total, -r 2 recipients each, -l 2048 bytes, -N unique recipients.
    await new Promise<void>((resolve, reject) =>
      execFile(
        bin('smtp-source'),
        [
          '-s',
          '4',
          '-m',
          String(messages),
          '-r',
          '2',
          '-l',
          '2048',
          '-f',
          'source@sender.test',
          '-t',
          'rcpt@remote.test',
          `127.0.0.1:${postern.smtpPort}`,
        ],
        { timeout: 120_000 },
        (err, _out, stderr) => (err ? reject(new Error(`smtp-source failed: ${stderr}`)) : resolve()),
      ),
    );
    await eventually(`${messages} messages dumped by smtp-sink`, () => countDumped() >= messages, 120_000);
    assert.ok(countDumped() >= messages);
  });
});
