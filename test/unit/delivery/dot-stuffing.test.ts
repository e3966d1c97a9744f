/**
 * The fast SMTP DATA encoder (services/delivery/dot-stuffing.ts) against nodemailer's own DataStream: the same
 * bytes out for random messages (CR, LF, dots and text in every combination) split at random chunk boundaries.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import DataStream from 'nodemailer/lib/smtp-connection/data-stream.js';
import { encodeChunk, installFastDotStuffing } from '../../../services/delivery/dot-stuffing.ts';

/** Runs chunks through a DataStream and collects everything it emits, terminator included. */
function viaDataStream(chunks: Buffer[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = new DataStream();
    const out: Buffer[] = [];
    s.on('data', (b: Buffer) => out.push(b));
    s.on('end', () => resolve(Buffer.concat(out)));
    s.on('error', reject);
    for (const c of chunks) s.write(c);
    s.end();
  });
}

/** encodeChunk over the same chunks (without the terminator DataStream's flush adds). */
function viaEncodeChunk(chunks: Buffer[]): Buffer {
  let last: number | false = false;
  const out: Buffer[] = [];
  for (const c of chunks) {
    if (c.length === 0) continue;
    out.push(encodeChunk(c, last));
    last = c[c.length - 1]!;
  }
  return Buffer.concat(out);
}

const message = fc
  .array(fc.constantFrom('\r', '\n', '.', 'a', '\r\n', '\r\n.', '..', 'text '), { maxLength: 60 })
  .map((parts) => Buffer.from(parts.join(''), 'latin1'));

/** A message and cut points that split it into chunks. */
const chunked = message.chain((m) =>
  fc.uniqueArray(fc.integer({ min: 0, max: m.length }), { maxLength: 6 }).map((cuts) => {
    const at = [0, ...cuts.sort((a, b) => a - b), m.length];
    return at.slice(1).map((end, i) => m.subarray(at[i]!, end));
  }),
);

describe('fast DATA encoding: the same output as nodemailer’s DataStream', () => {
  it('agrees with DataStream on random messages and chunkings (before it is installed)', async () => {
    await fc.assert(
      fc.asyncProperty(chunked, async (chunks) => {
        const expected = await viaDataStream(chunks);
        const ours = viaEncodeChunk(chunks);
        // DataStream ends with the terminator; the rest must be byte for byte ours.
        assert.deepEqual(ours, expected.subarray(0, ours.length));
        assert.ok(/^(\r\n)?\.\r\n$|^\n\.\r\n$/.test(expected.subarray(ours.length).toString('latin1')));
      }),
      { numRuns: 2000, seed: 20261126 },
    );
  });

  it('known cases: stuffing at the start, after CRLF, after a bare CR; bare CR and LF made CRLF', () => {
    const enc = (s: string) => encodeChunk(Buffer.from(s, 'latin1'), false).toString('latin1');
    assert.equal(enc('.a\r\n.b\r\n'), '..a\r\n..b\r\n');
    assert.equal(enc('a\rb\nc'), 'a\r\nb\r\nc');
    assert.equal(enc('a\r.b'), 'a\r\n..b');
    assert.equal(enc('no breaks at all'), 'no breaks at all');
  });

  it('once installed, DataStream emits the same bytes as before', async () => {
    const chunks = [Buffer.from('.x\r\nline\n.'), Buffer.from('\r.end\r'), Buffer.from('\n')];
    const before = await viaDataStream(chunks);
    installFastDotStuffing();
    assert.deepEqual(await viaDataStream(chunks), before);
  });
});
