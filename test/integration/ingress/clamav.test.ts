/**
 * ClamAV through rspamd, set up as docs/ingress.md "ClamAV through rspamd" says: the real clamd (with a local
 * test signature), the real rspamd's antivirus module asking it, and the ingress asking rspamd.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { domainKey } from '../../../services/common/config/resolved.ts';
import { EICAR, startTestClamd, type TestClamd } from '../../helpers/clamd.ts';
import { startTestRspamd, type TestRspamd } from '../../helpers/rspamd.ts';
import { type Harness, serverReplies, startHarness, swaks } from './ingress-harness.ts';

describe('ClamAV through rspamd (real clamd, real rspamd, real nats-server, swaks)', () => {
  let clamd: TestClamd;
  let rspamd: TestRspamd;
  let h: Harness;
  let files: string;
  let eicarFile: string;
  const send = (extra: string[]) =>
    swaks(h.port('mx'), ['--from', 'someone@far.example', '--to', 'alice@ours.example', ...extra]);
  // As a virus arrives: an attachment (application/octet-stream, base64), which rspamd hands to clamd decoded.
  const withVirus = () => ['--body', 'Please see the attachment.', '--attach', eicarFile];

  before(async () => {
    files = mkdtempSync(join(tmpdir(), 'postern-clamav-'));
    eicarFile = join(files, 'invoice.com');
    writeFileSync(eicarFile, EICAR);
    clamd = await startTestClamd();
    rspamd = await startTestRspamd({ clamd: clamd.address });
    h = await startHarness({
      listeners: [{ name: 'mx', host: '127.0.0.1', port: 0, mode: 'relay' }],
      settings: {
        contentFilter: { url: rspamd.url, timeoutMs: 10_000, failMode: 'open', maxSize: 1024 * 1024 },
      },
      documents: {
        [domainKey('ours.example')]: {
          source: 'mail/ours',
          domain: 'ours.example',
          inbound: { enabled: true },
        },
      },
    });
  });
  after(async () => {
    await h?.stop();
    await rspamd?.close();
    await clamd?.close();
    rmSync(files, { recursive: true, force: true });
  });

  it('refuses a message carrying a virus with 550 5.7.1 naming it, and queues nothing', async () => {
    const r = await send(withVirus());
    assert.ok(
      serverReplies(r.output).includes('550 5.7.1 clamav: virus found: "Postern.Test.Eicar.UNOFFICIAL"'),
      r.output,
    );
    assert.equal(await h.nextEnvelope(1000), undefined);
  });

  it('accepts a clean message', async () => {
    const r = await send(['--body', 'Nothing to see here.']);
    assert.equal(r.code, 0, r.output);
    assert.ok(await h.nextEnvelope());
  });

  it('keeps mail flowing when clamd is down: rspamd still answers, so fail-open/closed is not involved', async () => {
    await clamd.close();
    const r = await send(withVirus());
    assert.equal(r.code, 0, r.output);
    assert.ok(await h.nextEnvelope());
  });
});
