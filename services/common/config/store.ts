/**
 * The live configuration every service runs on: a watch over the KV bucket `config` that keeps the current
 * documents in memory and applies changes as they arrive (no restart). Readers call `snapshot()`; the
 * returned object is replaced, never mutated, so a reader sees one consistent version.
 * The watch is a supervised loop (`config-watch`, services/common/supervise.ts): when it ends or stalls (bucket
 * deleted, watcher dropped by the server; services/common/kv-watch.ts) it is started again with backoff, and /readyz answers 503 until it has replayed
 * the bucket — a service never keeps serving a stale configuration while saying it is ready.
 */
import { EventEmitter } from 'node:events';
import { Kvm, type KvWatchEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { Registry } from 'prom-client';
import { followBucket } from '../kv-watch.ts';
import { LoopSupervisor, type SupervisedLoop } from '../supervise.ts';
import { createLogger } from '../telemetry.ts';
import { CONFIG_BUCKET, type ConfigSnapshot, type DomainConfig, type PolicyConfig } from './resolved.ts';

const emptySnapshot = (): ConfigSnapshot => ({ domains: new Map(), policies: new Map() });

export class ConfigStore extends EventEmitter {
  #snapshot: ConfigSnapshot = emptySnapshot();
  #loop?: SupervisedLoop;

  snapshot(): ConfigSnapshot {
    return this.#snapshot;
  }

  /**
   * Starts watching under `loops` (a private supervisor when none is given); resolves once the current content
   * of the bucket has been loaded. Failures are retried by the supervisor; `stop()` ends the wait with an error.
   */
  async start(nc: NatsConnection, loops?: LoopSupervisor): Promise<void> {
    const supervisor =
      loops ??
      new LoopSupervisor({
        logger: createLogger('config', 'warn'),
        registry: new Registry(),
        closing: () => nc.isClosed(),
      });
    this.#loop = supervisor.run('config-watch', (up, signal) => this.#watch(nc, up, signal));
    await this.#loop.started;
  }

  /** One run of the watch: replays the bucket into a fresh snapshot, publishes it, then applies changes. */
  async #watch(nc: NatsConnection, up: () => void, signal: AbortSignal): Promise<void> {
    const kv = await new Kvm(nc).create(CONFIG_BUCKET, { history: 5 });
    // Replayed into its own snapshot, so keys deleted while a previous watch was down are gone after a restart.
    let replay: ConfigSnapshot | undefined = emptySnapshot();
    const loaded = () => {
      if (!replay) return;
      this.#snapshot = replay;
      replay = undefined;
      this.emit('change', '*');
      up();
    };
    await followBucket(kv, loaded, signal, (e) => {
      if (replay) {
        this.#apply(replay, e);
        return;
      }
      const next: ConfigSnapshot = {
        domains: new Map(this.#snapshot.domains),
        policies: new Map(this.#snapshot.policies),
      };
      if (this.#apply(next, e)) {
        this.#snapshot = next;
        this.emit('change', e.key);
      }
    });
  }

  /** Applies one entry to `target`; false when the key is not a config document. */
  #apply(target: ConfigSnapshot, e: KvWatchEntry): boolean {
    const [kind, ...rest] = e.key.split('.');
    const map: Map<string, unknown> | undefined =
      kind === 'domain' ? target.domains : kind === 'policy' ? target.policies : undefined;
    if (!map) return false;
    const id = rest.join('.');
    if (e.operation === 'PUT') {
      try {
        map.set(id, e.json<DomainConfig | PolicyConfig>());
      } catch (err) {
        this.emit('error', new Error(`config key ${e.key}: ${(err as Error).message}`));
      }
    } else map.delete(id);
    return true;
  }

  async stop(): Promise<void> {
    await this.#loop?.stop();
  }
}
