/**
 * Test helper: sends manifests to a real API server through @kubernetes/client-node's KubernetesObjectApi,
 * with server-side dry-run and strict field validation. client-node serialises built-in kinds through its
 * generated models, which silently drops unknown fields; a request middleware puts the manifest back as
 * written so the API server sees (and, with fieldValidation=Strict, rejects) exactly what helm rendered.
 */
import {
  type Configuration,
  createConfiguration,
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  ServerConfiguration,
} from '@kubernetes/client-node';

function strictConfig(kc: KubeConfig, raw: KubernetesObject): Configuration {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  return createConfiguration({
    baseServer: new ServerConfiguration(cluster.server, {}),
    authMethods: { default: kc },
    promiseMiddleware: [
      {
        pre: async (ctx) => {
          // Only the create itself; resource discovery (GET) passes through.
          if (ctx.getHttpMethod() === 'POST') {
            ctx.setQueryParam('fieldValidation', 'Strict');
            ctx.setBody(JSON.stringify(raw));
          }
          return ctx;
        },
        post: async (res) => res,
      },
    ],
  });
}

/** Creates `obj` for real (`dryRun` false) or as a server-side dry-run, with strict field validation. */
export async function createStrict(
  kc: KubeConfig,
  obj: KubernetesObject,
  dryRun: boolean,
): Promise<KubernetesObject> {
  // The middleware must live on the API object's own configuration: KubernetesObjectApi.create does not pass
  // its `options` argument on to the request chain (client-node 2.0.1).
  const api = new KubernetesObjectApi(strictConfig(kc, obj));
  return api.create(obj, undefined, dryRun ? 'All' : undefined, 'postern-chart-test');
}

/** `kind/namespace/name` of an object, for messages. */
export function objectRef(obj: KubernetesObject): string {
  return `${obj.kind}/${obj.metadata?.namespace ? `${obj.metadata.namespace}/` : ''}${obj.metadata?.name}`;
}
