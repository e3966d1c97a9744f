/**
 * Kubernetes Events on our resources (`kubectl describe maildomain x` shows them). Best effort: an Event that
 * cannot be written is logged, never fails a reconcile.
 */
import { CoreV1Api, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { describeError } from './api-errors.ts';

export const COMPONENT = 'postern-operator';

export class EventRecorder {
  readonly #api: CoreV1Api;
  readonly #logger: Logger;

  constructor(kc: KubeConfig, logger: Logger) {
    this.#api = kc.makeApiClient(CoreV1Api);
    this.#logger = logger;
  }

  async record(
    obj: KubernetesObject,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): Promise<void> {
    const { name, namespace = 'default', uid, resourceVersion } = obj.metadata ?? {};
    const now = new Date();
    try {
      await this.#api.createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${name}.`, namespace },
          involvedObject: {
            apiVersion: obj.apiVersion,
            kind: obj.kind,
            name,
            namespace,
            uid,
            resourceVersion,
          },
          type,
          reason,
          message,
          source: { component: COMPONENT },
          reportingComponent: COMPONENT,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    } catch (err) {
      this.#logger.warn(
        { kind: obj.kind, name, namespace, reason, err: describeError(err) },
        'event not recorded',
      );
    }
  }
}
