/**
 * Leader election on a coordination.k8s.io/v1 Lease, with client-go's rules:
 * - a candidate takes the Lease when it is free or its holder has not renewed it for `leaseDuration`,
 *   measured on OUR clock from when we last saw the record change (never comparing two machines' clocks);
 * - the leader renews every `retryPeriod`; if it cannot renew for `renewDeadline` it stops leading
 *   (renewDeadline < leaseDuration, so it stops before anybody else may take over);
 * - writes use the Lease's resourceVersion (optimistic concurrency): two candidates never both win.
 */
import { CoordinationV1Api, type KubeConfig, type V1Lease, V1MicroTime } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { describeError } from './api-errors.ts';
import { InterruptibleSleep } from './interruptible-sleep.ts';

export interface LeaderElectionOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name: string;
  /** This candidate's identity (the Pod name in a cluster). */
  identity: string;
  logger: Logger;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Called when this instance becomes leader; leading stops when `onStoppedLeading` is called. */
  onStartedLeading: () => void | Promise<void>;
  onStoppedLeading: () => void | Promise<void>;
}

export class LeaderElector {
  readonly #o: Required<Omit<LeaderElectionOptions, 'kubeConfig'>>;
  readonly #api: CoordinationV1Api;
  #leading = false;
  #running = false;
  #loop?: Promise<void>;
  readonly #pause = new InterruptibleSleep();
  #observed?: { record: string; at: number };
  #lastRenew = 0;

  constructor(opts: LeaderElectionOptions) {
    this.#o = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, ...opts };
    this.#api = opts.kubeConfig.makeApiClient(CoordinationV1Api);
  }

  isLeader(): boolean {
    return this.#leading;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop = this.#run();
  }

  /** Stops campaigning; a leader stops leading and releases the Lease so a successor need not wait. */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    this.#running = false;
    this.#pause.wake();
    await this.#loop;
    if (this.#leading) {
      await this.#setLeading(false);
      if (opts.release !== false) await this.#release().catch(() => {});
    }
  }

  async #run(): Promise<void> {
    while (this.#running) {
      let acquired = false;
      try {
        acquired = await this.#tryAcquireOrRenew();
      } catch (err) {
        // A conflict is another candidate winning the same round; anything else (403, API down) is worth a warning.
        const level = (err as { code?: number }).code === 409 ? 'debug' : 'warn';
        this.#o.logger[level]({ lease: this.#o.name, err: describeError(err) }, 'lease update failed');
      }
      const now = Date.now();
      if (acquired) {
        this.#lastRenew = now;
        if (!this.#leading) await this.#setLeading(true);
      } else if (this.#leading && now - this.#lastRenew >= this.#o.renewDeadlineMs) {
        this.#o.logger.warn({ lease: this.#o.name }, 'could not renew the lease in time; stopping');
        await this.#setLeading(false);
      }
      await this.#pause.sleep(this.#o.retryPeriodMs);
    }
  }

  async #setLeading(leading: boolean): Promise<void> {
    this.#leading = leading;
    this.#o.logger.info({ lease: this.#o.name, identity: this.#o.identity, leading }, 'leadership changed');
    await (leading ? this.#o.onStartedLeading() : this.#o.onStoppedLeading());
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.#o;
    const now = new V1MicroTime();
    const spec = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.max(1, Math.ceil(this.#o.leaseDurationMs / 1000)),
      renewTime: now,
    };
    let lease: V1Lease;
    try {
      lease = await this.#api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
      await this.#api.createNamespacedLease({
        namespace,
        body: { metadata: { name, namespace }, spec: { ...spec, acquireTime: now, leaseTransitions: 0 } },
      });
      return true;
    }
    const held = lease.spec?.holderIdentity;
    const record = `${held}|${String(lease.spec?.renewTime)}`;
    if (this.#observed?.record !== record) this.#observed = { record, at: Date.now() };
    const expired = Date.now() - this.#observed.at >= this.#o.leaseDurationMs;
    if (held && held !== identity && !expired) return false;
    const taking = held !== identity;
    await this.#api.replaceNamespacedLease({
      name,
      namespace,
      body: {
        metadata: { name, namespace, resourceVersion: lease.metadata?.resourceVersion },
        spec: {
          ...lease.spec,
          ...spec,
          ...(taking ? { acquireTime: now, leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + 1 } : {}),
        },
      },
    });
    return true;
  }

  async #release(): Promise<void> {
    const { namespace, name, identity } = this.#o;
    const lease = await this.#api.readNamespacedLease({ name, namespace });
    if (lease.spec?.holderIdentity !== identity) return;
    await this.#api.replaceNamespacedLease({
      name,
      namespace,
      body: {
        metadata: { name, namespace, resourceVersion: lease.metadata?.resourceVersion },
        spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1 },
      },
    });
  }
}
