/**
 * The operator's side of the config contract: resolved documents in the NATS KV bucket `config`
 * (services/common/config/resolved.ts). Writes only when a document really changed, so services' watchers
 * (ConfigStore) are not woken by periodic or repeated reconciles and the bucket history stays meaningful.
 */
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { CONFIG_BUCKET } from '../../services/common/config/resolved.ts';

export class ConfigKv {
  readonly #kv: KV;

  private constructor(kv: KV) {
    this.#kv = kv;
  }

  /**
   * Opens (creating if needed, with the same settings as ensureTopology) the config bucket, or another bucket of
   * resolved documents (`webhooks`, history 1).
   */
  static async open(nc: NatsConnection, bucket = CONFIG_BUCKET, history = 5): Promise<ConfigKv> {
    return new ConfigKv(await new Kvm(nc).create(bucket, { history }));
  }

  /** The current document at `key`, or undefined when absent or deleted. */
  async read<T>(key: string): Promise<T | undefined> {
    const e = await this.#kv.get(key);
    if (e?.operation !== 'PUT') return undefined;
    return e.json<T>();
  }

  /** Writes `doc` unless the stored document is already equal. Returns whether it wrote. */
  async putIfChanged(key: string, doc: unknown): Promise<boolean> {
    const text = JSON.stringify(doc);
    const e = await this.#kv.get(key);
    if (e?.operation === 'PUT' && e.string() === text) return false;
    await this.#kv.put(key, text);
    return true;
  }

  async remove(key: string): Promise<void> {
    await this.#kv.delete(key);
  }

  /**
   * Deletes `key` only while its document still comes from `source`. The delete is conditional on the revision
   * we read (previousSeq), so a document another resource wrote in between (a conflict loser taking over the
   * domain) is never removed.
   */
  async removeIfFrom(key: string, source: string): Promise<boolean> {
    const e = await this.#kv.get(key);
    if (e?.operation !== 'PUT' || e.json<{ source?: string }>().source !== source) return false;
    await this.#kv.delete(key, { previousSeq: e.revision });
    return true;
  }

  /** Keys under `prefix` (e.g. `domain.`) whose document came from `source` (`namespace/name`). */
  async keysFrom(prefix: string, source: string): Promise<string[]> {
    const found: string[] = [];
    for await (const key of await this.#kv.keys(`${prefix}>`)) {
      const doc = await this.read<{ source?: string }>(key);
      if (doc?.source === source) found.push(key);
    }
    return found;
  }
}
