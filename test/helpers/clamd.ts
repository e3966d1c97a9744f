/**
 * Test helper: the real clamd (Debian package `clamav-daemon`) on loopback TCP, with a signature database of one
 * signature we write ourselves — no freshclam, no download: it detects the EICAR test string as
 * `Postern.Test.Eicar.UNOFFICIAL` (clamd's suffix for signatures outside the official databases).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDaemon } from './daemon.ts';
import { freePort } from './smtp-sink.ts';

export const CLAMD = process.env['CLAMD'] ?? '/usr/sbin/clamd';

/** The EICAR anti-virus test file (https://www.eicar.org): harmless, recognised by every scanner. */
export const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';

export interface TestClamd {
  /** `127.0.0.1:PORT`, clamd's TCP socket (rspamd's antivirus `servers`). */
  address: string;
  close(): Promise<void>;
}

/** Whether clamd answers its PING command (clamd protocol: `zPING\0` → `PONG\0`). */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port }, () => s.write('zPING\0'));
    s.once('data', (d) => {
      s.destroy();
      resolve(d.toString().startsWith('PONG'));
    });
    s.once('error', () => resolve(false));
  });
}

export async function startTestClamd(): Promise<TestClamd> {
  const dir = mkdtempSync(join(tmpdir(), 'postern-clamd-'));
  const db = join(dir, 'db');
  mkdirSync(db);
  // An extended signature (.ndb): name, any file type, any offset, the hex of the EICAR string.
  writeFileSync(join(db, 'postern.ndb'), `Postern.Test.Eicar:0:*:${Buffer.from(EICAR).toString('hex')}\n`);
  const port = await freePort('127.0.0.1');
  writeFileSync(
    join(dir, 'clamd.conf'),
    [
      'Foreground yes',
      `TCPSocket ${port}`,
      'TCPAddr 127.0.0.1',
      `DatabaseDirectory ${db}`,
      `LogFile ${join(dir, 'clamd.log')}`,
      '',
    ].join('\n'),
  );
  const daemon = startDaemon(CLAMD, ['-c', join(dir, 'clamd.conf')], dir);
  const deadline = Date.now() + 60_000;
  while (!(await ping(port))) {
    if (daemon.exited() || Date.now() > deadline) {
      await daemon.close();
      throw new Error(`clamd did not answer on 127.0.0.1:${port}: ${daemon.stderr().slice(-2000)}`);
    }
    await sleep(200);
  }
  return { address: `127.0.0.1:${port}`, close: daemon.close };
}
