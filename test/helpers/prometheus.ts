/**
 * Test helper: the Prometheus binary the tests run (scripts/test-bins.sh prometheus: built once from its Go module
 * and cached). Debian's package is built without kubernetes_sd_configs, which the cluster tier needs; the e2e tier
 * uses the same binary so there is one Prometheus.
 */
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Path of the prometheus binary: $PROMETHEUS_BIN or the cached build. */
export function findPrometheus(): string {
  if (process.env['PROMETHEUS_BIN']) return process.env['PROMETHEUS_BIN'];
  const out = execFileSync('bash', [join(ROOT, 'scripts/test-bins.sh'), 'prometheus'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const bin = /PROMETHEUS_BIN=(.*)/.exec(out)?.[1]?.trim();
  if (!bin) throw new Error('could not provide prometheus (see scripts/test-bins.sh)');
  return bin;
}
