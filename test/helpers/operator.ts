/**
 * Test helper for the operator tier: installs the generated CRDs into a test API server and waits for
 * conditions with generous deadlines (tests never assert timings).
 */
import {
  ApiextensionsV1Api,
  CoreV1Api,
  type KubeConfig,
  loadYaml,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { renderCrds } from '../../operator/crd-gen.ts';

/** Creates the CRDs exactly as generated and waits until the API server serves them (Established). */
export async function installCrds(kc: KubeConfig): Promise<void> {
  const api = kc.makeApiClient(ApiextensionsV1Api);
  for (const text of renderCrds().values()) {
    // loadYaml maps the YAML onto client-node's typed model (x-kubernetes-validations → xKubernetesValidations,
    // enum → _enum); a plain parsed object would lose those fields when the client serialises the body.
    const body = loadYaml<V1CustomResourceDefinition>(text);
    const name = body.metadata!.name!;
    await api.createCustomResourceDefinition({ body });
    await waitFor(`CRD ${name} established`, async () => {
      const crd = await api.readCustomResourceDefinition({ name });
      return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false;
    });
  }
}

export async function createNamespace(kc: KubeConfig, name: string): Promise<void> {
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name } } });
}

/** Polls `probe` until it returns a truthy value (errors count as "not yet"); throws after the deadline. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | null | false>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
}
