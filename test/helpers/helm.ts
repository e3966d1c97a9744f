/**
 * Test helper: the real helm binary (scripts/test-bins.sh helm, built once and cached) and the chart it renders.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CHART_DIR = join(ROOT, 'charts/postern');
/** The kube-apiserver version the tests run against (scripts/test-bins.sh K8S_VERSION). */
export const KUBE_VERSION = '1.34.4';

/** Path of the helm binary: $HELM_BIN or the cached build. */
export function findHelm(): string {
  if (process.env['HELM_BIN']) return process.env['HELM_BIN'];
  const out = execFileSync('bash', [join(ROOT, 'scripts/test-bins.sh'), 'helm'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const bin = /HELM_BIN=(.*)/.exec(out)?.[1]?.trim();
  if (!bin) throw new Error('could not provide helm (see scripts/test-bins.sh)');
  return bin;
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs helm with `args`; never throws on a non-zero exit (tests assert on it). */
export function runHelm(helm: string, args: string[], env: NodeJS.ProcessEnv = {}): HelmResult {
  // Isolate helm from the developer's config, cache and kube context.
  const r = spawnSync(helm, args, {
    encoding: 'utf8',
    timeout: 120_000,
    env: {
      PATH: process.env['PATH'],
      HOME: process.env['HOME'],
      HELM_CONFIG_HOME: '/nonexistent-helm-config',
      KUBECONFIG: '/nonexistent-kubeconfig',
      ...env,
    },
  });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? String(r.error ?? '') };
}

/** `helm template` of the chart as release `release` in `namespace`; throws with helm's message on failure. */
export function renderChart(
  helm: string,
  opts: {
    release?: string;
    namespace?: string;
    valuesFiles?: string[];
    set?: string[];
    includeCrds?: boolean;
  } = {},
): KubernetesObject[] {
  const args = [
    'template',
    opts.release ?? 'mta',
    CHART_DIR,
    '--namespace',
    opts.namespace ?? 'postern',
    '--kube-version',
    KUBE_VERSION,
    ...(opts.includeCrds ? ['--include-crds'] : []),
    ...(opts.valuesFiles ?? []).flatMap((f) => ['--values', f]),
    ...(opts.set ?? []).flatMap((s) => ['--set', s]),
  ];
  const r = runHelm(helm, args);
  if (r.code !== 0) throw new Error(`helm template failed (${r.code}): ${r.stderr}`);
  return parseManifests(r.stdout);
}

/** Kubernetes objects in a multi-document YAML stream (empty documents dropped). */
export function parseManifests(text: string): KubernetesObject[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`invalid YAML from helm: ${d.errors[0]?.message}`);
      return d.toJS() as KubernetesObject | null;
    })
    .filter((o): o is KubernetesObject => Boolean(o?.kind));
}
