/**
 * Test helper: the chart's rendered NATS server configuration made runnable on this machine — nats.conf with the
 * pod's paths (TLS files, store, pid file) mapped to a test directory, a server certificate from a test CA, and
 * the environment the rendered StatefulSet gives nats-server (bcrypt hashes from the rendered Secret).
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type {
  KubernetesObject,
  V1ConfigMap,
  V1Container,
  V1Secret,
  V1StatefulSet,
} from '@kubernetes/client-node';
import type { TestCa } from './test-ca.ts';

export function findObject<T extends KubernetesObject>(
  objs: KubernetesObject[],
  kind: string,
  name: string,
): T {
  const o = objs.find((x) => x.kind === kind && x.metadata?.name === name);
  assert.ok(o, `${kind} ${name} rendered`);
  return o as T;
}

/** The rendered Secrets' data, decoded, by Secret name. */
export function renderedSecrets(objs: KubernetesObject[]): Record<string, Record<string, string>> {
  return Object.fromEntries(
    objs
      .filter((o): o is V1Secret => o.kind === 'Secret')
      .map((s) => [
        s.metadata!.name!,
        Object.fromEntries(
          Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
        ),
      ]),
  );
}

/** The environment a rendered container gets, Secret references resolved from the rendered Secrets. */
export function containerEnv(
  c: V1Container,
  secrets: Record<string, Record<string, string>>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    const ref = e.valueFrom?.secretKeyRef;
    if (e.value !== undefined) env[e.name] = e.value;
    else if (ref) env[e.name] = secrets[ref.name ?? '']?.[ref.key] ?? '';
  }
  return env;
}

/**
 * Writes `<dir>/nats.conf` and `<dir>/tls/{tls.crt,tls.key,ca.crt}` (a certificate for 127.0.0.1 and localhost
 * from `ca`) and returns the conf path and nats-server's environment.
 */
export function runnableNatsConf(
  objs: KubernetesObject[],
  fullname: string,
  dir: string,
  ca: TestCa,
): { conf: string; env: Record<string, string>; caFile: string } {
  const tlsDir = join(dir, 'tls');
  mkdirSync(tlsDir, { recursive: true });
  const cert = ca.issue(['127.0.0.1', 'localhost']);
  writeFileSync(join(tlsDir, 'tls.crt'), cert.cert);
  writeFileSync(join(tlsDir, 'tls.key'), cert.key);
  writeFileSync(join(tlsDir, 'ca.crt'), ca.caPem);
  const text = findObject<V1ConfigMap>(objs, 'ConfigMap', `${fullname}-nats`)
    .data!['nats.conf']!.replaceAll('/etc/nats-tls/', `${tlsDir}/`)
    .replace('store_dir: /data', `store_dir: ${JSON.stringify(join(dir, 'store'))}`)
    .replace('/var/run/nats/nats.pid', join(dir, 'nats.pid'));
  const conf = join(dir, 'nats.conf');
  writeFileSync(conf, text);
  const sts = findObject<V1StatefulSet>(objs, 'StatefulSet', `${fullname}-nats`);
  const env = containerEnv(sts.spec!.template.spec!.containers[0]!, renderedSecrets(objs));
  return { conf, env: { ...env, SERVER_NAME: `${fullname}-nats-0` }, caFile: join(tlsDir, 'ca.crt') };
}
