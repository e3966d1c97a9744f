/**
 * MailDomain reconciler. One pass, top-down:
 * deletion (finalizer removes the KV document) → finalizer present → valid spec → domain claimed by nobody
 * older → DKIM key Secret (generated once, owned by the MailDomain) → resolved DomainConfig in KV → status.
 */
import type { CoreV1Api, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { MissingSecretError, resolveMailDomain } from '../../services/common/config/resolve.ts';
import { type DomainConfig, domainKey } from '../../services/common/config/resolved.ts';
import type { MailDomain, MailDomainSpec } from '../../services/common/config/schema.ts';
import { validateResource } from '../../services/common/config/validate.ts';
import { type SecretBox, sealedValuesIn, stableBox } from '../../services/common/secrets.ts';
import type { Reconcile } from '../runtime/controller.ts';
import type { CustomResources } from '../runtime/custom-resources.ts';
import type { EventRecorder } from '../runtime/events.ts';
import { type Informer, objectKey } from '../runtime/informer.ts';
import type { ConfigKv } from './config-kv.ts';
import { DKIM_SECRET_KEY, dkimDnsRecord, generateDkimKey } from './dkim.ts';
import { FINALIZER, type Status, writeStatus } from './status.ts';

export type MailDomainObject = KubernetesObject & { spec: MailDomainSpec; status?: Status };

export interface MailDomainDeps {
  informer: Informer<MailDomainObject>;
  resources: CustomResources<MailDomainObject>;
  core: CoreV1Api;
  kv: ConfigKv;
  events: EventRecorder;
  logger: Logger;
  /** Seals DKIM keys before they go to KV (services/common/secrets.ts); without it a DKIM domain is not Ready. */
  secretBox?: SecretBox | undefined;
}

/** The MailDomain that owns a domain among several claimants: the oldest, ties broken by namespace/name. */
export function domainOwner(claimants: MailDomainObject[]): MailDomainObject | undefined {
  return claimants
    .filter((m) => !m.metadata?.deletionTimestamp)
    .sort(
      (a, b) =>
        String(a.metadata?.creationTimestamp).localeCompare(String(b.metadata?.creationTimestamp)) ||
        objectKey(a).localeCompare(objectKey(b)),
    )[0];
}

/** Keys to reconcile when a MailDomain changes: itself and every other claimant of its domain. */
export function mailDomainKeys(informer: Informer<MailDomainObject>, md: MailDomainObject): string[] {
  const others = informer.list().filter((m) => m.spec?.domain === md.spec?.domain);
  return [objectKey(md), ...others.map(objectKey)];
}

export function mailDomainReconciler(deps: MailDomainDeps): Reconcile {
  const { informer, resources, kv } = deps;

  return async (key) => {
    const md = informer.get(key);
    if (!md) return undefined;
    const finalizers = md.metadata?.finalizers ?? [];
    const domain = md.spec.domain;

    if (md.metadata?.deletionTimestamp) {
      if (!finalizers.includes(FINALIZER)) return undefined;
      for (const k of await kv.keysFrom('domain.', key)) await kv.removeIfFrom(k, key);
      await resources.setFinalizers(
        md,
        finalizers.filter((f) => f !== FINALIZER),
      );
      deps.logger.info({ key, domain }, 'domain config removed');
      return undefined;
    }

    if (!finalizers.includes(FINALIZER)) {
      // The update this causes queues the key again; the rest happens on that pass.
      await resources.setFinalizers(md, [...finalizers, FINALIZER]);
      return undefined;
    }

    const problems = validateResource(md);
    if (problems.length) {
      await writeStatus(deps, md, { Ready: ['False', 'InvalidSpec', problems.join('; ')] });
      return undefined;
    }

    const owner = domainOwner(informer.list().filter((m) => m.spec?.domain === domain));
    if (owner && objectKey(owner) !== key) {
      for (const k of await kv.keysFrom('domain.', key)) await kv.removeIfFrom(k, key);
      await writeStatus(deps, md, {
        Ready: ['False', 'DomainConflict', `domain ${domain} is already served by ${objectKey(owner)}`],
      });
      return undefined;
    }

    const dkim = md.spec.outbound?.dkim;
    let privateKey: string | undefined;
    let dkimDNSRecord: string | undefined;
    if (dkim) {
      privateKey = await ensureDkimSecret(deps, md);
      dkimDNSRecord = dkimDnsRecord(dkim.selector, domain, privateKey);
    }

    // A changed spec.domain leaves the old document behind: remove what this resource wrote elsewhere.
    for (const k of await kv.keysFrom('domain.', key)) {
      if (k !== domainKey(domain)) await kv.removeIfFrom(k, key);
    }
    const box = deps.secretBox && stableBox(deps.secretBox, sealedValuesIn(await kv.read(domainKey(domain))));
    let doc: DomainConfig;
    try {
      doc = resolveMailDomain(md as unknown as MailDomain, privateKey, box);
    } catch (err) {
      if (!(err instanceof MissingSecretError)) throw err;
      await writeStatus(deps, md, { Ready: ['False', 'NoSecretsKey', err.message] });
      throw err;
    }
    const wrote = await kv.putIfChanged(domainKey(domain), doc);
    if (wrote) deps.logger.info({ key, domain }, 'domain config published');

    await writeStatus(
      deps,
      md,
      {
        Ready: ['True', 'Configured', `domain ${domain} is live`],
        ...(dkim ? { DKIMKeyReady: ['True', 'KeyAvailable', `selector ${dkim.selector}`] } : {}),
      },
      dkimDNSRecord ? { dkimDNSRecord } : {},
    );
    return undefined;
  };
}

/** Reads the DKIM key from its Secret, generating it into a new Secret owned by the MailDomain when missing. */
async function ensureDkimSecret(deps: MailDomainDeps, md: MailDomainObject): Promise<string> {
  const dkim = md.spec.outbound!.dkim!;
  const namespace = md.metadata!.namespace!;
  const name = dkim.keySecretRef?.name ?? `${md.metadata!.name}-dkim`;
  const dataKey = dkim.keySecretRef?.key || DKIM_SECRET_KEY;
  const existing = await deps.core.readNamespacedSecret({ name, namespace }).catch((err) => {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  });
  if (existing) {
    const b64 = existing.data?.[dataKey];
    if (!b64) throw new Error(`Secret ${namespace}/${name} has no key ${dataKey}`);
    return Buffer.from(b64, 'base64').toString('utf8');
  }
  const pem = generateDkimKey(dkim.algorithm ?? 'rsa');
  await deps.core.createNamespacedSecret({
    namespace,
    body: {
      metadata: {
        name,
        namespace,
        labels: { 'app.kubernetes.io/managed-by': 'postern-operator' },
        // Owned by the MailDomain: deleting the domain garbage-collects its key.
        ownerReferences: [
          {
            apiVersion: md.apiVersion!,
            kind: md.kind!,
            name: md.metadata!.name!,
            uid: md.metadata!.uid!,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      type: 'Opaque',
      data: { [dataKey]: Buffer.from(pem).toString('base64') },
    },
  });
  await deps.events.record(
    md,
    'Normal',
    'DKIMKeyGenerated',
    `generated ${dkim.algorithm ?? 'rsa'} key into Secret ${name}`,
  );
  return pem;
}
