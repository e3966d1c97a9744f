/**
 * Where message bodies live between ingress and the last delivery attempt. Three places, by size:
 * - attached (the raw bytes beside the envelope, job, result or message state that names them, body-wire.ts) up
 *   to the inline limit (16 KiB by default; a direct job's up to 256 KiB): no extra round trip at all;
 * - the `BODIES` stream, one message per body on `mail.body.<id>`, up to just under the server's max payload:
 *   one publish to store, one leader-served get to load, one subject purge to delete (no tombstones left);
 * - the `bodies` object store (chunked) beyond that, e.g. a 25 MiB message.
 * Keeping bodies out of the envelopes, jobs and per-message state means a 100 KB message is written to
 * JetStream once, not once per hop (see docs/architecture.md, "Bodies").
 */

import type { Readable } from 'node:stream';
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { type ObjectStore, Objm } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import { msgIds } from './msg-ids.ts';
import { BODY_BUCKET, STREAMS, SUBJECTS } from './nats.ts';
import { BodyGoneError, objectStream } from './object-stream.ts';
import type { BodyRef } from './types.ts';

export { BodyGoneError, BodyReadError } from './object-stream.ts';

/**
 * A body ready to send: its bytes when it came in one piece (inline, the BODIES stream, attached to the job), or
 * for an object-store body a factory of fresh Readables over it — one per reader, since a transaction may be
 * retried on a new connection and DKIM signing reads the body before it is sent.
 */
export type BodySource = Buffer | (() => Readable);

/** Room left in a NATS message for headers when a body is stored as one stream message. */
const HEADROOM = 16 * 1024;
/**
 * An object-store read that gets no chunk for this long has failed (chunks gone while the meta entry stays): well
 * below delivery's SMTP timeout (60 s by default), so a stuck read is reported as the store's trouble, not
 * the remote site's.
 */
const STALL_MS = 15_000;

export interface BodyStoreOptions {
  /** JetStream request timeout (default 5 s). */
  timeoutMs?: number;
  /** How long an object-store read may wait for its next chunk (default 15 s). */
  stallMs?: number;
}

export class BodyStore {
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  #jsm?: Promise<JetStreamManager>;
  #objects?: Promise<ObjectStore>;
  readonly #stallMs: number;

  constructor(nc: NatsConnection, opts: BodyStoreOptions = {}) {
    this.#nc = nc;
    this.#js = jetstream(nc, { timeout: opts.timeoutMs ?? 5000 });
    this.#stallMs = opts.stallMs ?? STALL_MS;
  }

  #manager(): Promise<JetStreamManager> {
    this.#jsm ??= jetstreamManager(this.#nc).catch((err) => {
      this.#jsm = undefined;
      throw err;
    });
    return this.#jsm;
  }

  /** The object store for very large bodies (opened lazily; a failed open is retried next time). */
  objects(): Promise<ObjectStore> {
    this.#objects ??= new Objm(this.#nc).open(BODY_BUCKET).catch((err) => {
      this.#objects = undefined;
      throw err;
    });
    return this.#objects;
  }

  /** Largest body stored as a single stream message. */
  streamMax(): number {
    return Math.max((this.#nc.info?.max_payload ?? 1024 * 1024) - HEADROOM, 0);
  }

  /**
   * Stores a body out of line and resolves once JetStream acknowledged it. Idempotent per id (Nats-Msg-Id on
   * the stream publish; the object store replaces an object of the same name).
   */
  async put(id: string, body: Buffer, timeoutMs: number): Promise<BodyRef> {
    if (body.length <= this.streamMax()) {
      await this.#js.publish(SUBJECTS.body(id), body, { msgID: msgIds.body(id), timeout: timeoutMs });
      return { stored: id, size: body.length };
    }
    const os = await this.objects();
    await os.putBlob({ name: id }, body, { timeout: timeoutMs });
    return { object: id, size: body.length };
  }

  /**
   * Loads a body; throws BodyGoneError when it was deleted. An attached body is `attached`, the bytes that came
   * with the reference (a missing or wrong-sized one is a bug, not a deleted body).
   */
  async get(ref: BodyRef, attached?: Buffer): Promise<Buffer> {
    if ('attached' in ref) {
      if (attached?.length !== ref.attached)
        throw new Error(
          `attached body of ${ref.attached} bytes expected, ${attached?.length ?? 'none'} came`,
        );
      return attached;
    }
    if ('inline' in ref) return Buffer.from(ref.inline, 'base64');
    if ('stored' in ref) {
      const jsm = await this.#manager();
      // A direct get answers with the raw bytes (the leader-served get wraps them in base64 JSON: at 100 KB the
      // server's encoding and our decoding were a large part of a delivery's cost, bench profile). Any replica
      // may answer a direct get and a follower can lag behind a body acknowledged a moment ago, so "not found"
      // (or no direct access: a stream made before it was allowed) falls back to the leader-served get.
      const direct = await jsm.direct
        .getMessage(STREAMS.bodies, { last_by_subj: SUBJECTS.body(ref.stored) })
        .catch(() => null);
      if (direct) return Buffer.from(direct.data.buffer, direct.data.byteOffset, direct.data.byteLength);
      const msg = await jsm.streams
        .getMessage(STREAMS.bodies, { last_by_subj: SUBJECTS.body(ref.stored) })
        .catch((err) => {
          if (/no message found|not found/i.test(String((err as Error).message))) return null;
          throw err;
        });
      if (!msg) throw new BodyGoneError(ref.stored);
      return Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength);
    }
    const data = await (await this.objects()).getBlob(ref.object);
    if (!data) throw new BodyGoneError(ref.object);
    return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  }

  /**
   * A body for sending (BodySource). Bodies up to the server's max payload are loaded whole (one copy, as `get`);
   * an object-store body is checked to exist and then read only when a reader wants its bytes, chunk by chunk,
   * never assembled in memory (services/common/object-stream.ts). Throws BodyGoneError when the body is gone;
   * each Readable fails with BodyGoneError too when the object went away in between.
   */
  async source(ref: BodyRef): Promise<BodySource> {
    if (!('object' in ref)) return this.get(ref);
    const info = await (await this.objects()).info(ref.object);
    if (!info || info.deleted) throw new BodyGoneError(ref.object);
    return () => objectStream(() => this.objects(), ref.object, this.#stallMs);
  }

  /** Deletes a stored body; attached and inline bodies and bodies already gone need nothing. */
  async delete(ref: BodyRef): Promise<void> {
    if ('attached' in ref || 'inline' in ref) return;
    if ('stored' in ref) {
      const jsm = await this.#manager();
      await jsm.streams.purge(STREAMS.bodies, { filter: SUBJECTS.body(ref.stored) });
      return;
    }
    try {
      await (await this.objects()).delete(ref.object);
    } catch (err) {
      if (!/not found/i.test(String((err as Error).message))) throw err;
    }
  }
}
