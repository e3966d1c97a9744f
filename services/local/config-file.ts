/**
 * Local-mode configuration: a multi-document YAML file of MailDomain, RelayPolicy, Webhook and Secret documents — the
 * exact documents a user would `kubectl apply` — validated with the CRD schemas and resolved with the same code
 * the operator uses, then written to the KV bucket the services watch.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { parseAllDocuments } from 'yaml';
import { resolveMailDomain, resolveRelayPolicy } from '../common/config/resolve.ts';
import { CONFIG_BUCKET, domainKey, policyKey } from '../common/config/resolved.ts';
import type { MailDomain, RelayPolicy, Webhook } from '../common/config/schema.ts';
import { validateResource } from '../common/config/validate.ts';
import { resolveWebhook, WEBHOOK_BUCKET, webhookKey } from '../common/config/webhook.ts';
import type { SecretBox } from '../common/secrets.ts';
import { INGRESS_SETTINGS_KIND, type IngressSettingsDoc, ingressSettingsOf } from './ingress-settings.ts';

export class ConfigFileError extends Error {}

/** Local mode's secrets key (created on first start, mode 0600): `postern local` and `postern apply` seal with it. */
export const localKeyFile = (dataDir: string) => join(dataDir, 'secrets.key');

interface SecretDoc {
  kind: 'Secret';
  metadata: { name: string; namespace?: string };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

/**
 * Parses and validates a config file; throws ConfigFileError listing every problem found.
 * @param box seals smarthost passwords and DKIM keys (local mode: `<data dir>/secrets.key`, docs/secrets.md).
 */
export function loadConfigFile(path: string, box?: SecretBox): Map<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigFileError(`cannot read ${path}: ${(err as Error).message}`);
  }
  return resolveConfigText(text, path, box);
}

/**
 * Entries under this prefix belong to the `webhooks` bucket (key without the prefix), not to `config`: they
 * carry HMAC keys that only the webhook dispatcher needs (services/common/config/webhook.ts).
 */
export const WEBHOOK_PREFIX = 'webhook.';

/**
 * Resolves YAML text to KV entries (`domain.<d>` / `policy.<ns>.<name>` → document, and
 * `webhook.<ns>.<name>` → a Webhook document for the `webhooks` bucket).
 */
export function resolveConfigText(text: string, origin = 'config', box?: SecretBox): Map<string, unknown> {
  const problems: string[] = [];
  const docs: { index: number; doc: Record<string, unknown> }[] = [];
  parseAllDocuments(text).forEach((d, index) => {
    if (d.errors.length) {
      problems.push(...d.errors.map((e) => `${origin} document ${index + 1}: ${e.message}`));
      return;
    }
    const doc = d.toJS() as Record<string, unknown> | null;
    if (doc) docs.push({ index, doc });
  });
  const secrets = new Map<string, Record<string, string>>();
  for (const { doc } of docs) {
    if (doc['kind'] !== 'Secret') continue;
    const s = doc as unknown as SecretDoc;
    const decoded = Object.fromEntries(
      Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(String(v), 'base64').toString('utf8')]),
    );
    secrets.set(`${s.metadata.namespace ?? 'default'}/${s.metadata.name}`, { ...decoded, ...s.stringData });
  }
  const entries = new Map<string, unknown>();
  const owners = new Map<string, string>();
  let ingressSettings = 0;
  for (const { index, doc } of docs) {
    if (doc['kind'] === 'Secret') continue;
    if (doc['kind'] === INGRESS_SETTINGS_KIND) {
      // Local mode's ingress settings (ingress-settings.ts): checked here, applied by local-mode.ts, not in KV.
      if (++ingressSettings > 1)
        problems.push(`${origin} document ${index + 1}: at most one ${INGRESS_SETTINGS_KIND}`);
      try {
        ingressSettingsOf(doc as unknown as IngressSettingsDoc);
      } catch (err) {
        problems.push(
          `${origin} document ${index + 1} (${INGRESS_SETTINGS_KIND}): ${(err as Error).message}`,
        );
      }
      continue;
    }
    const where = `${origin} document ${index + 1} (${String(doc['kind'])} ${String((doc['metadata'] as { name?: string })?.name)})`;
    const errors = validateResource(doc);
    if (errors.length) {
      problems.push(...errors.map((e) => `${where}: ${e}`));
      continue;
    }
    const ns = (doc['metadata'] as { namespace?: string }).namespace ?? 'default';
    const lookup = (name: string) => secrets.get(`${ns}/${name}`);
    try {
      if (doc['kind'] === 'MailDomain') {
        const md = doc as unknown as MailDomain;
        const dkim = md.spec.outbound?.dkim;
        const keySecret = dkim ? lookup(dkim.keySecretRef?.name ?? `${md.metadata.name}-dkim`) : undefined;
        const key = domainKey(md.spec.domain.toLowerCase());
        if (owners.has(key)) {
          problems.push(`${where}: domain ${md.spec.domain} is already declared by ${owners.get(key)}`);
          continue;
        }
        owners.set(key, where);
        entries.set(key, resolveMailDomain(md, keySecret?.[dkim?.keySecretRef?.key ?? 'private.key'], box));
      } else if (doc['kind'] === 'Webhook') {
        const wh = doc as unknown as Webhook;
        entries.set(`${WEBHOOK_PREFIX}${webhookKey(ns, wh.metadata.name)}`, resolveWebhook(wh, lookup));
      } else {
        const rp = doc as unknown as RelayPolicy;
        entries.set(policyKey(ns, rp.metadata.name), resolveRelayPolicy(rp, lookup, box));
      }
    } catch (err) {
      problems.push(`${where}: ${(err as Error).message}`);
    }
  }
  if (problems.length) throw new ConfigFileError(problems.join('\n'));
  return entries;
}

/**
 * Writes entries to the `config` bucket. With `prune`, keys not in `entries` are deleted (local mode start:
 * the file is the whole truth); without it this behaves like `kubectl apply` (create or update only).
 */
export async function writeConfig(
  nc: NatsConnection,
  entries: Map<string, unknown>,
  prune: boolean,
): Promise<{ written: number; deleted: number }> {
  const kvm = new Kvm(nc);
  const buckets = [
    { kv: await kvm.create(CONFIG_BUCKET, { history: 5 }), prefix: '' },
    { kv: await kvm.create(WEBHOOK_BUCKET, { history: 1 }), prefix: WEBHOOK_PREFIX },
  ];
  const bucketOf = (key: string) => (key.startsWith(WEBHOOK_PREFIX) ? buckets[1]! : buckets[0]!);
  let deleted = 0;
  if (prune) {
    for (const { kv, prefix } of buckets) {
      for await (const key of await kv.keys()) {
        if (!entries.has(`${prefix}${key}`)) {
          await kv.delete(key);
          deleted++;
        }
      }
    }
  }
  for (const [key, value] of entries) {
    const { kv, prefix } = bucketOf(key);
    await kv.put(key.slice(prefix.length), JSON.stringify(value));
  }
  return { written: entries.size, deleted };
}
