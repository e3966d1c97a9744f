/**
 * The few writes a reconciler makes to its own resources: status (through the status subresource, so spec
 * and status writers never conflict) and finalizers (guarded by resourceVersion, so a concurrent change makes
 * the write fail and the key is retried from fresh state).
 */
import {
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { API_GROUP, API_VERSION } from '../../services/common/config/schema.ts';
import type { ListResult } from './informer.ts';

const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export class CustomResources<T extends KubernetesObject> {
  readonly #api: CustomObjectsApi;
  readonly plural: string;
  /** Empty: all namespaces. */
  readonly namespace: string;

  constructor(kc: KubeConfig, plural: string, namespace = '') {
    this.#api = kc.makeApiClient(CustomObjectsApi);
    this.plural = plural;
    this.namespace = namespace;
  }

  /** The collection path the informer watches. */
  get path(): string {
    const ns = this.namespace ? `/namespaces/${this.namespace}` : '';
    return `/apis/${API_GROUP}/${API_VERSION}${ns}/${this.plural}`;
  }

  list = async (): Promise<ListResult<T>> => {
    const p = { group: API_GROUP, version: API_VERSION, plural: this.plural };
    return (
      this.namespace
        ? await this.#api.listNamespacedCustomObject({ ...p, namespace: this.namespace })
        : await this.#api.listClusterCustomObject(p)
    ) as ListResult<T>;
  };

  async patchStatus(obj: KubernetesObject, status: Record<string, unknown>): Promise<void> {
    await this.#api.patchNamespacedCustomObjectStatus({ ...this.#ref(obj), body: { status } }, MERGE_PATCH);
  }

  /** Replaces metadata.finalizers, only if the object is still at the version we read. */
  async setFinalizers(obj: KubernetesObject, finalizers: string[]): Promise<void> {
    await this.#api.patchNamespacedCustomObject(
      {
        ...this.#ref(obj),
        body: { metadata: { finalizers, resourceVersion: obj.metadata?.resourceVersion } },
      },
      MERGE_PATCH,
    );
  }

  #ref(obj: KubernetesObject) {
    return {
      group: API_GROUP,
      version: API_VERSION,
      plural: this.plural,
      namespace: obj.metadata!.namespace!,
      name: obj.metadata!.name!,
    };
  }
}
