/**
 * RelayPolicy reconciler. One pass, top-down:
 * deletion (finalizer removes the KV document) → finalizer present → valid spec → referenced Secrets
 * (missing → Ready=False/SecretNotFound and retry with backoff) → resolved PolicyConfig in KV (AUTH users as
 * scrypt hashes only, HTTP API keys as SHA-256 hashes only) → status with matchedDomains.
 */
import type { KubernetesObject, V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { verifyPassword } from '../../services/common/config/password.ts';
import { MissingSecretError, resolveRelayPolicy } from '../../services/common/config/resolve.ts';
import { type PolicyConfig, policyKey } from '../../services/common/config/resolved.ts';
import type { RelayPolicy, RelayPolicySpec } from '../../services/common/config/schema.ts';
import { validateResource } from '../../services/common/config/validate.ts';
import { type SecretBox, sealedValuesIn, stableBox } from '../../services/common/secrets.ts';
import type { Reconcile } from '../runtime/controller.ts';
import type { CustomResources } from '../runtime/custom-resources.ts';
import type { EventRecorder } from '../runtime/events.ts';
import { type Informer, objectKey } from '../runtime/informer.ts';
import type { ConfigKv } from './config-kv.ts';
import { FINALIZER, type Status, writeStatus } from './status.ts';

export type RelayPolicyObject = KubernetesObject & { spec: RelayPolicySpec; status?: Status };

export interface RelayPolicyDeps {
  informer: Informer<RelayPolicyObject>;
  secrets: Informer<V1Secret>;
  resources: CustomResources<RelayPolicyObject>;
  kv: ConfigKv;
  events: EventRecorder;
  logger: Logger;
  /** Seals smarthost passwords before they go to KV (services/common/secrets.ts). */
  secretBox?: SecretBox | undefined;
}

/** Names of the Secrets a policy reads (in its own namespace). */
export function referencedSecrets(spec: RelayPolicySpec): string[] {
  return [
    spec.clients?.authSecretRef?.name,
    spec.delivery?.smarthost?.authSecretRef?.name,
    spec.arcSeal?.keySecretRef.name,
    spec.api?.keysSecretRef.name,
  ].filter((n): n is string => !!n);
}

/** Keys of the policies to reconcile when a Secret changes: those in its namespace that reference it. */
export function policiesUsingSecret(informer: Informer<RelayPolicyObject>, secret: V1Secret): string[] {
  const { namespace, name } = secret.metadata ?? {};
  return informer
    .list()
    .filter((p) => p.metadata?.namespace === namespace && referencedSecrets(p.spec).includes(name ?? ''))
    .map(objectKey);
}

export function relayPolicyReconciler(deps: RelayPolicyDeps): Reconcile {
  const { informer, resources, kv } = deps;

  return async (key) => {
    const rp = informer.get(key);
    if (!rp) return undefined;
    const namespace = rp.metadata!.namespace!;
    const kvKey = policyKey(namespace, rp.metadata!.name!);
    const finalizers = rp.metadata?.finalizers ?? [];

    if (rp.metadata?.deletionTimestamp) {
      if (!finalizers.includes(FINALIZER)) return undefined;
      await kv.remove(kvKey);
      await resources.setFinalizers(
        rp,
        finalizers.filter((f) => f !== FINALIZER),
      );
      deps.logger.info({ key }, 'policy config removed');
      return undefined;
    }

    if (!finalizers.includes(FINALIZER)) {
      await resources.setFinalizers(rp, [...finalizers, FINALIZER]);
      return undefined;
    }

    const problems = validateResource(rp);
    if (problems.length) {
      await writeStatus(deps, rp, { Ready: ['False', 'InvalidSpec', problems.join('; ')] });
      return undefined;
    }

    const lookup = (name: string) => {
      const s = deps.secrets.get(`${namespace}/${name}`);
      if (!s) return undefined;
      return Object.fromEntries(
        Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
      );
    };
    let doc: PolicyConfig;
    try {
      const box = deps.secretBox && stableBox(deps.secretBox, sealedValuesIn(await kv.read(kvKey)));
      doc = resolveRelayPolicy(rp as unknown as RelayPolicy, lookup, box);
    } catch (err) {
      if (!(err instanceof MissingSecretError)) throw err;
      await writeStatus(deps, rp, { Ready: ['False', 'SecretNotFound', err.message] });
      // Thrown so the key retries with backoff; the Secret watch also re-queues it as soon as it appears.
      throw err;
    }
    await keepUnchangedHashes(kv, kvKey, doc, lookup(rp.spec.clients.authSecretRef?.name ?? '') ?? {});
    if (await kv.putIfChanged(kvKey, doc)) deps.logger.info({ key }, 'policy config published');

    await writeStatus(
      deps,
      rp,
      { Ready: ['True', 'Configured', `policy ${kvKey} is live`] },
      { matchedDomains: doc.senderDomains ?? ['*'] },
    );
    return undefined;
  };
}

/**
 * Hashes are salted, so re-hashing an unchanged password would produce a new document on every reconcile and
 * wake every service's config watcher. Keep the stored hash when it still verifies the current password.
 */
async function keepUnchangedHashes(
  kv: ConfigKv,
  kvKey: string,
  doc: PolicyConfig,
  passwords: Record<string, string>,
): Promise<void> {
  const stored = await kv.read<PolicyConfig>(kvKey);
  if (!stored) return;
  for (const user of doc.users) {
    const prev = stored.users.find((u) => u.name === user.name);
    const pass = passwords[user.name];
    if (prev && pass !== undefined && verifyPassword(pass, prev.hash)) user.hash = prev.hash;
  }
}
