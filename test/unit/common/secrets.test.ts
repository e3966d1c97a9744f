import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  ensureKeyFile,
  isSealed,
  openSealed,
  parseKeyFile,
  SECRET_CONTEXT,
  SecretBoxError,
  sealedValuesIn,
  secretBox,
  stableBox,
} from '../../../services/common/secrets.ts';

describe('secret box (sealed values in NATS)', () => {
  const box = secretBox([randomBytes(32)]);
  const ctx = SECRET_CONTEXT.smarthostPassword('relay.example', 587, 'postern');

  it('seals to text that hides the secret and opens back for the same context', () => {
    const sealed = box.seal('hunter2', ctx);
    assert.ok(isSealed(sealed));
    assert.doesNotMatch(sealed, /hunter2/);
    assert.notEqual(box.seal('hunter2', ctx), sealed, 'a random IV per seal');
    assert.equal(box.open(sealed, ctx), 'hunter2');
  });

  it('refuses another context, another key, altered text and plain text', () => {
    const sealed = box.seal('hunter2', ctx);
    assert.throws(
      () => box.open(sealed, SECRET_CONTEXT.smarthostPassword('evil.example', 587, 'postern')),
      SecretBoxError,
    );
    assert.throws(() => secretBox([randomBytes(32)]).open(sealed, ctx), /unknown key/);
    const flipped = sealed.slice(0, -2) + (sealed.endsWith('A') ? 'B' : 'A') + sealed.slice(-1);
    assert.throws(() => box.open(flipped, ctx), SecretBoxError);
    assert.throws(() => box.open('hunter2', ctx), /not a sealed value/);
  });

  it('a keyring opens values sealed with an older key and seals with the first (rotation)', () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const sealedOld = secretBox([oldKey]).seal('k', ctx);
    const ring = secretBox([newKey, oldKey]);
    assert.equal(ring.open(sealedOld, ctx), 'k');
    assert.equal(secretBox([newKey]).open(ring.seal('k', ctx), ctx), 'k');
  });

  it('a value from before sealing (a job queued by the previous version) is used as it is; a sealed one must open', () => {
    assert.equal(openSealed(box, 'legacy-clear', ctx), 'legacy-clear');
    assert.equal(openSealed(box, box.seal('s', ctx), ctx), 's');
    assert.throws(() => openSealed(undefined, box.seal('s', ctx), ctx), /no secrets key/);
    assert.throws(() => openSealed(secretBox([randomBytes(32)]), box.seal('s', ctx), ctx), SecretBoxError);
  });

  it('a stable box reuses the previous sealed text of an unchanged secret only', () => {
    const prev = box.seal('hunter2', ctx);
    const doc = { a: [{ pass: prev }], b: 'plain' };
    assert.deepEqual(sealedValuesIn(doc), [prev]);
    const stable = stableBox(box, sealedValuesIn(doc));
    assert.equal(stable.seal('hunter2', ctx), prev);
    assert.notEqual(stable.seal('changed', ctx), prev);
    assert.notEqual(stable.seal('hunter2', SECRET_CONTEXT.dkimKey('x.test', 's')), prev);
  });

  it('a generated key file is private, parses to one 32-byte key and is kept on the next start', () => {
    const dir = mkdtempSync(join(tmpdir(), 'postern-key-'));
    try {
      const file = ensureKeyFile(join(dir, 'secrets.key'));
      const text = readFileSync(file, 'utf8');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(parseKeyFile(text)[0]?.length, 32);
      ensureKeyFile(file);
      assert.equal(readFileSync(file, 'utf8'), text);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
