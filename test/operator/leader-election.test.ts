import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { CoordinationV1Api, CustomObjectsApi, V1MicroTime } from '@kubernetes/client-node';
import type { NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { Registry } from 'prom-client';
import { type Operator, startOperator } from '../../operator/operator.ts';
import { API, API_GROUP, API_VERSION } from '../../services/common/config/schema.ts';
import { connectNats, ensureTopology } from '../../services/common/nats.ts';
import { type ControlPlane, startControlPlane } from '../helpers/envtest.ts';
import { startTestNats, type TestNats } from '../helpers/nats.ts';
import { createNamespace, installCrds, waitFor } from '../helpers/operator.ts';

const NS = 'election';
const LEASE = { name: 'postern-operator', namespace: NS };
const logger = pino({ level: process.env['LOG_LEVEL'] ?? 'silent' });

describe('leader election on a coordination.k8s.io Lease', () => {
  let cp: ControlPlane;
  let nats: TestNats;
  let nc: NatsConnection;
  const operators = new Map<string, Operator>();

  const start = async (identity: string) => {
    const op = await startOperator({
      kubeConfig: cp.kubeConfig,
      nc,
      logger: logger.child({ identity }),
      registry: new Registry(),
      settings: {
        watchNamespace: NS,
        leaseNamespace: NS,
        identity,
        // Short durations keep the test quick; the production defaults are 15 s / 10 s / 2 s.
        leaseDurationMs: 2000,
        renewDeadlineMs: 1500,
        retryPeriodMs: 250,
      },
    });
    operators.set(identity, op);
    return op;
  };
  const leaders = () => [...operators].filter(([, op]) => op.isLeader()).map(([id]) => id);
  const holder = async () =>
    (await cp.kubeConfig.makeApiClient(CoordinationV1Api).readNamespacedLease(LEASE)).spec?.holderIdentity;

  const createDomain = (name: string, namespace = NS) =>
    cp.kubeConfig.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
      group: API_GROUP,
      version: API_VERSION,
      namespace,
      plural: 'maildomains',
      body: { apiVersion: API, kind: 'MailDomain', metadata: { name }, spec: { domain: `${name}.example` } },
    });
  const waitReady = (name: string, namespace = NS) =>
    waitFor(`${name} Ready`, async () => {
      const o = (await cp.kubeConfig.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({
        group: API_GROUP,
        version: API_VERSION,
        namespace,
        plural: 'maildomains',
        name,
      })) as { status?: { conditions?: { type: string; status: string }[] } };
      return o.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
    });

  before(async () => {
    [cp, nats] = await Promise.all([startControlPlane(), startTestNats()]);
    await installCrds(cp.kubeConfig);
    await createNamespace(cp.kubeConfig, NS);
    nc = await connectNats(nats.url, 'election-test');
    await ensureTopology(nc);
  });
  after(async () => {
    for (const op of operators.values()) await op.close();
    await nc?.close();
    await nats?.cleanup();
    await cp?.stop();
  });

  it('of two operator instances exactly one leads and reconciles', async () => {
    await Promise.all([start('op-a'), start('op-b')]);
    const [leader] = await waitFor('a leader', async () => (leaders().length ? leaders() : undefined));
    assert.equal(await holder(), leader);
    await createDomain('one');
    await waitReady('one');
    // Several retry periods later there is still one leader, the same one.
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 250));
      assert.deepEqual(leaders(), [leader]);
    }
  });

  it('when the leader dies without releasing, the other takes over after the lease expires', async () => {
    const [old] = leaders();
    const survivor = old === 'op-a' ? 'op-b' : 'op-a';
    await operators.get(old!)!.close({ release: false });
    operators.delete(old!);
    await waitFor('the survivor leads', async () => operators.get(survivor)!.isLeader());
    assert.equal(await holder(), survivor);
    await createDomain('two');
    await waitReady('two');
  });

  it('a leader that cannot renew its lease stops reconciling, and leads again once the lease is free', async () => {
    const [id] = leaders();
    const op = operators.get(id!)!;
    const api = cp.kubeConfig.makeApiClient(CoordinationV1Api);
    // An intruder holds the Lease and keeps renewing it: our leader's renewals fail.
    let intruding = true;
    const intruder = (async () => {
      while (intruding) {
        try {
          const lease = await api.readNamespacedLease(LEASE);
          await api.replaceNamespacedLease({
            ...LEASE,
            body: {
              ...lease,
              spec: { ...lease.spec, holderIdentity: 'intruder', renewTime: new V1MicroTime() },
            },
          });
        } catch {
          // a conflicting write with the leader: try again
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await waitFor('the leader steps down', async () => !op.isLeader());
    intruding = false;
    await intruder;
    await waitFor('leading again after the intruder went away', async () => op.isLeader());
    await createDomain('three');
    await waitReady('three');
  });

  it('operator/main.ts runs out of cluster from KUBECONFIG, reconciles, and exits 0 on SIGTERM', async () => {
    await createNamespace(cp.kubeConfig, 'process');
    const child = spawn(process.execPath, ['operator/main.ts'], {
      env: {
        ...process.env,
        KUBECONFIG: cp.kubeconfigPath,
        NATS_URL: nats.url,
        WATCH_NAMESPACE: 'process',
        POD_NAMESPACE: 'process',
        POD_NAME: 'operator-0',
        LEASE_DURATION: '3s',
        RENEW_DEADLINE: '2s',
        RETRY_PERIOD: '250ms',
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = once(child, 'exit');
    try {
      const lines = createInterface({ input: child.stdout! });
      for await (const line of lines) {
        if (JSON.parse(line).msg === 'ready') break;
      }
      await createDomain('proc', 'process');
      await waitReady('proc', 'process');
    } finally {
      child.kill('SIGTERM');
    }
    const [code] = await exited;
    assert.equal(code, 0);
  });
});
