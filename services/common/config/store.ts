/**
 * The live configuration every service runs on: a watch over the KV bucket `config` that keeps the current
 * documents in memory and applies changes as they arrive (no restart). Readers call `snapshot()`; the
 * returned object is replaced, never mutated, so a reader sees one consistent version.
 */
import { EventEmitter } from 'node:events';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { CONFIG_BUCKET, type ConfigSnapshot, type DomainConfig, type PolicyConfig } from './resolved.ts';

export class ConfigStore extends EventEmitter {
  #snapshot: ConfigSnapshot = { domains: new Map(), policies: new Map() };
  #stop?: () => void;

  snapshot(): ConfigSnapshot {
    return this.#snapshot;
  }

  /** Starts watching; resolves once the current content of the bucket has been loaded. */
  async start(nc: NatsConnection): Promise<void> {
    const kv = await new Kvm(nc).create(CONFIG_BUCKET, { history: 5 });
    const watch = await kv.watch({ key: '>' });
    this.#stop = () => watch.stop();
    let resolveLoaded!: () => void;
    const loaded = new Promise<void>((r) => (resolveLoaded = r));
    (async () => {
      for await (const e of watch) {
        const next: ConfigSnapshot = {
          domains: new Map(this.#snapshot.domains),
          policies: new Map(this.#snapshot.policies),
        };
        const [kind, ...rest] = e.key.split('.');
        const map: Map<string, unknown> | undefined =
          kind === 'domain' ? next.domains : kind === 'policy' ? next.policies : undefined;
        if (map) {
          const id = rest.join('.');
          if (e.operation === 'PUT') {
            try {
              map.set(id, e.json<DomainConfig | PolicyConfig>());
            } catch (err) {
              this.emit('error', new Error(`config key ${e.key}: ${(err as Error).message}`));
            }
          } else map.delete(id);
          this.#snapshot = next;
          this.emit('change', e.key);
        }
        if (e.delta === 0) resolveLoaded();
      }
    })();
    try {
      // An empty bucket sends no entries; the watcher marks the initial load with delta 0 on the last one.
      const status = await kv.status();
      if (status.values === 0) resolveLoaded();
      await loaded;
    } catch (err) {
      // A failed start leaves nothing behind, so the caller can simply try again (services/common/retry.ts).
      this.stop();
      throw err;
    }
  }

  stop(): void {
    this.#stop?.();
  }
}
