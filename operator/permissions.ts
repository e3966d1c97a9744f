/**
 * Every Kubernetes API access the operator makes, as data: the readiness check asks the API server about each
 * (SelfSubjectAccessReview), and the chart test asks the same about the chart's RBAC (SubjectAccessReview). A
 * call added to the operator without its line here is caught by the operator-tier test that runs the operator
 * under the chart's RBAC.
 */
import { AuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { API_GROUP } from '../services/common/config/schema.ts';
import type { OperatorSettings } from './operator.ts';

export interface Access {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  /** Absent: all namespaces (cluster scope). */
  namespace?: string;
  name?: string;
}

type Scope = Pick<
  OperatorSettings,
  'watchNamespace' | 'leaderElection' | 'leaseNamespace' | 'leaseName' | 'pools'
>;

/** What the running operator calls (informers, reconcilers, Events, leader election, autoscaler). */
export function operatorAccess(s: Scope): Access[] {
  const ns = s.watchNamespace ? { namespace: s.watchNamespace } : {};
  const list: Access[] = [];
  for (const resource of ['maildomains', 'relaypolicies', 'webhooks']) {
    // Informers list and watch; finalizers are patched on the object, status through its subresource.
    for (const verb of ['list', 'watch', 'patch']) list.push({ verb, group: API_GROUP, resource, ...ns });
    list.push({ verb: 'patch', group: API_GROUP, resource, subresource: 'status', ...ns });
    // Owner references with blockOwnerDeletion (generated DKIM Secrets) need update on the owner's finalizers.
    list.push({ verb: 'update', group: API_GROUP, resource, subresource: 'finalizers', ...ns });
  }
  // Secrets: the informer (AUTH users, smarthost credentials, webhook HMAC keys), read and generate DKIM keys.
  for (const verb of ['list', 'watch', 'get', 'create'])
    list.push({ verb, group: '', resource: 'secrets', ...ns });
  list.push({ verb: 'create', group: '', resource: 'events', ...ns });
  if (s.leaderElection) {
    const lease = { group: 'coordination.k8s.io', resource: 'leases', namespace: s.leaseNamespace };
    list.push({ ...lease, verb: 'create' });
    for (const verb of ['get', 'update']) list.push({ ...lease, verb, name: s.leaseName });
  }
  for (const p of s.pools) {
    const d = { group: 'apps', resource: 'deployments', namespace: p.namespace, name: p.deployment };
    // get + patch: the scale-down window annotation (autoscaler/scale-state.ts).
    for (const verb of ['get', 'patch']) list.push({ ...d, verb });
    for (const verb of ['get', 'update']) list.push({ ...d, verb, subresource: 'scale' });
  }
  return list;
}

/** What the chart's pre-delete hook (operator/uninstall.ts) calls. */
export function uninstallAccess(s: {
  watchNamespace: string;
  namespace: string;
  deployment: string;
  leaseName: string;
}): Access[] {
  const ns = s.watchNamespace ? { namespace: s.watchNamespace } : {};
  const d = { group: 'apps', resource: 'deployments', namespace: s.namespace, name: s.deployment };
  return [
    ...['maildomains', 'relaypolicies', 'webhooks'].flatMap((resource) =>
      ['list', 'patch'].map((verb) => ({ verb, group: API_GROUP, resource, ...ns })),
    ),
    { ...d, verb: 'get', subresource: 'scale' },
    { ...d, verb: 'update', subresource: 'scale' },
    ...(s.leaseName
      ? [
          {
            verb: 'get',
            group: 'coordination.k8s.io',
            resource: 'leases',
            namespace: s.namespace,
            name: s.leaseName,
          },
        ]
      : []),
  ];
}

export function describeAccess(a: Access): string {
  const res = `${a.resource}${a.subresource ? `/${a.subresource}` : ''}${a.group ? `.${a.group}` : ''}`;
  return `${a.verb} ${res}${a.name ? ` ${a.name}` : ''} in ${a.namespace ?? 'all namespaces'}`;
}

function attributes(a: Access) {
  return {
    verb: a.verb,
    group: a.group,
    resource: a.resource,
    ...(a.subresource ? { subresource: a.subresource } : {}),
    ...(a.namespace ? { namespace: a.namespace } : {}),
    ...(a.name ? { name: a.name } : {}),
  };
}

/** The accesses the current credentials lack (SelfSubjectAccessReview; every authenticated user may ask). */
export async function missingAccess(kc: KubeConfig, wanted: Access[]): Promise<Access[]> {
  const api = kc.makeApiClient(AuthorizationV1Api);
  const answers = await Promise.all(
    wanted.map((a) =>
      api.createSelfSubjectAccessReview({ body: { spec: { resourceAttributes: attributes(a) } } }),
    ),
  );
  return wanted.filter((_, i) => !answers[i]?.status?.allowed);
}

/** The accesses `user` (with `groups`) lacks, asked by an administrator (SubjectAccessReview). */
export async function missingAccessOf(
  kc: KubeConfig,
  user: string,
  groups: string[],
  wanted: Access[],
): Promise<Access[]> {
  const api = kc.makeApiClient(AuthorizationV1Api);
  const answers = await Promise.all(
    wanted.map((a) =>
      api.createSubjectAccessReview({ body: { spec: { user, groups, resourceAttributes: attributes(a) } } }),
    ),
  );
  return wanted.filter((_, i) => !answers[i]?.status?.allowed);
}
