/**
 * The chart's RBAC against what the operator really calls (operator/permissions.ts), on a real kube-apiserver:
 * the rendered Roles and bindings are created for real, then SubjectAccessReviews ask whether the operator's
 * ServiceAccount may do each call — with the default values, with operator.watchNamespace, and with the
 * production example. Then the operator itself runs with that ServiceAccount's token and reconciles, and an
 * operator without permissions reports not ready.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type KubernetesObject,
  type V1Deployment,
  type V1Job,
} from '@kubernetes/client-node';
import type { NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { Registry } from 'prom-client';
import { type Operator, startOperator } from '../../operator/operator.ts';
import {
  type Access,
  describeAccess,
  missingAccess,
  missingAccessOf,
  operatorAccess,
  uninstallAccess,
} from '../../operator/permissions.ts';
import { readOperatorSettings } from '../../operator/settings.ts';
import { connectNats, ensureTopology } from '../../services/common/nats.ts';
import { secretBox } from '../../services/common/secrets.ts';
import { type ControlPlane, startControlPlane } from '../helpers/envtest.ts';
import { findHelm, renderChart } from '../helpers/helm.ts';
import { createStrict } from '../helpers/kube-dry-run.ts';
import { startTestNats, type TestNats } from '../helpers/nats.ts';
import { createNamespace, installCrds, waitFor } from '../helpers/operator.ts';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const NS = 'postern';
const TENANTS = 'tenants';
const RBAC_KINDS = ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'];

const VARIANTS = [
  { name: 'default values', release: 'mta', set: [], valuesFiles: [] },
  {
    name: `operator.watchNamespace=${TENANTS}`,
    release: 'tnt',
    set: [`operator.watchNamespace=${TENANTS}`],
    valuesFiles: [],
  },
  {
    name: 'examples/k8s/values-production.yaml',
    release: 'prod',
    set: [],
    valuesFiles: [join(ROOT, 'examples/k8s/values-production.yaml')],
  },
];

type Env = { name: string; value?: string }[];

function envMap(env: Env | undefined): NodeJS.ProcessEnv {
  return Object.fromEntries((env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value]));
}

/** The rendered release: its RBAC objects, and the operator's settings as the operator itself parses them. */
function renderRelease(helm: string, v: (typeof VARIANTS)[number]) {
  const objs = renderChart(helm, {
    release: v.release,
    namespace: NS,
    set: v.set,
    valuesFiles: v.valuesFiles,
  });
  const operator = objs.find(
    (o) => o.kind === 'Deployment' && o.metadata?.name?.endsWith('-operator'),
  ) as V1Deployment;
  const pod = operator.spec!.template.spec!;
  // POD_NAMESPACE / POD_NAME come from the downward API in the pod.
  const settings = readOperatorSettings({
    ...envMap(pod.containers[0]!.env as Env),
    POD_NAMESPACE: NS,
    POD_NAME: 'op-0',
  });
  const hook = objs.find((o) => o.kind === 'Job' && o.metadata?.name?.endsWith('-uninstall')) as V1Job;
  const hookEnv = envMap(hook.spec!.template.spec!.containers[0]!.env as Env);
  const uninstall = uninstallAccess({
    watchNamespace: hookEnv['WATCH_NAMESPACE'] ?? '',
    namespace: NS,
    deployment: hookEnv['OPERATOR_DEPLOYMENT']!,
    leaseName: hookEnv['LEADER_ELECTION'] === 'true' ? hookEnv['LEADER_ELECTION_LEASE_NAME']! : '',
  });
  return {
    rbac: objs.filter((o) => RBAC_KINDS.includes(o.kind!)),
    deployments: objs.filter((o) => o.kind === 'Deployment') as V1Deployment[],
    settings,
    uninstall,
    serviceAccount: pod.serviceAccountName!,
    hookServiceAccount: hook.spec!.template.spec!.serviceAccountName!,
  };
}

describe('the chart RBAC grants exactly what the operator calls', () => {
  let helm: string;
  let cp: ControlPlane;
  before(async () => {
    helm = findHelm();
    cp = await startControlPlane();
    await installCrds(cp.kubeConfig);
    for (const ns of [NS, TENANTS, 'elsewhere']) await createNamespace(cp.kubeConfig, ns);
  });
  after(async () => {
    await cp?.stop();
  });

  const asServiceAccount = (sa: string) => ({
    user: `system:serviceaccount:${NS}:${sa}`,
    groups: ['system:serviceaccounts', `system:serviceaccounts:${NS}`, 'system:authenticated'],
  });

  for (const v of VARIANTS) {
    it(`${v.name}: the operator ServiceAccount may make every call the operator and its uninstall hook make`, async () => {
      const r = renderRelease(helm, v);
      for (const obj of r.rbac) await createStrict(cp.kubeConfig, obj, false);
      assert.ok(r.settings.pools.length > 0 && r.settings.leaderElection);
      assert.equal(r.hookServiceAccount, r.serviceAccount);
      const { user, groups } = asServiceAccount(r.serviceAccount);
      const missing = await missingAccessOf(cp.kubeConfig, user, groups, [
        ...operatorAccess(r.settings),
        ...r.uninstall,
      ]);
      assert.deepEqual(missing.map(describeAccess), []);

      // Control: the reviews really discriminate. Nothing beyond what the code uses is granted.
      const scope = r.settings.watchNamespace ? { namespace: r.settings.watchNamespace } : {};
      const denied: Access[] = [
        { verb: 'delete', group: '', resource: 'secrets', ...scope },
        { verb: 'update', group: '', resource: 'secrets', ...scope },
        { verb: 'delete', group: 'postern.dev', resource: 'maildomains', ...scope },
        {
          verb: 'update',
          group: 'apps',
          resource: 'deployments',
          subresource: 'scale',
          namespace: NS,
          name: 'someone-else',
        },
        ...(r.settings.watchNamespace
          ? [
              { verb: 'list', group: '', resource: 'secrets' },
              { verb: 'list', group: 'postern.dev', resource: 'maildomains', namespace: 'elsewhere' },
            ]
          : []),
      ];
      const granted: Access[] = [];
      for (const a of denied)
        if (!(await missingAccessOf(cp.kubeConfig, user, groups, [a])).length) granted.push(a);
      assert.deepEqual(granted.map(describeAccess), []);
    });
  }

  describe('the operator running with its ServiceAccount token', () => {
    let nats: TestNats;
    let nc: NatsConnection;
    const operators: Operator[] = [];
    before(async () => {
      nats = await startTestNats();
      nc = await connectNats(nats.url, 'rbac-test');
      await ensureTopology(nc);
    });
    after(async () => {
      for (const op of operators) await op.close();
      await nc?.close();
      await nats?.cleanup();
    });

    /** A kubeconfig that authenticates as the ServiceAccount with a real token (TokenRequest API). */
    const tokenKubeConfig = async (sa: string) => {
      const core = cp.kubeConfig.makeApiClient(CoreV1Api);
      await core
        .readNamespacedServiceAccount({ name: sa, namespace: NS })
        .catch(() =>
          core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: sa } } }),
        );
      const tr = await core.createNamespacedServiceAccountToken({
        name: sa,
        namespace: NS,
        body: { spec: { audiences: [], expirationSeconds: 3600 } },
      });
      const cluster = cp.kubeConfig.getCurrentCluster()!;
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'envtest', server: cluster.server, caData: cluster.caData }],
        users: [{ name: sa, token: tr.status!.token }],
        contexts: [{ name: 'sa', cluster: 'envtest', user: sa, namespace: NS }],
        currentContext: 'sa',
      });
      return kc;
    };

    const start = async (
      kc: KubeConfig,
      settings: Parameters<typeof startOperator>[0]['settings'],
      lines: string[],
    ) => {
      const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
      // The chart mounts the secrets key into the operator (secretsKey); a generated DKIM key is sealed with it.
      const op = await startOperator({
        kubeConfig: kc,
        nc,
        logger,
        registry: new Registry(),
        settings,
        secretBox: secretBox([randomBytes(32)]),
      });
      operators.push(op);
      return op;
    };

    it('with the default values it becomes ready and reconciles a MailDomain with a generated DKIM key', async () => {
      const r = renderRelease(helm, VARIANTS[0]!);
      // The delivery Deployment the autoscaler scales (no controller runs it here).
      for (const d of r.deployments.filter((d) => d.metadata?.labels?.['postern.dev/pool'])) {
        await createStrict(cp.kubeConfig, d as KubernetesObject, false);
      }
      const kc = await tokenKubeConfig(r.serviceAccount);
      const lines: string[] = [];
      const op = await start(kc, { ...r.settings, autoscaleIntervalMs: 500, identity: 'op-a' }, lines);
      await waitFor('operator ready', async () => op.ready());
      const crs = cp.kubeConfig.makeApiClient(CustomObjectsApi);
      await crs.createNamespacedCustomObject({
        group: 'postern.dev',
        version: 'v1alpha1',
        plural: 'maildomains',
        namespace: TENANTS,
        body: {
          apiVersion: 'postern.dev/v1alpha1',
          kind: 'MailDomain',
          metadata: { name: 'example-org' },
          spec: { domain: 'example.org', outbound: { dkim: { selector: 's1' } } },
        },
      });
      const md = await waitFor('MailDomain Ready', async () => {
        const o = (await crs.getNamespacedCustomObject({
          group: 'postern.dev',
          version: 'v1alpha1',
          plural: 'maildomains',
          namespace: TENANTS,
          name: 'example-org',
        })) as { status?: { conditions?: { type: string; status: string }[]; dkimDNSRecord?: string } };
        return o.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? o : undefined;
      });
      assert.match(md.status?.dkimDNSRecord ?? '', /v=DKIM1/);
      const forbidden = lines.filter((l) => /forbidden/i.test(l));
      assert.deepEqual(forbidden, []);
    });

    it('without RBAC it reports not ready and logs the missing permissions readably', async () => {
      const kc = await tokenKubeConfig('no-rbac');
      assert.ok(
        (await missingAccess(kc, operatorAccess({ ...readOperatorSettings({ POD_NAMESPACE: NS }) }))).length >
          0,
      );
      const lines: string[] = [];
      // With leader election (the chart's default) start returns at once; this one can never take the Lease.
      const op = await start(kc, { leaseNamespace: NS, identity: 'op-b' }, lines);
      const line = await waitFor('the missing-permissions log line', async () =>
        lines.find((l) => l.includes('missing Kubernetes permissions')),
      );
      assert.match(line, /list secrets in all namespaces/);
      assert.equal(op.ready(), false);
      // client-node's "Unknown API Status Code!" with escaped JSON is turned into code, reason and message.
      const leaseFailed = await waitFor('a failed Lease read', async () =>
        lines.find((l) => l.includes('lease update failed')),
      );
      assert.match(
        JSON.parse(leaseFailed).err,
        /^403 Forbidden: leases.* is forbidden: User "system:serviceaccount:postern:no-rbac"/,
      );
    });
  });
});
