/**
 * Webhook reconciler. One pass, top-down like the RelayPolicy one:
 * deletion (finalizer removes the KV document, so the dispatcher stops the endpoint) → finalizer present → valid
 * spec → the HMAC Secret (missing → Ready=False/SecretNotFound, retried with backoff and on the Secret's arrival)
 * → resolved WebhookConfig in the KV bucket `webhooks` (not `config`: only the dispatcher reads the key) → status.
 */
import type { KubernetesObject, V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { MissingSecretError } from '../../services/common/config/resolve.ts';
import type { Webhook, WebhookSpec } from '../../services/common/config/schema.ts';
import { validateResource } from '../../services/common/config/validate.ts';
import { resolveWebhook, webhookKey } from '../../services/common/config/webhook.ts';
import type { Reconcile } from '../runtime/controller.ts';
import type { CustomResources } from '../runtime/custom-resources.ts';
import type { EventRecorder } from '../runtime/events.ts';
import { type Informer, objectKey } from '../runtime/informer.ts';
import type { ConfigKv } from './config-kv.ts';
import { FINALIZER, type Status, writeStatus } from './status.ts';

export type WebhookObject = KubernetesObject & { spec: WebhookSpec; status?: Status };

export interface WebhookDeps {
  informer: Informer<WebhookObject>;
  secrets: Informer<V1Secret>;
  resources: CustomResources<WebhookObject>;
  /** The `webhooks` bucket. */
  kv: ConfigKv;
  events: EventRecorder;
  logger: Logger;
}

/** Keys of the Webhooks to reconcile when a Secret changes: those in its namespace that reference it. */
export function webhooksUsingSecret(informer: Informer<WebhookObject>, secret: V1Secret): string[] {
  const { namespace, name } = secret.metadata ?? {};
  return informer
    .list()
    .filter((w) => w.metadata?.namespace === namespace && w.spec?.secretRef?.name === name)
    .map(objectKey);
}

export function webhookReconciler(deps: WebhookDeps): Reconcile {
  const { informer, resources, kv } = deps;

  return async (key) => {
    const wh = informer.get(key);
    if (!wh) return undefined;
    const namespace = wh.metadata!.namespace!;
    const kvKey = webhookKey(namespace, wh.metadata!.name!);
    const finalizers = wh.metadata?.finalizers ?? [];

    if (wh.metadata?.deletionTimestamp) {
      if (!finalizers.includes(FINALIZER)) return undefined;
      await kv.remove(kvKey);
      await resources.setFinalizers(
        wh,
        finalizers.filter((f) => f !== FINALIZER),
      );
      deps.logger.info({ key }, 'webhook config removed');
      return undefined;
    }

    if (!finalizers.includes(FINALIZER)) {
      await resources.setFinalizers(wh, [...finalizers, FINALIZER]);
      return undefined;
    }

    const problems = validateResource(wh);
    if (problems.length) {
      // Like a RelayPolicy, the last good document stays live (its endpoint keeps its backlog).
      await writeStatus(deps, wh, { Ready: ['False', 'InvalidSpec', problems.join('; ')] });
      return undefined;
    }

    let doc: ReturnType<typeof resolveWebhook>;
    try {
      doc = resolveWebhook(wh as unknown as Webhook, (name) => {
        const s = deps.secrets.get(`${namespace}/${name}`);
        if (!s) return undefined;
        return Object.fromEntries(
          Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
        );
      });
    } catch (err) {
      if (!(err instanceof MissingSecretError)) throw err;
      await writeStatus(deps, wh, { Ready: ['False', 'SecretNotFound', err.message] });
      throw err;
    }
    if (await kv.putIfChanged(kvKey, doc)) deps.logger.info({ key }, 'webhook config published');
    await writeStatus(deps, wh, { Ready: ['True', 'Configured', `webhook ${kvKey} is live`] });
    return undefined;
  };
}
