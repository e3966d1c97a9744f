/**
 * What `helm uninstall` must do before the operator goes: take Postern's finalizer (`postern.dev/config`) off
 * every MailDomain and RelayPolicy. The finalizer exists so a resource's KV document is removed before the
 * resource disappears; once Postern itself is uninstalled there is no operator to honour it, and a later
 * `kubectl delete namespace` would hang forever. The bundled NATS (and so the KV bucket) goes with the release;
 * with an external NATS the documents stay behind (docs/chart.md).
 *
 * Order matters, because the operator re-adds its finalizer to any resource it sees without one: first scale
 * the operator's Deployment to 0 and wait until no operator leads (the Lease is released on a clean stop, or
 * expires), then remove the finalizers, retrying conflicts.
 */
import { AppsV1Api, CoordinationV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { FINALIZER } from './controllers/status.ts';
import { describeError } from './runtime/api-errors.ts';
import { CustomResources } from './runtime/custom-resources.ts';

export interface ReleaseFinalizersOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  /** Namespace of the operator's resources whose MailDomains / RelayPolicies are released ("" = all). */
  watchNamespace: string;
  /** The operator's Deployment (scaled to 0 first) and Lease, in `namespace`. */
  namespace: string;
  deployment: string;
  /** Empty when the operator runs without leader election. */
  leaseName: string;
  /** Give up waiting for the operator to stop after this long (default 5 min); finalizers are released anyway. */
  timeoutMs?: number;
  pollMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Returns how many resources lost the finalizer. */
export async function releaseFinalizers(o: ReleaseFinalizersOptions): Promise<number> {
  await stopOperator(o);
  let released = 0;
  for (const plural of ['maildomains', 'relaypolicies', 'webhooks']) {
    const api = new CustomResources(o.kubeConfig, plural, o.watchNamespace);
    for (let attempt = 1; ; attempt++) {
      const conflicts: string[] = [];
      for (const obj of (await api.list()).items) {
        const finalizers = obj.metadata?.finalizers ?? [];
        if (!finalizers.includes(FINALIZER)) continue;
        const ref = `${plural}/${obj.metadata?.namespace}/${obj.metadata?.name}`;
        try {
          await api.setFinalizers(
            obj,
            finalizers.filter((f) => f !== FINALIZER),
          );
          released++;
          o.logger.info({ resource: ref }, 'finalizer removed');
        } catch (err) {
          // 409: changed since the list (resourceVersion guard); 404: already gone. Both: look again.
          const code = (err as { code?: number }).code;
          if (code === 404) continue;
          if (code !== 409) throw err;
          conflicts.push(ref);
        }
      }
      if (!conflicts.length) break;
      if (attempt >= 10)
        throw new Error(`finalizers still changing after 10 passes: ${conflicts.join(', ')}`);
      await sleep(o.pollMs ?? 500);
    }
  }
  return released;
}

async function stopOperator(o: ReleaseFinalizersOptions): Promise<void> {
  const apps = o.kubeConfig.makeApiClient(AppsV1Api);
  const leases = o.kubeConfig.makeApiClient(CoordinationV1Api);
  const ref = { name: o.deployment, namespace: o.namespace };
  const deadline = Date.now() + (o.timeoutMs ?? 300_000);
  let said = '';
  for (;;) {
    try {
      const scale = await apps.readNamespacedDeploymentScale(ref);
      if (scale.spec?.replicas) {
        await apps.replaceNamespacedDeploymentScale({ ...ref, body: { ...scale, spec: { replicas: 0 } } });
        o.logger.info({ deployment: o.deployment }, 'operator scaled to 0');
      }
      const running = scale.status?.replicas ?? 0;
      const leader = o.leaseName ? await currentLeader(leases, o.namespace, o.leaseName) : undefined;
      if (!running && !leader) return;
      if (said !== `${running}/${leader}`)
        o.logger.info({ running, leader }, 'waiting for the operator to stop');
      said = `${running}/${leader}`;
    } catch (err) {
      if ((err as { code?: number }).code === 404) return; // no operator Deployment: nothing to wait for
      o.logger.warn({ err: describeError(err) }, 'could not check the operator; retrying');
    }
    if (Date.now() > deadline) {
      o.logger.warn('the operator did not stop in time; releasing finalizers anyway');
      return;
    }
    await sleep(o.pollMs ?? 500);
  }
}

/** The Lease holder while its lease is still valid (renewed within its duration), else undefined. */
async function currentLeader(api: CoordinationV1Api, namespace: string, name: string) {
  const lease = await api.readNamespacedLease({ name, namespace }).catch((err) => {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  });
  const holder = lease?.spec?.holderIdentity;
  if (!holder) return undefined;
  const renewed = lease.spec?.renewTime ? new Date(String(lease.spec.renewTime)).getTime() : 0;
  const duration = (lease.spec?.leaseDurationSeconds ?? 15) * 1000;
  // The API server's clock vs ours: a hook that waits a little longer than needed is harmless.
  return Date.now() - renewed < duration ? holder : undefined;
}
