/**
 * The operator: leader election around a "term" of informers + controllers + the delivery autoscaler.
 * Only the leader runs a term; losing the Lease stops it (in-flight reconciles finish, nothing new starts).
 */
import { CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { WEBHOOK_BUCKET } from '../services/common/config/webhook.ts';
import { retryUntilDone } from '../services/common/retry.ts';
import { type SecretBox, secretBoxFromEnv } from '../services/common/secrets.ts';
import { type Autoscaler, startAutoscaler } from './autoscaler/autoscaler.ts';
import type { PoolSettings } from './autoscaler/pools.ts';
import { ConfigKv } from './controllers/config-kv.ts';
import { type MailDomainObject, mailDomainKeys, mailDomainReconciler } from './controllers/mail-domain.ts';
import {
  policiesUsingSecret,
  type RelayPolicyObject,
  relayPolicyReconciler,
} from './controllers/relay-policy.ts';
import { type WebhookObject, webhookReconciler, webhooksUsingSecret } from './controllers/webhook.ts';
import { createOperatorMetrics, type OperatorMetrics } from './metrics.ts';
import { describeAccess, missingAccess, operatorAccess } from './permissions.ts';
import { describeError } from './runtime/api-errors.ts';
import { Controller } from './runtime/controller.ts';
import { CustomResources } from './runtime/custom-resources.ts';
import { EventRecorder } from './runtime/events.ts';
import { Informer } from './runtime/informer.ts';
import { LeaderElector } from './runtime/leader-election.ts';

export interface OperatorSettings {
  /** Namespace to watch; empty = all namespaces. */
  watchNamespace: string;
  leaderElection: boolean;
  /** Lease location and this instance's identity (POD_NAMESPACE / POD_NAME in a cluster). */
  leaseNamespace: string;
  leaseName: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  pools: PoolSettings[];
  autoscaleIntervalMs: number;
  /** Reconciles in parallel per kind (different keys only). */
  concurrency: number;
  /** Watch stall detection (no event or bookmark for this long → restart). */
  watchStallTimeoutMs: number;
  /** Upper bound for the server-side watch timeout, seconds. */
  watchTimeoutSeconds: number;
  /** Work-queue backoff bounds (controller-runtime: 5 ms → 1000 s). */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** How often the RBAC self-check behind readiness runs (permissions.ts). */
  accessCheckIntervalMs: number;
}

export const DEFAULT_OPERATOR_SETTINGS: OperatorSettings = {
  watchNamespace: '',
  leaderElection: true,
  leaseNamespace: 'default',
  leaseName: 'postern-operator',
  identity: 'postern-operator',
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
  pools: [],
  autoscaleIntervalMs: 5_000,
  concurrency: 4,
  watchStallTimeoutMs: 90_000,
  watchTimeoutSeconds: 60,
  backoffBaseMs: 5,
  backoffMaxMs: 1_000_000,
  accessCheckIntervalMs: 60_000,
};

export interface StartOperatorOptions {
  kubeConfig: KubeConfig;
  nc: NatsConnection;
  logger: Logger;
  registry: Registry;
  settings?: Partial<OperatorSettings>;
  /**
   * Seals smarthost passwords and DKIM keys before they are written to KV (services/common/secrets.ts);
   * default: the key file of $POSTERN_SECRETS_KEY_FILE. Without one, resources needing a secret are not Ready.
   */
  secretBox?: SecretBox | undefined;
}

export interface Operator {
  isLeader(): boolean;
  /**
   * The API server grants every access the operator needs (checked at start and every
   * `accessCheckIntervalMs`, leader or not) and, when leading, informers synced and controllers running.
   */
  ready(): boolean;
  metrics: OperatorMetrics;
  /** Stops the current term and releases the Lease (`release: false` simulates a crash in tests). */
  close(opts?: { release?: boolean }): Promise<void>;
}

interface Term {
  stop(): Promise<void>;
}

async function startTerm(
  o: StartOperatorOptions,
  s: OperatorSettings,
  metrics: OperatorMetrics,
  signal: AbortSignal,
): Promise<Term> {
  const { kubeConfig, nc, logger } = o;
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const kv = await ConfigKv.open(nc);
  const webhookKv = await ConfigKv.open(nc, WEBHOOK_BUCKET, 1);
  const secretBox = o.secretBox ?? secretBoxFromEnv();
  const events = new EventRecorder(kubeConfig, logger);
  const informerOpts = {
    kubeConfig,
    logger,
    stallTimeoutMs: s.watchStallTimeoutMs,
    watchTimeoutSeconds: s.watchTimeoutSeconds,
  };
  const domainsApi = new CustomResources<MailDomainObject>(kubeConfig, 'maildomains', s.watchNamespace);
  const policiesApi = new CustomResources<RelayPolicyObject>(kubeConfig, 'relaypolicies', s.watchNamespace);
  const domains = new Informer<MailDomainObject>({
    ...informerOpts,
    path: domainsApi.path,
    list: domainsApi.list,
  });
  const policies = new Informer<RelayPolicyObject>({
    ...informerOpts,
    path: policiesApi.path,
    list: policiesApi.list,
  });
  const webhooksApi = new CustomResources<WebhookObject>(kubeConfig, 'webhooks', s.watchNamespace);
  const webhooks = new Informer<WebhookObject>({
    ...informerOpts,
    path: webhooksApi.path,
    list: webhooksApi.list,
  });
  const ns = s.watchNamespace;
  const secrets = new Informer<V1Secret>({
    ...informerOpts,
    path: ns ? `/api/v1/namespaces/${ns}/secrets` : '/api/v1/secrets',
    list: () => (ns ? core.listNamespacedSecret({ namespace: ns }) : core.listSecretForAllNamespaces()),
  });
  const queue = { baseDelayMs: s.backoffBaseMs, maxDelayMs: s.backoffMaxMs };
  const common = { logger, metrics, concurrency: s.concurrency, queue };
  const mdController = new Controller({
    ...common,
    kind: 'MailDomain',
    reconcile: mailDomainReconciler({
      informer: domains,
      resources: domainsApi,
      core,
      kv,
      events,
      logger,
      secretBox,
    }),
  });
  const rpController = new Controller({
    ...common,
    kind: 'RelayPolicy',
    reconcile: relayPolicyReconciler({
      informer: policies,
      secrets,
      resources: policiesApi,
      kv,
      events,
      logger,
      secretBox,
    }),
  });
  const whController = new Controller({
    ...common,
    kind: 'Webhook',
    reconcile: webhookReconciler({
      informer: webhooks,
      secrets,
      resources: webhooksApi,
      kv: webhookKv,
      events,
      logger,
    }),
  });
  const stopInformers = () => Promise.all([domains.stop(), policies.stop(), webhooks.stop(), secrets.stop()]);
  // Leadership lost or shutdown while the first list is still failing (API server down): give up the term.
  signal.addEventListener('abort', () => void stopInformers(), { once: true });
  // Secrets first: a policy reconciled before its Secrets are cached would report SecretNotFound needlessly.
  await secrets.start();
  await Promise.all([domains.start(), policies.start(), webhooks.start()]);
  if (signal.aborted) {
    await stopInformers();
    throw new Error('term aborted before its caches synced');
  }
  mdController.watch(domains, (md) => mailDomainKeys(domains, md));
  rpController.watch(policies);
  rpController.watch(secrets, (secret) => policiesUsingSecret(policies, secret));
  whController.watch(webhooks);
  whController.watch(secrets, (secret) => webhooksUsingSecret(webhooks, secret));
  mdController.start();
  rpController.start();
  whController.start();
  let autoscaler: Autoscaler | undefined;
  if (s.pools.length) {
    autoscaler = await startAutoscaler({
      kubeConfig,
      nc,
      pools: s.pools,
      logger,
      metrics,
      intervalMs: s.autoscaleIntervalMs,
    });
  }
  logger.info({ namespace: ns || '*', pools: s.pools.map((p) => p.name) }, 'controllers started');
  return {
    async stop() {
      await autoscaler?.stop();
      await Promise.all([mdController.stop(), rpController.stop(), whController.stop()]);
      await stopInformers();
      logger.info('controllers stopped');
    },
  };
}

/** Starts the operator; with leader election it campaigns and runs controllers only while leading. */
export async function startOperator(o: StartOperatorOptions): Promise<Operator> {
  const s = { ...DEFAULT_OPERATOR_SETTINGS, ...o.settings };
  const metrics = createOperatorMetrics(o.registry);
  let term: Term | undefined;
  let termAbort = new AbortController();
  let leading = false;
  let termReady = false;
  // Leadership changes are serialised: a term fully stops before the next starts.
  let chain = Promise.resolve();
  const serial = (fn: () => Promise<void>) => {
    chain = chain.then(fn).catch((err) => o.logger.error({ err: describeError(err) }, 'term change failed'));
    return chain;
  };
  const begin = () =>
    serial(async () => {
      leading = true;
      metrics.isLeader.set(1);
      termAbort = new AbortController();
      const signal = termAbort.signal;
      // NATS or the API server may be unavailable right now: keep trying for as long as we lead.
      term = await retryUntilDone('start controllers', () => startTerm(o, s, metrics, signal), {
        logger: o.logger,
        signal,
      }).catch((err) => {
        if (!signal.aborted) throw err;
        return undefined;
      });
      termReady = term !== undefined;
    });
  const end = () => {
    termAbort.abort();
    return serial(async () => {
      leading = false;
      termReady = false;
      metrics.isLeader.set(0);
      await term?.stop();
      term = undefined;
    });
  };

  // Readiness includes RBAC: a standby with broken permissions must not look ready (helm upgrade --wait).
  const wanted = operatorAccess(s);
  let accessOk = false;
  const checkAccess = async () => {
    try {
      const missing = await missingAccess(o.kubeConfig, wanted);
      accessOk = missing.length === 0;
      if (!accessOk) {
        o.logger.error({ missing: missing.map(describeAccess) }, 'missing Kubernetes permissions; not ready');
      }
    } catch (err) {
      o.logger.warn({ err: describeError(err) }, 'could not check Kubernetes permissions');
    }
  };
  let accessCheck: Promise<void> = checkAccess();
  const accessTimer = setInterval(() => {
    accessCheck = checkAccess();
  }, s.accessCheckIntervalMs);
  accessTimer.unref();

  let elector: LeaderElector | undefined;
  if (s.leaderElection) {
    elector = new LeaderElector({
      kubeConfig: o.kubeConfig,
      namespace: s.leaseNamespace,
      name: s.leaseName,
      identity: s.identity,
      logger: o.logger,
      leaseDurationMs: s.leaseDurationMs,
      renewDeadlineMs: s.renewDeadlineMs,
      retryPeriodMs: s.retryPeriodMs,
      onStartedLeading: () => {
        void begin();
      },
      onStoppedLeading: () => end(),
    });
    elector.start();
  } else {
    await begin();
  }

  return {
    metrics,
    isLeader: () => leading,
    ready: () => accessOk && (leading ? termReady : true),
    async close(opts) {
      clearInterval(accessTimer);
      await accessCheck;
      if (elector) await elector.stop(opts);
      await end();
    },
  };
}
