/**
 * The Helm chart against the real helm binary and a real kube-apiserver: lint, render, values validation, and
 * every rendered object accepted by server-side dry-run with strict field validation.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  ApiextensionsV1Api,
  AppsV1Api,
  CoreV1Api,
  type KubernetesObject,
  type V1ConfigMap,
  type V1CustomResourceDefinition,
  type V1Deployment,
  type V1Job,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { parsePools } from '../../operator/autoscaler/pools.ts';
import { readAbuseLimits, readIngressSettings } from '../../services/ingress/settings.ts';
import { type ControlPlane, startControlPlane } from '../helpers/envtest.ts';
import { CHART_DIR, findHelm, renderChart, runHelm } from '../helpers/helm.ts';
import { createStrict, objectRef } from '../helpers/kube-dry-run.ts';
import { PROMETHEUS_RULE_CRD, SERVICE_MONITOR_CRD } from '../helpers/monitoring-crds.ts';
import { runnableNatsConf } from '../helpers/rendered-nats.ts';
import { createTestCa } from '../helpers/test-ca.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const NS = 'postern';

/** Everything switched on: monitoring objects, external NATS, two pools, TLS, one watched namespace. */
const FULL_VALUES = {
  hostname: 'mx.example.net',
  nats: { external: { url: 'nats://nats-0.nats.infra:4222,nats://nats-1.nats.infra:4222' } },
  ingress: {
    tls: { secretName: 'mx-tls' },
    listeners: { smtp: { enabled: true, port: 25, containerPort: 2525, proxyProtocol: true } },
    proxyProtocol: { trustedNetworks: ['10.20.0.0/16'], headerTimeoutMs: 3000 },
    service: {
      type: 'LoadBalancer',
      externalTrafficPolicy: 'Local',
      loadBalancerSourceRanges: ['0.0.0.0/0'],
    },
    maxMessageSize: 52428800,
  },
  delivery: {
    pools: [
      { name: 'default', minReplicas: 2, maxReplicas: 20, targetPerReplica: 500 },
      {
        name: 'bulk',
        minReplicas: 0,
        maxReplicas: 5,
        targetPerReplica: 2000,
        scaleDownStabilizationSeconds: 60,
      },
    ],
  },
  operator: { watchNamespace: 'mail-tenants' },
  metrics: {
    serviceMonitor: { enabled: true, labels: { release: 'kube-prometheus-stack' } },
    prometheusRule: { enabled: true, alerts: { labels: { team: 'mail' } } },
    dashboards: { namespace: 'monitoring' },
  },
};

/** A cluster without load balancers or a storage provisioner: node ports and pre-created hostPath volumes. */
const BARE_METAL_SET = [
  'ingress.service.type=NodePort',
  'ingress.service.nodePorts.smtp=30025',
  'nats.jetstream.fileStorage.storageClassName=',
  'nats.volumePermissions.enabled=true',
];

function byKind<T extends KubernetesObject>(objs: KubernetesObject[], kind: string): T[] {
  return objs.filter((o) => o.kind === kind) as T[];
}

function envOf(d: V1Deployment | V1StatefulSet, name: string): string | undefined {
  return d.spec?.template.spec?.containers[0]?.env?.find((e) => e.name === name)?.value;
}

describe('the Helm chart', () => {
  let helm: string;
  let cp: ControlPlane;
  let dir: string;
  let fullValues: string;

  before(async () => {
    helm = findHelm();
    dir = mkdtempSync(join(tmpdir(), 'postern-chart-'));
    fullValues = join(dir, 'full.yaml');
    writeFileSync(fullValues, stringify(FULL_VALUES));
    cp = await startControlPlane();
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    for (const name of [NS, 'mail-tenants', 'monitoring'])
      await core.createNamespace({ body: { metadata: { name } } });
  });
  after(async () => {
    await cp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('passes helm lint --strict with the default values and with everything enabled', () => {
    for (const extra of [[], ['--values', fullValues]]) {
      const r = runHelm(helm, ['lint', '--strict', CHART_DIR, ...extra]);
      assert.equal(r.code, 0, `helm lint failed:\n${r.stdout}\n${r.stderr}`);
    }
  });

  it('renders a 3-server NATS JetStream cluster, R3 streams and one autoscaled delivery pool by default', () => {
    const objs = renderChart(helm);
    const [sts] = byKind<V1StatefulSet>(objs, 'StatefulSet');
    assert.equal(sts?.spec?.replicas, 3);
    assert.equal(sts?.spec?.volumeClaimTemplates?.[0]?.spec?.resources?.requests?.['storage'], '10Gi');
    // Go's GC held to a soft limit under the container's 1Gi (docs/bench.md "Memory").
    assert.equal(envOf(sts!, 'GOMEMLIMIT'), '768MiB');
    const deployments = byKind<V1Deployment>(objs, 'Deployment');
    assert.deepEqual(deployments.map((d) => d.metadata?.name).sort(), [
      'mta-postern-delivery-default',
      'mta-postern-ingress',
      'mta-postern-operator',
      'mta-postern-queue',
      'mta-postern-webhooks',
    ]);
    for (const d of deployments) {
      assert.equal(envOf(d, 'NATS_URL'), 'nats://mta-postern-nats.postern.svc:4222');
      assert.equal(envOf(d, 'POSTERN_STREAM_REPLICAS'), '3');
      assert.equal(envOf(d, 'POSTERN_METRICS_PORT'), '9090');
      // A capped V8 heap and young generation, well under the container's memory limit (docs/bench.md "Memory").
      assert.equal(envOf(d, 'NODE_OPTIONS'), '--max-old-space-size=128 --max-semi-space-size=4');
      assert.equal(envOf(d, 'MALLOC_ARENA_MAX'), '2');
      const c = d.spec?.template.spec?.containers[0];
      assert.equal(c?.securityContext?.readOnlyRootFilesystem, true, `${d.metadata?.name} root fs`);
      assert.deepEqual(c?.securityContext?.capabilities?.drop, ['ALL']);
      assert.equal(d.spec?.template.spec?.securityContext?.runAsNonRoot, true);
      assert.equal(c?.readinessProbe?.httpGet?.path, '/readyz');
    }
    const operator = deployments.find((d) => d.metadata?.name === 'mta-postern-operator')!;
    // The operator's own parser accepts what the chart renders.
    assert.deepEqual(parsePools(envOf(operator, 'POSTERN_POOLS'), 'elsewhere'), [
      {
        name: 'default',
        deployment: 'mta-postern-delivery-default',
        namespace: NS,
        minReplicas: 1,
        maxReplicas: 10,
        targetPerReplica: 500,
        scaleDownStabilizationSeconds: 300,
      },
    ]);
    // Without a TLS Secret the implicit-TLS listener cannot run, so neither the pod nor the Service offers 465.
    const ingress = deployments.find((d) => d.metadata?.name === 'mta-postern-ingress')!;
    assert.deepEqual(
      JSON.parse(envOf(ingress, 'POSTERN_INGRESS_LISTENERS') ?? '').map((l: { port: number }) => l.port),
      [2525, 2587],
    );
    assert.equal(byKind(objs, 'ServiceMonitor').length, 0);
    assert.equal(byKind(objs, 'PrometheusRule').length, 0);
  });

  it('renders monitoring objects, external NATS, TLS on 465 and two pools when everything is enabled', () => {
    const objs = renderChart(helm, { valuesFiles: [fullValues] });
    assert.equal(byKind(objs, 'StatefulSet').length, 0, 'no bundled NATS with an external URL');
    assert.equal(byKind(objs, 'ServiceMonitor').length, 1);
    assert.equal(byKind(objs, 'PrometheusRule').length, 1);
    const deployments = byKind<V1Deployment>(objs, 'Deployment');
    const ingress = deployments.find((d) => d.metadata?.name === 'mta-postern-ingress')!;
    assert.equal(envOf(ingress, 'NATS_URL'), FULL_VALUES.nats.external.url);
    assert.equal(envOf(ingress, 'POSTERN_TLS_CERT'), '/etc/postern/tls/tls.crt');
    const listeners = JSON.parse(envOf(ingress, 'POSTERN_INGRESS_LISTENERS') ?? '');
    assert.deepEqual(
      listeners.map((l: { name: string; mode: string; port: number }) => `${l.name}:${l.mode}:${l.port}`),
      ['smtp:relay:2525', 'submission:submission:2587', 'smtps:smtps:2465'],
    );
    assert.equal(listeners[0].proxyProtocol, true);
    assert.equal(envOf(ingress, 'POSTERN_PROXY_TRUSTED_NETWORKS'), '10.20.0.0/16');
    const svc = byKind<KubernetesObject & { spec: { ports: { port: number; targetPort: string }[] } }>(
      objs,
      'Service',
    ).find((s) => s.metadata?.name === 'mta-postern-ingress')!;
    assert.deepEqual(
      svc.spec.ports.map((p) => `${p.port}->${p.targetPort}`),
      ['25->smtp', '587->submission', '465->smtps'],
    );
    const pools = deployments.filter((d) => d.metadata?.labels?.['postern.dev/pool']);
    assert.deepEqual(
      pools.map((d) => [d.metadata?.name, d.spec?.replicas, envOf(d, 'POSTERN_POOL')]),
      [
        ['mta-postern-delivery-default', 2, 'default'],
        ['mta-postern-delivery-bulk', 0, 'bulk'],
      ],
    );
    const operator = deployments.find((d) => d.metadata?.name === 'mta-postern-operator')!;
    const poolsEnv = JSON.parse(envOf(operator, 'POSTERN_POOLS') ?? '');
    assert.deepEqual(
      poolsEnv.map((p: { name: string; scaleDownStabilizationSeconds: number }) => [
        p.name,
        p.scaleDownStabilizationSeconds,
      ]),
      [
        ['default', 300],
        ['bulk', 60],
      ],
    );
    const dashboards = byKind<V1ConfigMap>(objs, 'ConfigMap').find((c) =>
      c.metadata?.name?.endsWith('dashboards'),
    )!;
    assert.equal(dashboards.metadata?.namespace, 'monitoring');
    assert.equal(dashboards.metadata?.labels?.['grafana_dashboard'], '1');
    assert.equal(JSON.parse(dashboards.data?.['postern.json'] ?? '{}').uid, 'postern-overview');
  });

  it('works on any cluster by default: a ClusterIP ingress Service, no storage class forced, an uninstall hook', () => {
    const objs = renderChart(helm);
    type Svc = KubernetesObject & { spec: { type: string; externalTrafficPolicy?: string } };
    const svc = byKind<Svc>(objs, 'Service').find((s) => s.metadata?.name === 'mta-postern-ingress')!;
    // LoadBalancer would leave `helm install --wait` waiting forever where no load-balancer controller runs.
    assert.equal(svc.spec.type, 'ClusterIP');
    assert.equal(svc.spec.externalTrafficPolicy, undefined);
    const [sts] = byKind<V1StatefulSet>(objs, 'StatefulSet');
    const claim = sts?.spec?.volumeClaimTemplates?.[0]?.spec;
    assert.ok(
      claim && !('storageClassName' in claim),
      'unset storageClassName means the cluster default class',
    );
    assert.equal(sts?.spec?.template.spec?.initContainers, undefined);
    const [job] = byKind<V1Job>(objs, 'Job');
    assert.equal(job?.metadata?.name, 'mta-postern-uninstall');
    assert.equal(job?.metadata?.annotations?.['helm.sh/hook'], 'pre-delete');
    assert.match(job?.metadata?.annotations?.['helm.sh/hook-delete-policy'] ?? '', /hook-succeeded/);
    assert.deepEqual(job?.spec?.template.spec?.containers[0]?.command, [
      'node',
      'operator/uninstall-main.ts',
    ]);
    assert.equal(job?.spec?.template.spec?.serviceAccountName, 'mta-postern-operator');
    const pool = byKind<V1Deployment>(objs, 'Deployment').find(
      (d) => d.metadata?.name === 'mta-postern-delivery-default',
    );
    assert.equal(pool?.spec?.template.spec?.terminationGracePeriodSeconds, 180);
  });

  it('keeps client addresses on NodePort, expresses "no storage class", and fixes hostPath volume ownership on request', () => {
    const objs = renderChart(helm, { set: BARE_METAL_SET });
    type Svc = KubernetesObject & {
      spec: { type: string; externalTrafficPolicy?: string; ports: { name: string; nodePort?: number }[] };
    };
    const svc = byKind<Svc>(objs, 'Service').find((s) => s.metadata?.name === 'mta-postern-ingress')!;
    assert.equal(svc.spec.type, 'NodePort');
    assert.equal(svc.spec.externalTrafficPolicy, 'Local');
    assert.deepEqual(
      svc.spec.ports.map((p) => [p.name, p.nodePort]),
      [
        ['smtp', 30025],
        ['submission', undefined],
      ],
    );
    const [sts] = byKind<V1StatefulSet>(objs, 'StatefulSet');
    assert.equal(sts?.spec?.volumeClaimTemplates?.[0]?.spec?.storageClassName, '');
    const init = sts?.spec?.template.spec?.initContainers?.[0];
    assert.equal(init?.image, 'ghcr.io/postern/postern:0.1.0', 'the Postern image (node), not the NATS one');
    assert.equal(init?.imagePullPolicy, 'IfNotPresent');
    assert.equal(init?.securityContext?.runAsUser, 0);
    assert.deepEqual(init?.securityContext?.capabilities?.add, ['CHOWN', 'DAC_OVERRIDE']);
    // The main container stays unprivileged.
    assert.equal(sts?.spec?.template.spec?.containers[0]?.securityContext?.runAsUser, undefined);
    assert.equal(sts?.spec?.template.spec?.securityContext?.runAsUser, 1000);
  });

  it('switches TLS-RPT reports on for every delivery pool from delivery.tlsReports', () => {
    const pools = (set: string[]) =>
      byKind<V1Deployment>(renderChart(helm, { set }), 'Deployment').filter((d) => envOf(d, 'POSTERN_POOL'));
    const on = pools(['delivery.tlsReports.enabled=true', 'delivery.tlsReports.contact=tls@example.org']);
    assert.ok(on.length > 0);
    for (const d of on) {
      assert.equal(envOf(d, 'POSTERN_TLSRPT_ENABLED'), 'true');
      assert.equal(envOf(d, 'POSTERN_TLSRPT_PERIOD'), '1d');
      assert.equal(envOf(d, 'POSTERN_TLSRPT_CONTACT'), 'tls@example.org');
    }
    for (const d of pools([])) assert.equal(envOf(d, 'POSTERN_TLSRPT_ENABLED'), undefined, 'off by default');
  });

  it('renders the webhook dispatcher from webhooks.*, with its own ServiceAccount, and leaves it out when disabled', () => {
    const objs = renderChart(helm, {
      set: [
        'webhooks.replicas=2',
        'webhooks.concurrency=16',
        'webhooks.maxPending=5000',
        'webhooks.metricsInterval=10s',
      ],
    });
    const d = byKind<V1Deployment>(objs, 'Deployment').find(
      (x) => x.metadata?.name === 'mta-postern-webhooks',
    )!;
    assert.equal(d.spec?.replicas, 2);
    assert.deepEqual(d.spec?.template.spec?.containers[0]?.command, ['node', 'services/webhooks/main.ts']);
    assert.equal(envOf(d, 'POSTERN_WEBHOOK_CONCURRENCY'), '16');
    assert.equal(envOf(d, 'POSTERN_WEBHOOK_MAX_PENDING'), '5000');
    assert.equal(envOf(d, 'POSTERN_WEBHOOK_METRICS_INTERVAL'), '10s');
    assert.equal(
      d.spec?.template.spec?.automountServiceAccountToken,
      false,
      'services never talk to Kubernetes',
    );
    assert.ok(byKind(objs, 'ServiceAccount').some((sa) => sa.metadata?.name === 'mta-postern-webhooks'));
    const off = renderChart(helm, { set: ['webhooks.enabled=false'] });
    assert.ok(!off.some((o) => o.metadata?.name === 'mta-postern-webhooks'));
    const bad = runHelm(helm, ['template', 'mta', CHART_DIR, '--set', 'webhooks.concurrency=0']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /webhooks.*concurrency/);
  });

  it('points every component at dnsServers and names the ingress authserv-id from ingress.authservId', () => {
    const set = ['dnsServers={10.96.0.10,10.96.0.11:5353}', 'ingress.authservId=mx.example.org'];
    const workloads = [
      ...byKind<V1Deployment>(renderChart(helm, { set }), 'Deployment'),
      ...byKind<V1StatefulSet>(renderChart(helm, { set }), 'StatefulSet'),
    ].filter((d) => envOf(d, 'POSTERN_HOSTNAME'));
    assert.ok(workloads.length >= 4, 'ingress, queue, delivery and the operator');
    for (const d of workloads) assert.equal(envOf(d, 'POSTERN_DNS_SERVERS'), '10.96.0.10,10.96.0.11:5353');
    const ingress = workloads.filter((d) => envOf(d, 'POSTERN_INGRESS_LISTENERS'));
    assert.equal(ingress.length, 1);
    assert.equal(envOf(ingress[0]!, 'POSTERN_AUTHSERV_ID'), 'mx.example.org');
    const defaults = byKind<V1Deployment>(renderChart(helm, {}), 'Deployment');
    for (const d of defaults) {
      assert.equal(envOf(d, 'POSTERN_DNS_SERVERS'), undefined, "default: the pod's resolv.conf");
      assert.equal(envOf(d, 'POSTERN_AUTHSERV_ID'), undefined, 'default: the hostname');
    }
  });

  it('renders ingress.limits as the ingress env, defaults included, and refuses a zero limit', () => {
    const ingress = (set: string[]) =>
      byKind<V1Deployment>(renderChart(helm, { set }), 'Deployment').find((d) =>
        envOf(d, 'POSTERN_INGRESS_LISTENERS'),
      );
    const defaults = ingress([]);
    assert.ok(defaults);
    assert.equal(envOf(defaults, 'POSTERN_SMTP_MAX_CONNECTIONS_PER_IP'), '50');
    assert.equal(envOf(defaults, 'POSTERN_SMTP_HARD_ERROR_LIMIT'), '20');
    assert.equal(envOf(defaults, 'POSTERN_AUTH_LOCKOUT_SECONDS'), '900');
    const set = ingress([
      'ingress.limits.maxConnections=300',
      'ingress.limits.maxConnectionsPerIp=7',
      'ingress.limits.connectionRateLimit=30',
      'ingress.limits.idleTimeoutMs=60000',
      'ingress.limits.commandTimeoutMs=30000',
      'ingress.limits.sessionTimeoutMs=600000',
      'ingress.limits.hardErrorLimit=5',
      'ingress.limits.junkCommandLimit=9',
      'ingress.limits.unauthenticatedCommandLimit=11',
      'ingress.limits.maxRecipients=500',
      'ingress.limits.authFailuresPerIp=4',
      'ingress.limits.authFailuresPerUser=6',
      'ingress.limits.authLockoutSeconds=1800',
    ]);
    assert.ok(set);
    const expected: Record<string, string> = {
      POSTERN_SMTP_MAX_CONNECTIONS: '300',
      POSTERN_SMTP_MAX_CONNECTIONS_PER_IP: '7',
      POSTERN_SMTP_CONNECTION_RATE_LIMIT: '30',
      POSTERN_SMTP_IDLE_TIMEOUT_MS: '60000',
      POSTERN_SMTP_COMMAND_TIMEOUT_MS: '30000',
      POSTERN_SMTP_SESSION_TIMEOUT_MS: '600000',
      POSTERN_SMTP_HARD_ERROR_LIMIT: '5',
      POSTERN_SMTP_JUNK_COMMAND_LIMIT: '9',
      POSTERN_SMTP_UNAUTH_COMMAND_LIMIT: '11',
      POSTERN_SMTP_MAX_RECIPIENTS: '500',
      POSTERN_AUTH_FAILURES_PER_IP: '4',
      POSTERN_AUTH_FAILURES_PER_USER: '6',
      POSTERN_AUTH_LOCKOUT_SECONDS: '1800',
    };
    for (const [name, value] of Object.entries(expected)) assert.equal(envOf(set, name), value, name);
    // The service reads back exactly what the chart rendered.
    const env = Object.fromEntries(
      (set.spec?.template.spec?.containers[0]?.env ?? []).map((e) => [e.name, e.value]),
    );
    assert.deepEqual(readAbuseLimits(env), {
      maxConnections: 300,
      maxConnectionsPerIp: 7,
      connectionRateLimit: 30,
      idleTimeoutMs: 60000,
      commandTimeoutMs: 30000,
      sessionTimeoutMs: 600000,
      hardErrorLimit: 5,
      junkCommandLimit: 9,
      unauthenticatedCommandLimit: 11,
      maxRecipients: 500,
      authFailuresPerIp: 4,
      authFailuresPerUser: 6,
      authLockoutSeconds: 1800,
      authCounterTimeoutMs: 500,
    });
    const file = join(dir, 'zero-limit.yaml');
    writeFileSync(file, stringify({ ingress: { limits: { hardErrorLimit: 0 } } }));
    const r = runHelm(helm, ['template', 'mta', CHART_DIR, '--kube-version', '1.34.4', '--values', file]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /ingress\/limits\/hardErrorLimit.*minimum/);
  });

  it('renders ingress.proxyProtocol for listeners behind a balancer, and refuses one without trusted networks', () => {
    const ingress = (set: string[]) =>
      byKind<V1Deployment>(renderChart(helm, { set }), 'Deployment').find((d) =>
        envOf(d, 'POSTERN_INGRESS_LISTENERS'),
      );
    const off = ingress([]);
    assert.ok(off);
    assert.equal(
      envOf(off, 'POSTERN_PROXY_TRUSTED_NETWORKS'),
      undefined,
      'no PROXY settings unless a listener asks',
    );
    const on = ingress([
      'ingress.listeners.smtp.proxyProtocol=true',
      'ingress.proxyProtocol.trustedNetworks={10.0.0.0/24,fd00::/64}',
      'ingress.proxyProtocol.headerTimeoutMs=3000',
    ]);
    assert.ok(on);
    const env = Object.fromEntries(
      (on.spec?.template.spec?.containers[0]?.env ?? []).map((e) => [e.name, e.value]),
    );
    // The service reads back exactly what the chart rendered, listener flags included.
    const settings = readIngressSettings(env);
    assert.deepEqual(settings.proxyProtocol, {
      trustedNetworks: ['10.0.0.0/24', 'fd00::/64'],
      headerTimeoutMs: 3000,
    });
    assert.deepEqual(
      settings.listeners.map((l) => [l.name, l.proxyProtocol]),
      [
        ['smtp', true],
        ['submission', false],
      ],
    );
    const r = runHelm(helm, [
      'template',
      'mta',
      CHART_DIR,
      '--kube-version',
      '1.34.4',
      '--set',
      'ingress.listeners.submission.proxyProtocol=true',
    ]);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /listener submission has proxyProtocol but ingress\.proxyProtocol\.trustedNetworks is empty/,
    );
  });

  it('renders ingress.dnsbl and ingress.contentFilter as env the ingress reads back, per listener', () => {
    const ingress = (values: object) => {
      const file = join(dir, 'filters.yaml');
      writeFileSync(file, stringify(values));
      return byKind<V1Deployment>(renderChart(helm, { valuesFiles: [file] }), 'Deployment').find((d) =>
        envOf(d, 'POSTERN_INGRESS_LISTENERS'),
      );
    };
    const off = ingress({});
    assert.ok(off);
    assert.equal(envOf(off, 'POSTERN_DNSBL_ZONES'), undefined, 'no zones: no DNSBL');
    assert.equal(envOf(off, 'POSTERN_CONTENT_FILTER_URL'), undefined, 'no url: no content filter');
    const on = ingress({
      ingress: {
        dnsbl: {
          zones: [{ zone: 'zen.spamhaus.org', codes: ['127.0.0.2-127.0.0.11'] }, 'bl.example'],
          allow: ['10.0.0.0/8'],
        },
        contentFilter: { url: 'http://rspamd.mail.svc:11333', failMode: 'closed', timeoutMs: 3000 },
        listeners: { submission: { contentFilter: false } },
      },
    });
    assert.ok(on);
    const env = Object.fromEntries(
      (on.spec?.template.spec?.containers[0]?.env ?? []).map((e) => [e.name, e.value]),
    );
    const settings = readIngressSettings(env);
    assert.deepEqual(settings.dnsbl, {
      zones: [{ zone: 'zen.spamhaus.org', codes: ['127.0.0.2-127.0.0.11'] }, { zone: 'bl.example' }],
      allow: ['10.0.0.0/8'],
      cacheTtlSeconds: 300,
      cacheSize: 10000,
      timeoutMs: 2000,
      dnsServers: [],
    });
    assert.deepEqual(settings.contentFilter, {
      url: 'http://rspamd.mail.svc:11333',
      timeoutMs: 3000,
      failMode: 'closed',
      maxSize: 20971520,
    });
    assert.deepEqual(
      settings.listeners.map((l) => [l.name, l.dnsbl, l.contentFilter]),
      [
        ['smtp', true, true],
        ['submission', false, false],
      ],
    );
    const bad = runHelm(helm, [
      'template',
      'mta',
      CHART_DIR,
      '--kube-version',
      '1.34.4',
      '--set',
      'ingress.contentFilter.failMode=maybe',
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /ingress\/contentFilter\/failMode/);
  });

  it('rejects invalid values through values.schema.json with a message naming the field', () => {
    const cases: [string, object, RegExp][] = [
      ['negative replicas', { ingress: { replicas: -1 } }, /ingress\/replicas.*minimum/],
      [
        'an unknown pool field',
        {
          delivery: { pools: [{ name: 'a', minReplicas: 1, maxReplicas: 2, targetPerReplica: 5, speed: 9 }] },
        },
        /delivery\/pools\/0.*additional properties 'speed' not allowed/,
      ],
      ['an unknown top-level key', { ingres: { replicas: 2 } }, /additional properties 'ingres' not allowed/],
      ['an even NATS cluster size', { nats: { replicas: 2 } }, /nats\/replicas/],
      ['a privileged container port', { metrics: { port: 80 } }, /metrics\/port.*minimum/],
      [
        'a pool with min above max',
        { delivery: { pools: [{ name: 'a', minReplicas: 5, maxReplicas: 2, targetPerReplica: 5 }] } },
        /minReplicas \(5\) exceeds maxReplicas \(2\)/,
      ],
    ];
    for (const [what, values, message] of cases) {
      const file = join(dir, 'bad.yaml');
      writeFileSync(file, stringify(values));
      const r = runHelm(helm, ['template', 'mta', CHART_DIR, '--kube-version', '1.34.4', '--values', file]);
      assert.notEqual(r.code, 0, `${what} was accepted`);
      assert.match(r.stderr, message, `${what}: unexpected message ${r.stderr}`);
    }
  });

  it('renders a nats.conf (3 servers, users, TLS on clients and routes) that a real nats-server accepts', () => {
    // Run for real by test/operator/nats-lockdown.test.ts; here the default 3-server render is checked with -t,
    // with the pod's TLS files and the StatefulSet's environment (bcrypt hashes) in place.
    const ca = createTestCa();
    try {
      const nats = runnableNatsConf(renderChart(helm), 'mta-postern', join(dir, 'nats-conf'), ca);
      const bin = process.env['NATS_SERVER_BIN'] ?? natsServerBin();
      const r = spawnSync(bin, ['-c', nats.conf, '-t'], { encoding: 'utf8', env: nats.env });
      assert.equal(r.status, 0, `nats-server rejected the config:\n${r.stdout}${r.stderr}`);
      assert.match(readFileSync(nats.conf, 'utf8'), /authorization \{[\s\S]*user: "delivery-default"/);
    } finally {
      ca.close();
    }
  });

  it('ships the CRDs generated from the operator schema', () => {
    const chartCrds = join(CHART_DIR, 'crds');
    assert.ok(existsSync(chartCrds), 'charts/postern/crds is missing (operator/crd-gen.ts writes it)');
    for (const f of readdirSync(join(ROOT, 'crds'))) {
      assert.equal(
        readFileSync(join(chartCrds, f), 'utf8'),
        readFileSync(join(ROOT, 'crds', f), 'utf8'),
        `charts/postern/crds/${f} differs from crds/${f}`,
      );
    }
  });

  for (const variant of [
    'default values',
    'everything enabled',
    'examples/k8s/values-production.yaml',
    'bare metal (NodePort, static volumes)',
  ]) {
    it(`the API server accepts every rendered object with ${variant} (server-side dry-run, strict fields)`, async () => {
      const valuesFiles =
        variant === 'everything enabled'
          ? [fullValues]
          : variant === 'examples/k8s/values-production.yaml'
            ? [join(ROOT, 'examples/k8s/values-production.yaml')]
            : [];
      const set = variant.startsWith('bare metal') ? BARE_METAL_SET : [];
      const objs = renderChart(helm, { valuesFiles, set, includeCrds: true });
      const crds = [
        ...byKind<V1CustomResourceDefinition>(objs, 'CustomResourceDefinition'),
        SERVICE_MONITOR_CRD,
        PROMETHEUS_RULE_CRD,
      ];
      assert.ok(crds.length >= 4, 'the chart renders its MailDomain and RelayPolicy CRDs');
      await installCrds(cp, crds);
      const rest = objs.filter((o) => o.kind !== 'CustomResourceDefinition');
      const failures: string[] = [];
      for (const obj of rest) {
        await createStrict(cp.kubeConfig, obj, true).catch((err: Error) => {
          failures.push(`${objectRef(obj)}: ${(err as { body?: string }).body ?? err.message}`);
        });
      }
      assert.deepEqual(failures, []);
      assert.ok(rest.length > 20, `expected the full release, got ${rest.length} objects`);
    });
  }

  it('strict dry-run really sees the manifest: a misspelt field is rejected', async () => {
    const cm = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'typo', namespace: NS },
      dta: { a: '1' },
    };
    await assert.rejects(createStrict(cp.kubeConfig, cm, true), (err: Error) =>
      /unknown field \\*"dta\\*"/.test(err.message),
    );
  });

  it('keeps the replica count the operator chose for a pool on upgrade (lookup against the API server)', async () => {
    const objs = renderChart(helm);
    const pool = byKind<V1Deployment>(objs, 'Deployment').find(
      (d) => d.metadata?.name === 'mta-postern-delivery-default',
    )!;
    await createStrict(cp.kubeConfig, pool, false);
    const apps = cp.kubeConfig.makeApiClient(AppsV1Api);
    await apps.patchNamespacedDeploymentScale({
      name: pool.metadata!.name!,
      namespace: NS,
      body: [{ op: 'replace', path: '/spec/replicas', value: 7 }],
    });
    // --dry-run=server lets lookup() read the live Deployment, exactly as during `helm upgrade`.
    const r = runHelm(helm, [
      'template',
      'mta',
      CHART_DIR,
      '-n',
      NS,
      '--kube-version',
      '1.34.4',
      '--dry-run=server',
      '--kubeconfig',
      cp.kubeconfigPath,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const rendered = /name: mta-postern-delivery-default\n[\s\S]*?\nspec:\n {2}replicas: (\d+)/.exec(
      r.stdout,
    );
    assert.equal(rendered?.[1], '7');
  });

  it('runs no HTTP API by default; api.enabled renders its Deployment, Service, Ingress and NetworkPolicy', async () => {
    const apiObjects = (objs: KubernetesObject[]) =>
      objs.filter((o) => o.metadata?.labels?.['app.kubernetes.io/component'] === 'api');
    assert.deepEqual(apiObjects(renderChart(helm)), []);

    const set = [
      'api.enabled=true',
      'api.maxRequestBytes=4000000',
      'api.trustForwardedProto=true',
      'api.ingress.enabled=true',
      'api.ingress.className=nginx',
      'api.ingress.host=mail-api.example.org',
      'api.ingress.tls[0].secretName=mail-api-tls',
      'api.ingress.tls[0].hosts[0]=mail-api.example.org',
    ];
    const objs = apiObjects(renderChart(helm, { set }));
    assert.deepEqual(objs.map((o) => o.kind).sort(), [
      'Deployment',
      'Ingress',
      'NetworkPolicy',
      'PodDisruptionBudget',
      'Service',
      'ServiceAccount',
    ]);
    const d = byKind<V1Deployment>(objs, 'Deployment')[0]!;
    assert.deepEqual(d.spec?.template.spec?.containers[0]?.command, ['node', 'services/api/main.ts']);
    assert.equal(envOf(d, 'POSTERN_API_PORT'), '2580');
    assert.equal(envOf(d, 'POSTERN_API_MAX_REQUEST_BYTES'), '4000000');
    assert.equal(envOf(d, 'POSTERN_API_TRUST_FORWARDED_PROTO'), 'true');
    type Svc = KubernetesObject & { spec: { type: string; ports: { port: number; targetPort: string }[] } };
    const svc = byKind<Svc>(objs, 'Service')[0]!;
    assert.equal(svc.spec.type, 'ClusterIP');
    assert.deepEqual(
      svc.spec.ports.map((p) => `${p.port}->${p.targetPort}`),
      ['80->http'],
    );
    type Ing = KubernetesObject & {
      spec: {
        rules: {
          host: string;
          http: { paths: { path: string; backend: { service: { name: string } } }[] };
        }[];
      };
    };
    const rule = byKind<Ing>(objs, 'Ingress')[0]!.spec.rules[0]!;
    assert.equal(rule.host, 'mail-api.example.org');
    assert.deepEqual(
      rule.http.paths.map((p) => `${p.path}->${p.backend.service.name}`),
      ['/v1/->mta-postern-api'],
    );
    const failures: string[] = [];
    for (const obj of objs) {
      await createStrict(cp.kubeConfig, obj, true).catch((err: Error) => {
        failures.push(`${objectRef(obj)}: ${(err as { body?: string }).body ?? err.message}`);
      });
    }
    assert.deepEqual(failures, [], 'the API server accepts the API objects (server-side dry-run)');

    const noHost = runHelm(helm, [
      'template',
      'mta',
      CHART_DIR,
      '--kube-version',
      '1.34.4',
      '--set',
      'api.enabled=true',
      '--set',
      'api.ingress.enabled=true',
    ]);
    assert.notEqual(noHost.code, 0);
    assert.match(noHost.stderr, /api\.ingress\.host is required/);
  });
});

/** The cached nats-server binary (the same one the integration tier runs). */
function natsServerBin(): string {
  const out = spawnSync('bash', [join(ROOT, 'scripts/test-bins.sh'), 'nats'], { encoding: 'utf8' }).stdout;
  const bin = /NATS_SERVER_BIN=(.*)/.exec(out)?.[1]?.trim();
  if (!bin) throw new Error('no nats-server (see scripts/test-bins.sh)');
  return bin;
}

/** Creates CRDs for real (once) and waits until the API server serves them. */
async function installCrds(cp: ControlPlane, crds: V1CustomResourceDefinition[]) {
  const api = cp.kubeConfig.makeApiClient(ApiextensionsV1Api);
  for (const crd of crds) {
    await createStrict(cp.kubeConfig, crd, false).catch((err: { code?: number }) => {
      if (err.code !== 409) throw err;
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      const got = await api.readCustomResourceDefinition({ name: crd.metadata!.name! });
      if (got.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      if (Date.now() > deadline) throw new Error(`CRD ${crd.metadata!.name} not established`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
