import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildCrd, CRD_DIRS, renderCrds, toStructural } from '../../../operator/crd-gen.ts';

describe('CRD generation', () => {
  it('the committed CRDs in crds/ and the chart equal what operator/crd-gen.ts generates (run npm run crds)', () => {
    for (const dir of CRD_DIRS) {
      for (const [file, text] of renderCrds()) {
        assert.equal(readFileSync(join(dir, file), 'utf8'), text, `${dir}/${file} is stale`);
      }
    }
  });

  it('turns unions of literals into enums and drops additionalProperties: false', () => {
    const s = toStructural({
      type: 'object',
      additionalProperties: false,
      properties: {
        tls: {
          anyOf: [
            { const: 'a', type: 'string' },
            { const: 'b', type: 'string' },
          ],
        },
      },
    });
    assert.deepEqual(s, { type: 'object', properties: { tls: { type: 'string', enum: ['a', 'b'] } } });
  });

  it('rewrites a length look-ahead (not RE2) into minLength/maxLength', () => {
    const s = toStructural({ type: 'string', maxLength: 300, pattern: '^(?=.{1,253}$)[a-z]+$' });
    assert.deepEqual(s, { type: 'string', maxLength: 253, minLength: 1, pattern: '^[a-z]+$' });
  });

  it('keeps CEL rules and adds the status subresource and printer columns', () => {
    const crd = JSON.stringify(buildCrd('RelayPolicy'));
    assert.match(crd, /isCIDR/);
    assert.match(crd, /"subresources":\{"status":\{\}\}/);
    assert.match(crd, /\.spec\.delivery\.pool/);
    assert.match(crd, /"shortNames":\["rp"\]/);
  });
});
