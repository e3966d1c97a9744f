import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, type V1ConfigMap, Watch } from '@kubernetes/client-node';
import { type ControlPlane, startControlPlane } from '../helpers/envtest.ts';

describe('a real kube-apiserver + etcd', () => {
  let cp: ControlPlane;
  before(async () => {
    cp = await startControlPlane();
  });
  after(async () => {
    await cp?.stop();
  });

  it('creates a namespace and a ConfigMap and streams a watch event when it changes', async () => {
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'proof' } } });
    const created = await core.createNamespacedConfigMap({
      namespace: 'proof',
      body: { metadata: { name: 'cm' }, data: { a: '1' } },
    });

    const seen: string[] = [];
    const modified = new Promise<V1ConfigMap>((resolve, reject) => {
      new Watch(cp.kubeConfig)
        .watch(
          '/api/v1/namespaces/proof/configmaps',
          { resourceVersion: created.metadata!.resourceVersion },
          (type, obj: V1ConfigMap) => {
            seen.push(type);
            if (type === 'MODIFIED') resolve(obj);
          },
          (err) => err && reject(err),
        )
        .then((req) => modified.finally(() => req.abort()), reject);
    });
    await core.patchNamespacedConfigMap({
      name: 'cm',
      namespace: 'proof',
      body: [{ op: 'replace', path: '/data/a', value: '2' }],
    });
    const obj = await modified;
    assert.equal(obj.data?.['a'], '2');
    assert.deepEqual(seen, ['MODIFIED']);
  });
});
