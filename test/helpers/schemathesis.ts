/** Test helper: the schemathesis CLI from PyPI (scripts/python-tools.sh, a venv cached by version). */
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Path of `st`: $SCHEMATHESIS_BIN or the cached venv (installed on first use). */
export function findSchemathesis(): string {
  if (process.env['SCHEMATHESIS_BIN']) return process.env['SCHEMATHESIS_BIN'];
  const out = execFileSync('bash', [join(ROOT, 'scripts/python-tools.sh'), 'schemathesis'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const bin = /SCHEMATHESIS_BIN=(.*)/.exec(out)?.[1]?.trim();
  if (!bin) throw new Error('could not provide schemathesis (see scripts/python-tools.sh)');
  return bin;
}
