import assert from 'node:assert/strict';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import pino from 'pino';
import { Informer } from '../../operator/runtime/informer.ts';
import { type ControlPlane, startControlPlane } from '../helpers/envtest.ts';
import { createNamespace, waitFor } from '../helpers/operator.ts';

const NS = 'informer';
const logger = pino({ level: process.env['LOG_LEVEL'] ?? 'silent' });

/**
 * A loopback TCP relay in front of the API server whose existing connections can be frozen: bytes stop
 * flowing but nothing is closed — the silent stall a dead NAT entry or a hung load balancer produces.
 */
async function startStallingProxy(
  target: URL,
): Promise<{ url: string; freeze(): void; close(): Promise<void> }> {
  const open = new Set<{ frozen: boolean; sockets: Socket[] }>();
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(Number(target.port), target.hostname);
    const conn = { frozen: false, sockets: [client, upstream] };
    open.add(conn);
    client.on('data', (d) => conn.frozen || upstream.write(d));
    upstream.on('data', (d) => conn.frozen || client.write(d));
    const end = () => {
      open.delete(conn);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const { port } = server.address() as { port: number };
  return {
    url: `https://127.0.0.1:${port}`,
    freeze: () => {
      for (const c of open) c.frozen = true;
    },
    close: async () => {
      for (const c of open) for (const s of c.sockets) s.destroy();
      await new Promise<void>((res) => server.close(() => res()));
    },
  };
}

describe('informer (list + watch with a cache) on a real kube-apiserver', () => {
  let cp: ControlPlane;
  let core: CoreV1Api;
  before(async () => {
    cp = await startControlPlane();
    await createNamespace(cp.kubeConfig, NS);
    core = cp.kubeConfig.makeApiClient(CoreV1Api);
  });
  after(async () => {
    await cp?.stop();
  });

  const informerFor = (kc: KubeConfig, stallTimeoutMs = 90_000) =>
    new Informer<V1ConfigMap>({
      kubeConfig: kc,
      path: `/api/v1/namespaces/${NS}/configmaps`,
      list: () => kc.makeApiClient(CoreV1Api).listNamespacedConfigMap({ namespace: NS }),
      logger,
      stallTimeoutMs,
      // Long server-side watches: only the stall detector can end a frozen one.
      watchTimeoutSeconds: 600,
    });

  it('lists existing objects into its cache and reports adds, updates and deletes', async () => {
    await core.createNamespacedConfigMap({
      namespace: NS,
      body: { metadata: { name: 'pre' }, data: { v: '1' } },
    });
    const inf = informerFor(cp.kubeConfig);
    const seen: string[] = [];
    inf.on('add', (o) => seen.push(`add ${o.metadata?.name}`));
    inf.on('update', (_old, o) => seen.push(`update ${o.metadata?.name} ${o.data?.['v']}`));
    inf.on('delete', (o) => seen.push(`delete ${o.metadata?.name}`));
    await inf.start();
    try {
      assert.equal(inf.get(`${NS}/pre`)?.data?.['v'], '1');
      await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'new' } } });
      await core.replaceNamespacedConfigMap({
        name: 'pre',
        namespace: NS,
        body: { metadata: { name: 'pre' }, data: { v: '2' } },
      });
      await core.deleteNamespacedConfigMap({ name: 'new', namespace: NS });
      await waitFor('all events', async () => seen.includes('delete new'));
      assert.deepEqual(seen, ['add pre', 'add new', 'update pre 2', 'delete new']);
      assert.equal(inf.get(`${NS}/new`), undefined);
    } finally {
      await inf.stop();
    }
  });

  it('restarts a watch that went silent and delivers the change made while it was stalled', async () => {
    const proxy = await startStallingProxy(new URL(cp.url));
    const kc = new KubeConfig();
    const base = cp.kubeConfig;
    kc.loadFromOptions({
      clusters: [{ ...base.getCurrentCluster()!, name: 'proxied', server: proxy.url }],
      users: [base.getCurrentUser()!],
      contexts: [{ name: 'proxied', cluster: 'proxied', user: base.getCurrentUser()!.name }],
      currentContext: 'proxied',
    });
    const inf = informerFor(kc, 1500);
    await inf.start();
    try {
      await core.createNamespacedConfigMap({
        namespace: NS,
        body: { metadata: { name: 'stall' }, data: { v: 'a' } },
      });
      await waitFor('add through the proxy', async () => inf.get(`${NS}/stall`));
      proxy.freeze();
      await core.replaceNamespacedConfigMap({
        name: 'stall',
        namespace: NS,
        body: { metadata: { name: 'stall' }, data: { v: 'b' } },
      });
      await waitFor('the update after the stall', async () => inf.get(`${NS}/stall`)?.data?.['v'] === 'b');
    } finally {
      await inf.stop();
      await proxy.close();
    }
  });
});
